"""Does synthetic data help, and is it safe?  GAN-train/GAN-test and augmentation
(``protocols``), the segmentation study with all its arms (``segment_study``), the quality of
a generator of new images (``generator_quality``), the robustness benchmark, the privacy audit,
the reader study, segmentations read from files, synthetic sets read, translated or sampled
(``synthetic_sets``) and the train/test overlap check (``leakage``).

May import: ``metrics``, ``recipes``, ``findings``, the floors below (SynthTranslateLib,
SynthLesionLib, MedSynthCommonLib).
"""
