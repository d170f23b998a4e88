"""How much an arm of a study may lose against real-only training and still be called "not
worse" (judged over every seed).

Apart from the studies themselves, which import SciPy's statistics and scikit-learn: the
command line shows these defaults in its help, and building it must not import those (0.5 s
of every ``medsynth`` call, ``medsynth lesion`` included)."""

#: accuracy an arm of the augmentation study may lose (5 points)
AUGMENTATION_MARGIN = 0.05
#: Dice an arm of the segmentation study may lose
DICE_MARGIN = 0.05
