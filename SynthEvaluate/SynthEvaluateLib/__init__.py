"""SynthEvaluateLib: judge synthetic data (numpy, SciPy, scikit-learn; torch + MONAI for training).

- metrics: image fidelity (PSNR, SSIM, MS-SSIM, RMSE, MAE, in a mask), segmentation (Dice, NSD,
  HD95, lesion-wise detection by component Dice, scan-level), classification (accuracy,
  sensitivity, specificity, AUC with DeLong intervals and tests, McNemar), bootstrap intervals;
- distances: FRD on radiomic features, FID/KID/PRDC on a project or user-exported network;
- protocols: GAN-train/GAN-test, augmentation studies (classifiers and segmenters), the quality
  of a generator of new images (``generator_quality``), the robustness benchmark on SynthLesion
  strata, segmentation files, reader studies;
- findings: one multi-label findings model for 2-D images and 3-D CT, located in image regions
  or in anatomy, reports and a triage queue;
- reports (HTML, JSON, CSV, PNG), MRML table and chart nodes, the ``medsynth evaluate`` commands.

May import: SynthTranslateLib, SynthLesionLib, MedSynthCommonLib, numpy, SciPy, scikit-learn,
torch, MONAI (the top floor; its folders import one way among themselves, see each folder's
docstring and docs/architecture.md).
"""

from MedSynthCommonLib import __version__  # noqa: F401
