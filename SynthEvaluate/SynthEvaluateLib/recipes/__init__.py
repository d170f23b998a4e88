"""What the studies train, the same way in every arm: labelled 2-D image sets (``data``), the
2-D classifier recipe (``training``), the lesion segmenter recipe (``segmenter``) with its pool
of cases made on the fly in the background (``fresh_cases``), the 3-D
volume classifier with its networks and checkpoints (``volume_*``), and the augmentation they
share (``augment``: shifts, intensity, and other CT scanners' look).  MONAI networks, seeded,
resumable or cancellable, progress with ETA.

May import: ``metrics``, MedSynthCommonLib, SynthLesionLib, numpy, torch, MONAI.
"""
