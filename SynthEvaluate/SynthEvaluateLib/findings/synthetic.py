"""Scans with exact, located findings made by SynthLesion: a finding is a lesion type
("hypodense lesion"), or with ``label_set`` "type-organ" the type in one organ, or with
"type-organ-size" also its size class, all read from the lesion records; a scan holds none, one
or two lesions, each in an organ drawn from ``organs`` (``findings_scan``, ``synthetic_findings_set``)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from MedSynthCommonLib.errors import MedSynthInputError

from .anatomy import organ_words
from .scans import HealthyScan

FINDING_TYPES = {"hypodense lesion": "hypo", "hyperdense lesion": "hyper"}
#: SynthLesion preset per organ name (others: ct-generic)
ORGAN_PRESETS = {"liver": "ct-liver", "right kidney": "ct-kidney", "left kidney": "ct-kidney",
                 "kidney right": "ct-kidney", "kidney left": "ct-kidney", "pancreas": "ct-pancreas"}


LABEL_SETS = ("type", "type-organ", "type-organ-size")


def finding_name(lesion: str, organ: str, size_class: str, label_set: str = "type") -> str:
    """The finding a lesion of type ``lesion`` (a ``FINDING_TYPES`` key) is labelled as."""
    return {"type": lesion, "type-organ": f"{lesion} ({organ})",
            "type-organ-size": f"{lesion} ({organ}, {size_class})"}[label_set]


def finding_names(organs: list[str], label_set: str = "type",
                  size_classes: tuple[str, ...] = ("medium", "large")) -> list[str]:
    """Every finding of a label set, in a fixed order (sizes: every class up to the largest
    asked for, since a lesion too large for its organ falls back to a smaller class)."""
    organs = [organ_words(o) for o in organs]
    if label_set not in LABEL_SETS:
        raise MedSynthInputError(f"Unknown label set {label_set!r}; choose one of {', '.join(LABEL_SETS)}.")
    sizes = SIZE_CLASSES[:max(SIZE_CLASSES.index(s) for s in size_classes) + 1]
    return list(dict.fromkeys(finding_name(lesion, organ, size, label_set)
                              for lesion in FINDING_TYPES for organ in organs for size in sizes))


@dataclass
class FindingsSet:
    """Scans with exact, located findings: ``findings`` (n, F) 0/1 in ``names`` order;
    ``masks`` per scan {finding index: [k, j, i] bool lesion voxels}; ``references`` per scan
    a list of {finding, type, organ, size_class, size_mm, centre_ras}."""
    names: list[str]
    volumes: list[np.ndarray]
    findings: np.ndarray
    masks: list[dict[int, np.ndarray]]
    references: list[list[dict]]
    records: list[list[dict]]  # per scan: SynthLesion's lesion records (what made each lesion)


def findings_scan(scans: list[HealthyScan], n: int, organs: list[str], seed: int, names: list[str],
                  size_classes: tuple[str, ...] = ("medium", "large"), positive_rate: float = 0.5,
                  label_set: str = "type") -> tuple[np.ndarray, np.ndarray, dict, list[dict], list[dict]]:
    """Synthetic scan ``n`` (from ``scans[n % len(scans)]``, seeded by (seed, n) alone, so any
    scan can be made on its own, in any process): (image [k, j, i], findings row (F,) 0/1 in
    ``names`` order, {finding index: lesion voxels}, references, SynthLesion records)."""
    scan, organs = scans[n % len(scans)], [organ_words(o) for o in organs]
    rng = np.random.default_rng([seed, n])
    by_name = scan.organ_labels()
    available = [o for o in organs if o in by_name and (scan.organs == by_name[o]).any()]
    if not available:
        raise MedSynthInputError(f"Scan {n % len(scans)} has none of the organs {organs} in its label map.")
    image, row, masks, inserted, records = scan.image, np.zeros(len(names), np.int64), {}, [], []
    for lesion in FINDING_TYPES:
        if rng.random() >= positive_rate:
            continue
        organ = str(rng.choice(available))
        result = _insert(image, scan, by_name[organ], organ, FINDING_TYPES[lesion], str(rng.choice(size_classes)),
                         int(rng.integers(2 ** 31)))
        if result is None:  # no size fits this organ: the finding stays absent
            continue
        image = result.image
        record = result.records[0]
        name = finding_name(lesion, organ, record.size_class, label_set)
        f = names.index(name)
        masks[f] = masks.get(f, False) | (result.lesion_labels > 0)
        row[f] = 1
        inserted.append({"finding": name, "type": lesion, "organ": organ, "size_class": record.size_class,
                         "size_mm": round(record.target_diameter_mm, 1),
                         "centre_ras": [round(v, 1) for v in record.centre_ras]})
        records.append(record.to_dict())
    return image, row, masks, inserted, records


def check_organs(scans: list[HealthyScan], organs: list[str]) -> None:
    """Refuse organs that no scan's organ map names (listing the names it has)."""
    known = {organ_words(name) for scan in scans for name in scan.organ_names.values()}
    unknown = [organ for organ in [organ_words(o) for o in organs] if organ not in known]
    if unknown:
        raise MedSynthInputError(f"No organ map names {', '.join(map(repr, unknown))}; its names include "
                                 f"{', '.join(sorted(known)[:12])}{' ...' if len(known) > 12 else ''}.")


def synthetic_findings_set(scans: list[HealthyScan], count: int, organs: list[str], seed: int,
                           size_classes: tuple[str, ...] = ("medium", "large"), positive_rate: float = 0.5,
                           label_set: str = "type", progress: Callable[[str], None] | None = None) -> FindingsSet:
    """``count`` scans made from ``scans`` (in turn), each lesion type present with
    ``positive_rate``, in a random organ among ``organs`` (``findings_scan``)."""
    check_organs(scans, organs)
    names = finding_names(organs, label_set, size_classes)
    made = FindingsSet(names, [], np.zeros((count, len(names)), np.int64), [], [], [])
    started = time.perf_counter()
    for n in range(count):
        image, made.findings[n], masks, inserted, records = findings_scan(
            scans, n, organs, seed, names, size_classes, positive_rate, label_set)
        made.volumes.append(image)
        made.masks.append(masks)
        made.references.append(inserted)
        made.records.append(records)
        if progress is not None and ((n + 1) % 10 == 0 or n + 1 == count):
            eta = (time.perf_counter() - started) / (n + 1) * (count - n - 1)
            progress(f"synthetic scans: {n + 1}/{count}, ETA {eta:.0f} s")
    return made


SIZE_CLASSES = ("tiny", "small", "medium", "large")


def _insert(image, scan: HealthyScan, label: int, organ: str, lesion_type: str, size_class: str, seed: int):
    """One lesion of ``lesion_type`` in the organ (no mass effect, so the healthy organ map stays
    the truth), at ``size_class`` or the largest smaller class that fits (small organs); None
    when none fits.  The organ's preset is used where its intensity range fits this scan (an
    unenhanced kidney may not fit ``ct-kidney``), else ``ct-generic``."""
    from SynthLesionLib import LesionConfig, synthesize_lesions
    from SynthLesionLib.errors import PlacementError, PresetMismatchError

    presets = list(dict.fromkeys([ORGAN_PRESETS.get(organ, "ct-generic"), "ct-generic"]))
    for preset in presets:
        for size in reversed(SIZE_CLASSES[:SIZE_CLASSES.index(size_class) + 1]):
            config = LesionConfig(preset=preset, lesion_type=lesion_type, size_class=size, count=1,
                                  mass_effect=0.0)  # the organ map stays exact
            try:
                result = synthesize_lesions(image, scan.organs, scan.geometry, config, seed=seed, organ_label=label)
            except PlacementError:
                continue
            except PresetMismatchError:
                if preset == presets[-1]:
                    raise
                break  # this preset does not fit the organ's intensities: the next one
            if result.records:
                return result
        else:
            return None  # the preset fits, no size does
    return None
