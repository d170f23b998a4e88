"""SynthLesionLib: lesion synthesis engine of MedSynth (numpy/scipy only, no Slicer needed):
where a lesion fits in an organ, what it looks like, and the image with its exact label.

May import: MedSynthCommonLib, numpy and SciPy (MONAI in ``transforms``, its MONAI face; torch,
matplotlib and dask only inside the functions that need them); nothing of SynthTranslateLib or
SynthEvaluateLib.

Public names are imported on first use (PEP 562), so that ``MedSynthCommonLib.dependencies``
can be imported, and missing packages offered for installation, before SciPy is needed.
"""

from importlib import import_module

from MedSynthCommonLib import __version__  # noqa: F401  (one version for the extension)

_PUBLIC = {
    "LesionConfig": "config",
    "MedSynthInputError": "MedSynthCommonLib.errors",
    "PlacementError": "errors",
    "Geometry": "MedSynthCommonLib.geometry",
    "ORGAN_LABELS": "phantom",
    "Phantom": "phantom",
    "make_ct_phantom": "phantom",
    "make_mr_phantom": "phantom",
    "make_phantom": "phantom",
    "PRESETS": "presets",
    "Preset": "presets",
    "get_preset": "presets",
    "LesionRecord": "records",
    "ShapeTemplate": "shape",
    "SIZE_CLASSES": "sizes",
    "SynthesisResult": "synthesizer",
    "regenerate": "synthesizer",
    "synthesize_lesions": "synthesizer",
    "prepare_organ": "synthesizer",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    if name in _PUBLIC:
        module = _PUBLIC[name]
        value = getattr(import_module(module) if "." in module else import_module(f".{module}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_PUBLIC))
