"""Reading and writing volumes (NIfTI, NRRD, and whatever SimpleITK reads) with geometry.

SimpleITK stores geometry in LPS; MedSynth's ``Geometry`` is RAS (Slicer's convention).
Writes are atomic: the file is written next to its destination and renamed into place, so an
interrupted run never leaves a half-written output.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

from .errors import MedSynthInputError
from .geometry import LPS_TO_RAS, Geometry


def _sitk():
    import SimpleITK as sitk  # imported late: Slicer ships it, the engine core does not need it

    return sitk


def geometry_from_sitk(image) -> Geometry:
    direction_lps = np.array(image.GetDirection(), dtype=float).reshape(3, 3)
    return Geometry(LPS_TO_RAS @ np.array(image.GetOrigin()), np.array(image.GetSpacing()),
                    LPS_TO_RAS @ direction_lps)


def apply_geometry_to_sitk(image, geometry: Geometry) -> None:
    image.SetOrigin(tuple(float(v) for v in LPS_TO_RAS @ geometry.origin))
    image.SetSpacing(tuple(float(v) for v in geometry.spacing))
    image.SetDirection(tuple(float(v) for v in (LPS_TO_RAS @ geometry.direction).ravel()))


def read_image(path: str | os.PathLike):
    """A SimpleITK image from a file (NIfTI, NRRD, PNG, DICOM incl. multi-frame, ...) or from
    a folder holding one DICOM series (slices sorted by position)."""
    sitk = _sitk()
    path = Path(path)
    if not path.exists():
        raise MedSynthInputError(f"File not found: {path}")
    try:
        if not path.is_dir():
            return sitk.ReadImage(str(path))
        series = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(path))
        if len(series) != 1:
            found = f"{len(series)} DICOM series ({', '.join(series[:3])}{', ...' if len(series) > 3 else ''})" \
                if series else "no DICOM series"
            raise MedSynthInputError(f"{path} is a folder with {found}; give an image file or a folder holding one series.")
        reader = sitk.ImageSeriesReader()
        reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(path), series[0]))
        return reader.Execute()
    except RuntimeError as error:
        raise MedSynthInputError(f"Could not read {path} as an image ({str(error).strip().splitlines()[-1]}).") from None


def read_volume(path: str | os.PathLike) -> tuple[np.ndarray, Geometry]:
    """Read a 3-D scalar volume (a file or a DICOM series folder); returns ``(array[k, j, i], geometry)``."""
    sitk = _sitk()
    image = read_image(path)
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise MedSynthInputError(
            f"{path} is a {image.GetDimension()}-D image with {image.GetNumberOfComponentsPerPixel()} "
            "component(s) per voxel; lesion synthesis needs a 3-D scalar volume."
        )
    return sitk.GetArrayFromImage(image), geometry_from_sitk(image)


def _atomic_target(path: Path):
    """A temporary path in the destination folder with the same (multi-part) extension."""
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(path.suffixes) or ".nrrd"
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(handle)
    return Path(temporary)


def write_volume(path: str | os.PathLike, array: np.ndarray, geometry: Geometry, compress: bool = True) -> Path:
    """Write ``array[k, j, i]`` with ``geometry`` atomically; the format follows the extension."""
    sitk = _sitk()
    path = Path(path)
    image = sitk.GetImageFromArray(np.ascontiguousarray(array))
    apply_geometry_to_sitk(image, geometry)
    temporary = _atomic_target(path)
    try:
        sitk.WriteImage(image, str(temporary), compress)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    path = Path(path)
    temporary = _atomic_target(path)
    try:
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path


def write_json_atomic(path: str | os.PathLike, data) -> Path:
    return write_text_atomic(path, json.dumps(data, indent=2) + "\n")
