"""Training sets for the translators, in image units (the model's window normalises them).

- ``slices``: 2-D slices of a volume along an axis, resized to the model's size (optionally
  only slices that contain a label), with the matching label-map slices as conditions;
- ``domain_folder``: grey images, volumes (their slices) or DICOM series (PNG, NIfTI, NRRD,
  DICOM) listed in a CSV with a domain label;
- ``mask_slices`` / ``mask_patches``: binary lesion masks cropped around each lesion, for the
  mask GAN (2-D: the lesion's largest slice; 3-D: a cube around it).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage

from MedSynthCommonLib.errors import MedSynthInputError


def _resize(image: np.ndarray, size: int, order: int) -> np.ndarray:
    from skimage.transform import resize

    return resize(np.asarray(image, np.float32), (size, size), order=order, preserve_range=True,
                  anti_aliasing=order > 0).astype(np.float32)


def slices(volume: np.ndarray, size: int, labels: np.ndarray | None = None, axis: int = 0,
           only_labelled: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """(n, size, size) image slices and, with ``labels``, the label slices (nearest)."""
    volume = np.moveaxis(np.asarray(volume), axis, 0)
    label_stack = None if labels is None else np.moveaxis(np.asarray(labels), axis, 0)
    if label_stack is not None and label_stack.shape != volume.shape:
        raise MedSynthInputError(f"Labels {label_stack.shape} and volume {volume.shape} differ in shape.")
    keep = [k for k in range(len(volume)) if not only_labelled or (label_stack is not None and label_stack[k].any())]
    if not keep:
        raise MedSynthInputError("No slice contains a label: nothing to train on.")
    images = np.stack([_resize(volume[k], size, 1) for k in keep])
    conditions = None if label_stack is None else np.stack([_resize(label_stack[k], size, 0) for k in keep]).round().astype(np.int64)
    return images, conditions


def grey_slices(path: Path, axis: int = 0) -> list[np.ndarray]:
    """The 2-D grey images of one file or DICOM series folder: a 2-D image (colour averaged to
    grey) is one; a 3-D volume or multi-frame DICOM gives its slices along ``axis`` (0 = k,
    the acquisition's slice axis).  Constant slices (padding, empty frames) are left out."""
    import SimpleITK as sitk

    from MedSynthCommonLib.imageio import read_image

    image = read_image(path)
    array = sitk.GetArrayFromImage(image).astype(np.float32)
    if image.GetNumberOfComponentsPerPixel() > 1:
        array = array[..., :3].mean(axis=-1)
    if array.ndim == 2:
        return [array]
    return [s for s in np.moveaxis(array, axis, 0) if s.max() > s.min()]


def domain_folder(folder: Path, size: int, labels_csv: Path | None = None, file_column: str = "path",
                  label_column: str = "label", domains: list[str] | None = None, axis: int = 0,
                  slices_per_volume: int | None = None, attribute_columns: tuple[str, ...] = ()
                  ) -> tuple[np.ndarray, np.ndarray, list[str], dict, np.ndarray]:
    """Images (image units, resized to ``size``), domain indices, domain names, a summary and
    the numeric ``attribute_columns`` of each image ((n, attributes) float32; (n, 0) when none)
    from a folder with a CSV of labels.  Each listed path is a 2-D image, a 3-D volume or a
    DICOM series folder; volumes contribute their slices along ``axis`` (all, or
    ``slices_per_volume`` evenly spaced ones), each with the volume's domain and attributes."""
    from MedSynthCommonLib.tables import read_label_table, read_numeric_columns

    from MedSynthCommonLib.progress import progress_bar

    paths, indices, names, ids = read_label_table(folder, labels_csv, file_column, label_column, domains,
                                                  keep_only=domains is not None)
    table = Path(labels_csv) if labels_csv is not None else Path(folder) / "labels.csv"
    per_file = read_numeric_columns(table, file_column, list(attribute_columns), ids)
    images, labels, attributes, files_per_domain = [], [], [], np.zeros(len(names), int)
    bar = progress_bar(len(paths), f"reading {Path(folder).name}", "file")
    for path, domain, values in zip(paths, indices, per_file):
        bar.update(1)
        found = grey_slices(path, axis)
        if not found:
            raise MedSynthInputError(f"{path} holds no non-constant slice: nothing to train on.")
        if slices_per_volume is not None and len(found) > slices_per_volume:
            found = [found[int(k)] for k in np.linspace(0, len(found) - 1, slices_per_volume).round()]
        images += [_resize(image, size, 1) for image in found]
        labels += [domain] * len(found)
        attributes += [values] * len(found)
        files_per_domain[domain] += 1
    bar.close()
    labels = np.array(labels)
    summary = {"folder": str(folder), "files": len(paths), "images": len(images),
               "files_per_domain": dict(zip(names, files_per_domain.tolist())),
               "per_domain": dict(zip(names, np.bincount(labels, minlength=len(names)).tolist()))}
    return np.stack(images), labels, names, summary, np.array(attributes, np.float32).reshape(len(images), -1)


def mask_slices(masks, size: int, margin: float = 0.25) -> np.ndarray:
    """One (size, size) binary slice per lesion component: its largest cross-section, cropped
    to a square around it with ``margin`` on each side, resized (nearest).  ``masks`` may be any
    iterable (e.g. a generator reading files one at a time: only the crops are kept)."""
    out = []
    for mask in masks:
        labelled, n = ndimage.label(np.asarray(mask) > 0)
        for component in range(1, n + 1):
            lesion = labelled == component
            k = int(np.argmax(lesion.sum(axis=(1, 2))))
            out.append(_square_crop(lesion[k], size, margin))
    if not out:
        raise MedSynthInputError("No lesion voxel in the masks: nothing to train the mask GAN on.")
    return np.stack(out).astype(np.float32)


def mask_patches(masks, size: int, margin: float = 0.25) -> np.ndarray:
    """One (size, size, size) binary cube per lesion component, cropped around it and resized
    (``masks``: any iterable, read one at a time)."""
    from skimage.transform import resize

    out = []
    for mask in masks:
        labelled, n = ndimage.label(np.asarray(mask) > 0)
        for box in ndimage.find_objects(labelled):
            lesion = labelled[box] > 0
            side = int(max(lesion.shape) * (1 + 2 * margin)) + 1
            cube = np.zeros((side,) * 3, bool)
            offset = [(side - s) // 2 for s in lesion.shape]
            cube[tuple(slice(o, o + s) for o, s in zip(offset, lesion.shape))] = lesion
            out.append(resize(cube.astype(np.float32), (size,) * 3, order=0, preserve_range=True) > 0.5)
    if not out:
        raise MedSynthInputError("No lesion voxel in the masks: nothing to train the mask GAN on.")
    return np.stack(out).astype(np.float32)


def read_masks(folder: Path, limit: int):
    """The NIfTI masks of ``folder`` (at most ``limit``), read one at a time with a progress bar:
    a generator, so that a thousand whole-brain masks never sit in memory together."""
    from MedSynthCommonLib.imageio import read_volume
    from MedSynthCommonLib.progress import progress_bar

    paths = sorted(p for p in Path(folder).glob("*.nii*") if not p.name.startswith("."))[:limit]
    if not paths:
        raise MedSynthInputError(f"No NIfTI masks in {folder}.")
    with progress_bar(len(paths), f"reading {Path(folder).name}", "mask") as bar:
        for path in paths:
            yield read_volume(path)[0]
            bar.update(1)


def _square_crop(mask2d: np.ndarray, size: int, margin: float) -> np.ndarray:
    rows, cols = np.nonzero(mask2d)
    centre = ((rows.min() + rows.max()) / 2, (cols.min() + cols.max()) / 2)
    half = max(rows.max() - rows.min(), cols.max() - cols.min()) / 2 * (1 + 2 * margin) + 1
    padded = np.pad(mask2d, int(half) + 2)
    r0, c0 = int(centre[0] - half) + int(half) + 2, int(centre[1] - half) + int(half) + 2
    side = int(2 * half)
    crop = padded[r0:r0 + side, c0:c0 + side]
    return _resize(crop.astype(np.float32), size, 0) > 0.5
