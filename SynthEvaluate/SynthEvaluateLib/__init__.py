"""SynthEvaluateLib: judge synthetic data (numpy, SciPy, scikit-learn; torch + MONAI for training).

- metrics: image fidelity (PSNR, SSIM, MS-SSIM, RMSE, MAE, in a mask), segmentation (Dice, NSD,
  HD95, lesion-wise detection by component Dice, scan-level), classification (accuracy,
  sensitivity, specificity, AUC with DeLong intervals and tests, McNemar), bootstrap intervals;
- distances: FRD on radiomic features, FID/KID/PRDC on a project or user-exported network;
- protocols: GAN-train/GAN-test, augmentation studies (classifiers and segmenters), the quality
  of a generator of new images (``generator_quality``), the robustness benchmark on SynthLesion
  strata, multi-label findings, segmentation files, reader studies;
- reports (HTML, JSON, CSV, PNG), MRML table and chart nodes, the ``medsynth evaluate`` commands.

Layer: the top floor; it may use SynthTranslateLib, SynthLesionLib and MedSynthCommonLib.
"""

from MedSynthCommonLib import __version__  # noqa: F401
