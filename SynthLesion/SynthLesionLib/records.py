"""What was drawn and measured for each lesion, a one-paragraph finding per case, and whether a
case made again from its record is the one the record describes."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np

from MedSynthCommonLib.errors import MedSynthInputError

_NUMBER_WORDS = ["no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]
_TYPE_WORDS = {"CT": {"hypo": "hypodense", "iso": "isodense", "hyper": "hyperdense"},
               "MR": {"hypo": "hypointense", "iso": "isointense", "hyper": "hyperintense"}}


@dataclass
class LesionRecord:
    """One inserted lesion.  Lengths in mm, volumes in mL, intensities in image units."""

    index: int
    size_class: str
    lesion_type: str
    centre_ras: list[float]
    centre_ijk: list[int]
    location: str
    target_diameter_mm: float
    semi_axes_mm: list[float]
    rotation_kji: list[list[float]]
    shape_template: str | None
    elastic_magnitude_mm: float
    elastic_scale_mm: float
    edge_blur_mm: float
    texture_grain_mm: float
    texture_blur_mm: float
    texture_sd: float
    heterogeneity_sd: float
    heterogeneity_grain_mm: float
    components: dict
    contrast_target: float
    capsule_contrast: float
    capsule_width_mm: float
    mass_effect: float
    mass_effect_max_push_mm: float
    placement_attempts: int
    lesion_draws: int
    volume_ml: float
    equivalent_diameter_mm: float
    mean_intensity: float
    organ_median: float
    contrast_measured: float
    #: the type drawn (``lesion_type`` is the type the lesion measures: it differs only when
    #: components outweigh the drawn contrast)
    lesion_type_drawn: str = ""
    #: voxels clipped to the image type's range (0 unless the image type is too narrow)
    clipped_voxels: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def location_words(centre_ras: np.ndarray, organ_centroid_ras: np.ndarray, organ_spread_ras: np.ndarray) -> str:
    """Coarse position inside the organ, e.g. "superior right posterior", or "central"."""
    z = (np.asarray(centre_ras) - organ_centroid_ras) / np.maximum(organ_spread_ras, 1e-6)
    words = []
    for value, (neg, pos) in sorted(zip(z, [("left", "right"), ("posterior", "anterior"), ("inferior", "superior")]),
                                    key=lambda item: -abs(item[0])):
        if abs(value) >= 0.5:
            words.append(pos if value > 0 else neg)
    return " ".join(words) if words else "central"


def _count_words(n: int) -> str:
    return _NUMBER_WORDS[n] if n < len(_NUMBER_WORDS) else str(n)


def finding_text(records: list[LesionRecord], organ: str, modality: str, units: str) -> str:
    """One structured paragraph describing the synthetic lesions of one case."""
    if not records:
        return f"No synthetic lesion in the {organ}."
    unit = "HU" if modality == "CT" else ""
    types = sorted({r.lesion_type for r in records})
    type_words = " and ".join(_TYPE_WORDS.get(modality, _TYPE_WORDS["CT"])[t] for t in types)
    n = len(records)
    parts = [f"{_count_words(n).capitalize()} synthetic {type_words} lesion{'s' if n > 1 else ''} in the {organ}."]
    for r in records:
        extras = []
        if r.capsule_contrast:
            extras.append("with a capsule")
        if r.mass_effect_max_push_mm >= 0.5:
            extras.append(f"mass effect up to {r.mass_effect_max_push_mm:.1f} mm")
        extra = f", {', '.join(extras)}" if extras else ""
        parts.append(
            f"Lesion {r.index}: {r.equivalent_diameter_mm:.0f} mm ({r.volume_ml:.2f} mL, {r.size_class}), "
            f"{r.location} part of the {organ}, mean {r.mean_intensity:.0f}{unit and ' ' + unit} "
            f"({r.contrast_measured:+.0f}{unit and ' ' + unit} against parenchyma at {r.organ_median:.0f}"
            f"{unit and ' ' + unit}){extra}."
        )
    return " ".join(parts)


def check_regenerated(result, case_record: dict) -> dict | None:
    """Raise ``MedSynthInputError`` unless ``result`` (a ``SynthesisResult`` made from
    ``case_record``'s options and seed) is the case the record describes: the same lesions, with
    every drawn and measured value (any record), and the same changed block, voxel for voxel
    (``changed_block``: records written with files).  A bare ``{"config", "seed"}`` dict has
    nothing to check against.  Returns the result's ``changed_digest()`` when it was computed
    (for the files written next), else None.

    The version alone cannot tell: engines whose draws differ have carried the same one."""
    from . import __version__

    difference = None if "lesions" not in case_record else \
        _first_difference(_as_read_back(result.case_record.get("lesions", [])), _as_read_back(case_record["lesions"]))
    block, digest = case_record.get("changed_block"), None
    if difference is None and isinstance(block, dict):
        digest = result.changed_digest()
        if block != digest:
            difference = "the voxels written differ from the ones the record's files hold"
    if difference is not None:
        made_by = f"{case_record.get('engine') or 'an unknown engine'} {case_record.get('version') or '(no version)'}"
        raise MedSynthInputError(
            f"The case made again from this record is not the one it describes: {difference}. The record was made "
            f"by {made_by}, which drew or computed differently from this engine ({__version__}) and its numerical "
            "libraries, or from other inputs (shape masks included). Make it again where it was made, or make this "
            "engine's case for the same options and seed without the record.")
    return digest


def _as_read_back(value):
    """``value`` as it reads back from a JSON file (tuples as lists, and so on)."""
    return json.loads(json.dumps(value))


def _first_difference(made: list, recorded) -> str | None:
    """The first difference between the lesions made and the record's, in words; None if none."""
    if not isinstance(recorded, list):
        return "the record lists no lesions"
    if len(made) != len(recorded):
        return f"{len(made)} lesion(s) placed, the record has {len(recorded)}"
    for number, (new, old) in enumerate(zip(made, recorded), start=1):
        if not isinstance(old, dict):
            return f"lesion {number} of the record is not a lesion record"
        keys = sorted(key for key in set(new) | set(old) if new.get(key) != old.get(key))
        if keys:
            return f"lesion {number}'s {keys[0]} is {new.get(keys[0])!r}, the record says {old.get(keys[0])!r}"
    return None


@lru_cache(maxsize=1)
def engine_fingerprint() -> str:
    """A digest of the version and of the case this engine makes on a small built-in CT phantom
    (two lesions of mixed sizes, mass effect; every drawn and measured value and the changed
    block's voxels): an engine, or numerical libraries, that would make other cases for the same
    seed give another digest, which the version number alone does not tell (about 40 ms, once per
    process), and so does a release whose changes this small case does not show (the version is
    bumped whenever what a seed makes changes).  Outputs made with different fingerprints do not
    belong in one data set."""
    from . import __version__
    from .config import LesionConfig
    from .phantom import make_ct_phantom
    from .synthesizer import synthesize_lesions

    phantom = make_ct_phantom(shape=(24, 64, 64), spacing=(2.0, 2.0, 3.0), seed=0)
    result = synthesize_lesions(phantom.image, phantom.organ_mask("liver"), phantom.geometry,
                                LesionConfig(size_class="mix", count=2, mass_effect=30.0), seed=0)
    digest = hashlib.blake2b(json.dumps(_as_read_back(result.case_record["lesions"]), sort_keys=True).encode(),
                             digest_size=8)
    digest.update(result.changed_digest()["blake2b"].encode())
    digest.update(__version__.encode())
    return digest.hexdigest()
