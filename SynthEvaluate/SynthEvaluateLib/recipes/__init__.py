"""What the studies train, the same way in every arm: labelled 2-D image sets (``data``), the
2-D classifier recipe (``training``, one class per image), the lesion segmenter recipe
(``segmenter``) with its pool of cases made on the fly in the background (``fresh_cases``), the
multi-label findings model for CT volumes and 2-D images with its networks and checkpoints
(``findings_*``), the one training loop they all step through (``loop``) and the augmentation
they share (``augment``: shifts, intensity, and other CT scanners' look).  MONAI networks,
seeded, resumable or cancellable, progress with ETA.

May import: ``metrics``, MedSynthCommonLib, SynthLesionLib, numpy, torch, MONAI.
"""
