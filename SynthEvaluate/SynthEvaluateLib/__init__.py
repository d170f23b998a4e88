"""SynthEvaluateLib: metrics and statistics for judging synthetic data (numpy, SciPy, scikit-learn).

Available: image fidelity (PSNR, SSIM, RMSE, MAE, optionally inside a mask), segmentation
(Dice, normalised surface Dice, HD95, lesion-wise and scan-level detection), classification
(accuracy, sensitivity, specificity, AUC with DeLong intervals and paired tests, McNemar),
bootstrap confidence intervals and paired tests, train/test leakage checks.
Not yet: the evaluation protocols (GAN-train/test, augmentation, robustness, reader study),
distribution distances, reports and the module's GUI.
"""

__version__ = "0.1.0"
