"""Reading and writing images (NIfTI, NRRD, PNG, DICOM and what else SimpleITK reads) with geometry.

SimpleITK stores geometry in LPS; MedSynth's ``Geometry`` is RAS (Slicer's convention).
Every input file is checked to be whole before it is used (``integrity.check_image_file``);
every output is written through ``storage.atomic_write``: whole and checked, or absent.
User files are read as pixel data only: nothing in them is ever executed.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .errors import MedSynthInputError
from .geometry import LPS_TO_RAS, Geometry
from .integrity import check_image_file, count_nonfinite, nonfinite_error
from .memory import check_declared_size
from .storage import atomic_write
from .paths import check_utf8_name

#: extensions SimpleITK writes for 3-D volumes (2-D formats such as PNG cannot hold one)
VOLUME_EXTENSIONS = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")
IMAGE_2D_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


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


def _check_header(path: Path, slices: int = 1) -> None:
    """Refuse a file whose header declares more data than memory holds, before decoding it
    (``slices``: files of a DICOM series like this one).  Unreadable headers are left to the
    integrity check and the reader, which say what is wrong."""
    reader = _sitk().ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        return
    size = tuple(reader.GetSize())
    if slices > 1:
        size = (*size[:2], max(size[2] if len(size) > 2 else 1, 1) * slices)
    check_declared_size(path, size, reader.GetNumberOfComponents())


def _finite_pixels(image, path: Path):
    """``image``, refused when its float pixels hold NaN or infinity (one reduction pass)."""
    sitk = _sitk()
    if "float" not in image.GetPixelIDTypeAsString():
        return image
    bad = count_nonfinite(sitk.GetArrayViewFromImage(image))
    if bad:
        raise nonfinite_error(path, bad)
    return image


def read_image(path: str | os.PathLike):
    """A SimpleITK image from a file (NIfTI, NRRD, PNG, DICOM incl. multi-frame, ...) or from
    a folder holding one DICOM series (slices sorted by position).  Damaged files are refused."""
    sitk = _sitk()
    path = Path(path)
    check_utf8_name(path, "input")
    if not path.exists():
        raise MedSynthInputError(f"File not found: {path}")
    if not (path.is_file() or path.is_dir()):  # reading a FIFO would wait for ever; a device never ends
        raise MedSynthInputError(f"{path} is not a regular file (a pipe, socket or device); give an image file or a "
                                 "DICOM series folder.")
    try:
        if not path.is_dir():
            _check_header(path)
            check_image_file(path, finite=True)
            return _finite_pixels(sitk.ReadImage(str(path)), path)
        for entry in path.iterdir():
            check_utf8_name(entry, "DICOM file")
        series = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(path))
        if len(series) != 1:
            found = f"{len(series)} DICOM series ({', '.join(series[:3])}{', ...' if len(series) > 3 else ''})" \
                if series else "no DICOM series"
            raise MedSynthInputError(f"{path} is a folder with {found}; give an image file or a folder holding one series.")
        files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(path), series[0])
        _check_header(Path(files[0]), len(files))
        reader = sitk.ImageSeriesReader()
        reader.SetFileNames(files)
        return _finite_pixels(reader.Execute(), path)
    except RuntimeError as error:
        raise MedSynthInputError(f"Could not read {path} as an image ({str(error).strip().splitlines()[-1]}).") from None
    except OSError as error:
        raise MedSynthInputError(f"Could not read {path}: {error.strerror or error}.") from None


def read_volume(path: str | os.PathLike) -> tuple[np.ndarray, Geometry]:
    """Read a 3-D scalar volume (a file or a DICOM series folder); returns ``(array[k, j, i], geometry)``."""
    sitk = _sitk()
    image = read_image(path)
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        components = image.GetNumberOfComponentsPerPixel()
        kind = (f"a {image.GetDimension()}-D image" if components == 1
                else f"a {image.GetDimension()}-D image with {components} values per voxel (colour, vector or time series)")
        raise MedSynthInputError(f"{path} is {kind}; this needs a 3-D scalar volume (extract one 3-D frame first).")
    return sitk.GetArrayFromImage(image), geometry_from_sitk(image)


def read_image_array(path: str | os.PathLike) -> np.ndarray:
    """A 2-D or 3-D image (PNG, NIfTI, NRRD, DICOM file or series folder...) as an array;
    single-slice volumes become 2-D, colour stays in a last axis."""
    image = _sitk().GetArrayFromImage(read_image(path))
    return image[0] if image.ndim >= 3 and image.shape[0] == 1 and (image.ndim == 4 or image.shape[-1] > 4) else image


def volume_extension_check(path: Path, what: str = "output") -> None:
    """Refuse an output name whose extension cannot hold a 3-D volume, before any work is done."""
    name = Path(path).name.lower()
    if not name.endswith(VOLUME_EXTENSIONS):
        raise MedSynthInputError(f"The {what} {path} has no volume file extension; use one of "
                                 f"{', '.join(VOLUME_EXTENSIONS)} (e.g. {Path(path).stem.split('.')[0]}.nii.gz).")


def _verify_image(expected_shape: tuple, components: int):
    def verify(partial: Path) -> None:
        check_image_file(partial)
        reader = _sitk().ImageFileReader()
        reader.SetFileName(str(partial))
        reader.ReadImageInformation()
        size = tuple(reversed(reader.GetSize()))
        if size != tuple(expected_shape) or reader.GetNumberOfComponents() != components:
            raise MedSynthInputError(f"the file written holds {size} x {reader.GetNumberOfComponents()} "
                                     f"instead of {tuple(expected_shape)} x {components}")
    return verify


def volume_writer(array: np.ndarray, geometry: Geometry, compress: bool = True):
    """``(write, verify)`` for ``storage.atomic_write``/``OutputSet``: ``array[k, j, i]`` with ``geometry``."""
    sitk = _sitk()
    array = np.ascontiguousarray(array)
    if array.dtype == np.bool_:
        array = array.astype(np.uint8)
    image = sitk.GetImageFromArray(array)
    apply_geometry_to_sitk(image, geometry)
    return (lambda partial: sitk.WriteImage(image, str(partial), compress)), _verify_image(array.shape, 1)


def write_volume(path: str | os.PathLike, array: np.ndarray, geometry: Geometry, compress: bool = True) -> Path:
    """Write ``array[k, j, i]`` with ``geometry``, whole or not at all; the format follows the extension."""
    path = Path(path)
    volume_extension_check(path)
    return atomic_write(path, *volume_writer(array, geometry, compress))


def image_writer(image, compress: bool = True):
    """``(write, verify)`` for ``storage.atomic_write``/``OutputSet``: any SimpleITK image."""
    sitk = _sitk()
    shape = tuple(reversed(image.GetSize()))
    return (lambda partial: sitk.WriteImage(image, str(partial), compress)), \
        _verify_image(shape, image.GetNumberOfComponentsPerPixel())


def image_2d_writer(array: np.ndarray, like=None, compress: bool = True):
    """``(write, verify)`` of a 2-D image (``[y, x]`` grey or ``[y, x, 3|4]`` colour) for
    ``atomic_write``/``OutputSet``; the format follows the file's extension (PNG/JPEG need 8- or
    16-bit integers; NIfTI/NRRD take any type); ``like`` (a SimpleITK image of the same size)
    gives spacing, origin and direction."""
    sitk = _sitk()
    array = np.ascontiguousarray(array)
    image = sitk.GetImageFromArray(array, isVector=array.ndim == 3)
    if like is not None:
        image.CopyInformation(like)
    return image_writer(image, compress)


def write_image_2d(path: str | os.PathLike, array: np.ndarray, like=None, compress: bool = True) -> Path:
    """Write a 2-D image whole or not at all (see ``image_2d_writer``)."""
    return atomic_write(Path(path), *image_2d_writer(array, like, compress))


def write_png(path: str | os.PathLike, rgb: np.ndarray) -> Path:
    """Write an RGB uint8 ``[y, x, 3]`` picture as PNG, whole or not at all."""
    return write_image_2d(path, np.asarray(rgb, dtype=np.uint8))
