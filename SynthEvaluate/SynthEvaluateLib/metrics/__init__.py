"""How close, how accurate, how sure: image fidelity (``image``), distribution distances
(``distances``, on radiomic features or a ``feature_networks`` card), classification and
segmentation metrics (``classification``, ``segmentation``) and their intervals and paired tests
(``statistics``).  Plain functions on arrays, equal to their reference implementations.

May import: MedSynthCommonLib, numpy, SciPy, scikit-learn, scikit-image; torch and MONAI inside
functions.  Nothing else of SynthEvaluateLib.
"""
