"""What the engine accepts: the image, the organ mask and its label, and where the new image
goes (``out``), each refused with a message that says what to give instead."""

from __future__ import annotations

import numpy as np

from MedSynthCommonLib.errors import MedSynthInputError
from MedSynthCommonLib.geometry import check_finite, check_same_grid, check_volume


def organ_of(organ_mask: np.ndarray, organ_label: int | None) -> np.ndarray:
    """The organ as a boolean volume: ``mask == organ_label``, or without a label the nonzero
    voxels, read where they are for a boolean or 0/1 uint8 mask (the same bytes: no copy).
    Refused (``check_organ_label``): a label the mask's type cannot hold, several labels without
    one."""
    mask = np.asarray(organ_mask)
    if organ_label is not None:
        check_organ_label(mask, organ_label)
        return mask == organ_label
    if mask.dtype == np.bool_:
        return mask
    if _zeros_and_ones(mask):  # told from its maximum alone
        return mask.view(np.bool_) if mask.dtype == np.uint8 else mask != 0
    check_organ_label(mask, None)
    return mask != 0


def check_organ_label(organ_mask: np.ndarray, organ_label: int | None) -> None:
    """Without ``organ_label`` the mask must be binary: a multi-organ map would make every
    organ 'the organ'.  With it, the label must be a value the mask's type can hold (the organ
    itself is checked downstream)."""
    if organ_label is not None:
        mask = np.asarray(organ_mask)
        if np.issubdtype(mask.dtype, np.integer) and not np.iinfo(mask.dtype).min <= organ_label <= np.iinfo(mask.dtype).max:
            raise MedSynthInputError(f"The organ label {organ_label} is not a value the organ mask ({mask.dtype}) can "
                                     "hold; give the organ's value in the mask.")
        return
    mask = np.asarray(organ_mask)
    if mask.dtype == np.bool_ or _one_nonzero_value(mask):
        return
    if np.issubdtype(mask.dtype, np.integer) and mask.min() >= 0 and mask.max() < 2**16:
        values = np.flatnonzero(np.bincount(mask.ravel()))
    else:
        values = np.unique(mask)
    values = [v for v in values.tolist() if v != 0]
    if len(values) > 1:
        shown = ", ".join(f"{v:g}" for v in values[:12]) + (", ..." if len(values) > 12 else "")
        raise MedSynthInputError(
            f"The organ mask holds {len(values)} labels ({shown}): say which is the organ with --organ-label "
            "(organ_label in Python; e.g. 5 = liver in TotalSegmentator maps). Without it every labelled voxel would "
            "count as the organ.")


def _one_nonzero_value(mask: np.ndarray) -> bool:
    """True when an integer mask holds at most one value besides 0, told from its extremes (and,
    for a mask of 0 and one other value, two counts): 1.3 ms for a 37 M-voxel 0/1 uint8 mask,
    13 ms at most, where listing its values (``np.bincount``, which widens every voxel to int64
    first) took 195 ms a call.  False for other types, whose values are then listed."""
    if not np.issubdtype(mask.dtype, np.integer) or mask.size == 0:
        return mask.size == 0
    if _zeros_and_ones(mask):  # the usual mask
        return True
    high, low = mask.max(), mask.min()
    if low == high:
        return True
    if low != 0 and high != 0:  # two values besides 0: both extremes
        return False
    value = high if low == 0 else low
    return np.count_nonzero(mask) == np.count_nonzero(mask == value)


def _zeros_and_ones(mask: np.ndarray) -> bool:
    """Whether an unsigned integer mask holds only 0 and 1 (its maximum: 1.3 ms at 37 M voxels)."""
    if not np.issubdtype(mask.dtype, np.unsignedinteger) or mask.size == 0:
        return False
    return bool(mask.max() <= 1)


def check_inputs(image, organ_mask, geometry, mask_geometry, avoid_mask) -> None:
    image = np.asarray(image)
    check_volume(image, "The image")
    check_volume(np.asarray(organ_mask), "The organ mask")
    check_same_grid(image, geometry, np.asarray(organ_mask), mask_geometry)
    if avoid_mask is not None:
        check_same_grid(image, geometry, np.asarray(avoid_mask), None, "avoid mask")
    if not (np.issubdtype(image.dtype, np.integer) or np.issubdtype(image.dtype, np.floating)):
        raise MedSynthInputError(f"The image has data type {image.dtype}; a numeric scalar volume is needed.")
    check_finite(image, "The image")


def check_out(out, image: np.ndarray, organ_mask, avoid_mask) -> None:
    """``out`` must be None, the image itself, or a writable array of its shape and dtype that
    shares no memory with any input."""
    if out is None or out is image:
        if out is not None and not image.flags.writeable:
            raise MedSynthInputError("out is the image, but the image is read-only; pass a writable image or "
                                     "leave out out (a new image is made).")
        return
    if not isinstance(out, np.ndarray):
        raise MedSynthInputError(f"out must be a NumPy array of the image's shape and dtype, got {type(out).__name__}.")
    if out.shape != image.shape or out.dtype != image.dtype:
        raise MedSynthInputError(f"out is {out.dtype} {out.shape}, but the image is {image.dtype} {image.shape}; "
                                 "give an array of the image's shape and dtype (e.g. np.empty_like(image)).")
    if not out.flags.writeable:
        raise MedSynthInputError("out is read-only; give a writable array.")
    for name, other in (("the image", image), ("the organ mask", organ_mask), ("the avoid mask", avoid_mask)):
        if other is not None and np.may_share_memory(out, other):
            raise MedSynthInputError(f"out shares memory with {name} without being the image itself; give a "
                                     "separate array, or the image itself to insert in place.")
