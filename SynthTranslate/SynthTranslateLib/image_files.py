"""Images and volumes on disk for ``translate apply``: read as in training, written like the input.

2-D images (PNG, JPEG, 2-D NIfTI or DICOM, the kind X-ray models are trained on) and 3-D
volumes are accepted; colour (RGB/RGBA) is averaged to grey as the training sets were.  The
translation is written in the format and size of the input: a 2-D image with the input's pixel
type, channels (grey repeated, alpha kept) and spacing; a volume as float32 on the input's grid.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from MedSynthCommonLib.errors import MedSynthInputError
from MedSynthCommonLib.geometry import Geometry


@dataclass
class TranslatableImage:
    grey: np.ndarray  # [y, x] or [k, j, i], float32 grey
    source: object  # the SimpleITK image read
    path: Path
    geometry: Geometry | None  # volumes only
    dtype: np.dtype
    channels: int
    alpha: np.ndarray | None

    @property
    def is_2d(self) -> bool:
        return self.grey.ndim == 2


def read_translatable(path: Path) -> TranslatableImage:
    """A 2-D image or a 3-D scalar volume to translate; anything else is refused clearly."""
    import SimpleITK as sitk

    from MedSynthCommonLib.imageio import geometry_from_sitk, read_image

    image = read_image(path)
    dims, channels = image.GetDimension(), image.GetNumberOfComponentsPerPixel()
    array = sitk.GetArrayFromImage(image)
    if dims == 3 and array.shape[0] == 1 and channels in (1, 3, 4):  # a 2-D image stored as one slice
        image, array, dims = image[:, :, 0], array[0], 2
    if dims not in (2, 3) or channels not in (1, 3, 4) or (dims == 3 and channels != 1):
        raise MedSynthInputError(
            f"{path} is a {dims}-D image with {channels} value(s) per pixel; translate needs a 2-D image (grey, RGB "
            "or RGBA) or a 3-D scalar volume. Extract one frame or component first.")
    alpha = None
    grey = array.astype(np.float32)
    if channels > 1:
        alpha = array[..., 3] if channels == 4 else None
        grey = grey[..., :3].mean(axis=-1)
    bad = int(np.size(grey) - np.count_nonzero(np.isfinite(grey)))
    if bad:
        raise MedSynthInputError(f"{path} has {bad} NaN or infinite pixel(s); replace them (e.g. with the background "
                                 "value) before translating.")
    return TranslatableImage(grey, image, Path(path), geometry_from_sitk(image) if dims == 3 else None,
                             array.dtype, channels, alpha)


def output_pixel_type(path: Path, window: tuple[float, float]) -> np.dtype:
    """The pixel type of a 2-D image made from a label map: float32 where the format holds it
    (NIfTI, NRRD, MHA), else the smallest unsigned integer that holds the model's intensity
    window (PNG/TIFF: 8 or 16 bits); a window with negative values needs a float format."""
    from MedSynthCommonLib.imageio import VOLUME_EXTENSIONS

    if Path(path).name.lower().endswith(VOLUME_EXTENSIONS):
        return np.dtype(np.float32)
    low, high = window
    if low < 0 or high > 65535:
        raise MedSynthInputError(f"The model's intensities ({low:g} to {high:g}) do not fit a {Path(path).suffix} "
                                 "image; write a .nii.gz or .nrrd instead.")
    return np.dtype(np.uint8 if high <= 255 else np.uint16)


def write_translated(path: Path, translated: np.ndarray, like: TranslatableImage,
                     pixel_type: np.dtype | None = None) -> Path:
    """Write ``translated`` (float, the input's shape) in the input's format and size, with the
    input's pixel type (an int16 CT stays int16: rounded, clipped to the type's range) unless
    ``pixel_type`` says otherwise (images made from label maps)."""
    from MedSynthCommonLib.imageio import write_image_2d, write_volume

    values = translated
    dtype = np.dtype(pixel_type or like.dtype)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        values = np.clip(np.rint(values), info.min, info.max)
    values = values.astype(dtype)
    if not like.is_2d:
        return write_volume(path, values, like.geometry)
    if like.channels > 1:
        values = np.stack([values] * 3 + ([like.alpha] if like.alpha is not None else []), axis=-1)
    return write_image_2d(path, values, like=like.source)
