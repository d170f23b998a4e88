"""SynthTranslateLib: GAN translators trained and applied on medical images (torch + MONAI).

Models (``config.MODEL_KINDS``): pix2pix and SPADE (label map -> image), CycleGAN (two unpaired
domains), StarGAN and MI-GAN (many domains, one generator; MI-GAN adds key-domain migration and
attention), a mask GAN that samples lesion masks, and generators of new images of a chosen
class (stylegan for a GPU, fastgan that learns on a CPU; ``translate sample``).  One seeded, resumable training loop
(``training``), model folders with a card and checksummed weights (``model_dir``), slice-wise
inference that keeps geometry (``apply``), datasets from volumes, folders and DICOM
(``datasets``), MRML logic (``logic``) and the ``medsynth translate`` commands (``commands``).

May import: SynthLesionLib, MedSynthCommonLib, numpy, SciPy, torch, MONAI; nothing of
SynthEvaluateLib.
torch and MONAI are imported only where a network is built or run.
"""

from MedSynthCommonLib import __version__  # noqa: F401
