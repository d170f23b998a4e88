"""CT scans for the findings protocol and the triage queue, from CSV case lists.

A case list has a column ``image`` (a volume file or DICOM series folder) and optionally
``case_id`` and ``organ_mask`` (a label map on the image's grid, e.g. TotalSegmentator's);
relative paths are relative to the CSV.  Real training cases add one 0/1 column per finding
(e.g. ``hypodense lesion``).  Organ names come from ``VALUE=NAME`` items or a JSON file
(``FILE.json`` holding {"5": "liver", ...}, or ``FILE.json:KEY`` for such an object under KEY).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from MedSynthCommonLib.errors import MedSynthInputError
from MedSynthCommonLib.paths import safe_file_stem
from MedSynthCommonLib.tables import read_table, table_file
from MedSynthCommonLib.options import read_json

from .scans import HealthyScan


@dataclass(frozen=True)
class CtCase:
    case_id: str
    image: Path
    organ_mask: Path | None
    row: dict  # the CSV row, for extra columns (findings of real cases)


def organ_names_file(item: str) -> tuple[Path, str] | None:
    """(file, key) of an ``--organ-names`` item that names a JSON file (``FILE.json[:KEY]``);
    None for a ``VALUE=NAME`` item."""
    if "=" in item:
        return None
    file, _, key = item.partition(".json:")
    return Path(file + ".json" if key else item), key


def parse_organ_names(items: list[str]) -> dict[int, str]:
    """{label value: organ name} from ``VALUE=NAME`` items and/or ``FILE.json[:KEY]`` files."""
    names: dict[int, str] = {}
    for item in items:
        source = organ_names_file(item)
        if source is None:
            value, name = item.split("=", 1)
            if not value.strip().isdigit() or not name.strip():
                raise MedSynthInputError(f"Organ name {item!r}: give VALUE=NAME, e.g. 5=liver.")
            names[int(value)] = name.strip()
            continue
        path, key = source
        if not path.is_file():
            raise MedSynthInputError(f"Organ names {item!r}: no such file; give VALUE=NAME items (e.g. 5=liver) or "
                                     'a JSON file {"5": "liver", ...} as FILE.json[:KEY].')
        data = read_json(path, "organ names file")
        if key:
            data = data.get(key) if isinstance(data, dict) else None
        if not isinstance(data, dict) or not data or not all(str(k).isdigit() and isinstance(v, str)
                                                             for k, v in data.items()):
            raise MedSynthInputError(f"{item} does not hold an object of label values to organ names "
                                     '(e.g. {"5": "liver"}); name the key that holds one as FILE.json:KEY.')
        names.update({int(k): v for k, v in data.items()})
    return names


def read_ct_cases(path: Path, what: str = "case list") -> list[CtCase]:
    path = Path(path)
    cases = []
    for number, row in read_table(path, ("image",), what):
        files = [table_file(path, row, "image", number), table_file(path, row, "organ_mask", number, required=False)]
        case_id = row.get("case_id") or f"case{len(cases):04d}"
        safe_file_stem(case_id, f"Line {number} of {path}: case_id")
        cases.append(CtCase(case_id, files[0], files[1], row))
    ids = [c.case_id.casefold() for c in cases]
    if len(set(ids)) != len(ids):
        raise MedSynthInputError(f"{path} repeats a case_id; give each case its own.")
    return cases


def load_scan(case: CtCase, organ_names: dict[int, str] | None, need_organs: bool = True) -> HealthyScan:
    """The case's image (HU) and organ label map on one grid; the organ map may be absent only
    where ``need_organs`` is False (then locations fall back to coarse regions, for a model that
    reads whole scans)."""
    from MedSynthCommonLib.imageio import read_volume

    image, geometry = read_volume(case.image)
    if case.organ_mask is None:
        if need_organs:
            raise MedSynthInputError(f"Case {case.case_id} has no organ_mask; synthetic findings need the organs "
                                     "to put lesions in (add an organ_mask column, e.g. TotalSegmentator's map).")
        return HealthyScan(np.asarray(image, np.float32), None, {}, geometry)
    organs, organ_geometry = read_volume(case.organ_mask)
    if organs.shape != image.shape or not organ_geometry.is_close(geometry, tolerance_mm=0.5):
        raise MedSynthInputError(f"Case {case.case_id}: the organ mask {case.organ_mask.name} is not on the image's "
                                 f"grid (shape {organs.shape} vs {image.shape}, or origin/spacing/direction differ); "
                                 "resample it onto the image first.")
    if not organ_names:
        raise MedSynthInputError("Name the organ labels (--organ-names 5=liver ..., or a JSON file of them).")
    return HealthyScan(np.asarray(image, np.float32), np.asarray(organs).astype(np.int32), dict(organ_names), geometry)


def finding_columns(cases: list[CtCase], names: list[str], path: Path) -> np.ndarray:
    """(cases, findings) 0/1 from the columns named like the findings (real labelled cases)."""
    table = np.zeros((len(cases), len(names)), np.int64)
    for n, case in enumerate(cases):
        for f, name in enumerate(names):
            text = (case.row.get(name) or "").strip()
            if text not in ("0", "1"):
                raise MedSynthInputError(f"{path}, case {case.case_id}: the column {name!r} must hold 0 or 1 "
                                         f"(got {text!r}); give one such column per finding ({', '.join(names)}).")
            table[n, f] = int(text)
    return table
