"""SynthLesionLib: lesion synthesis engine of MedSynth (numpy/scipy only, no Slicer needed)."""

__version__ = "0.1.0"

from .config import LesionConfig  # noqa: E402
from .errors import MedSynthInputError, PlacementError  # noqa: E402
from .geometry import Geometry  # noqa: E402
from .phantom import ORGAN_LABELS, Phantom, make_ct_phantom, make_mr_phantom, make_phantom  # noqa: E402
from .presets import PRESETS, Preset, get_preset  # noqa: E402
from .records import LesionRecord  # noqa: E402
from .shape import ShapeTemplate  # noqa: E402
from .sizes import SIZE_CLASSES  # noqa: E402
from .synthesizer import SynthesisResult, regenerate, synthesize_lesions  # noqa: E402

__all__ = [
    "Geometry", "LesionConfig", "LesionRecord", "MedSynthInputError", "ORGAN_LABELS", "PRESETS", "Phantom",
    "PlacementError", "Preset", "SIZE_CLASSES", "ShapeTemplate", "SynthesisResult", "get_preset",
    "make_ct_phantom", "make_mr_phantom", "make_phantom", "regenerate", "synthesize_lesions",
]
