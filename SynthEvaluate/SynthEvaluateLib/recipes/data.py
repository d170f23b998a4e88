"""Labelled 2-D image sets for the evaluation protocols.

Images are kept as float32 in [0, 1] at one size; the intensity window and the size are part
of the set's ``preprocessing`` record, applied the same way to every set compared.  Sources:
arrays, a folder of PNG/NIfTI/NRRD slices with a CSV of labels, or slices of volumes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from MedSynthCommonLib.errors import MedSynthInputError
from MedSynthCommonLib.imageio import read_image_array
from MedSynthCommonLib.tables import FILE_COLUMN, LABEL_COLUMN, read_label_table


@dataclass(frozen=True)
class Preprocessing:
    """How raw intensities become network inputs: clip to [low, high] (None: each image's 1st
    and 99th percentile, for 8-bit photographs of films), scale to [0, 1], resize."""

    size: int = 64
    window: tuple[float, float] | None = None

    def apply(self, image: np.ndarray) -> np.ndarray:
        from skimage.transform import resize

        image = np.asarray(image, dtype=np.float32)
        if image.ndim == 3 and image.shape[-1] in (3, 4):  # RGB(A) stored grey films
            image = image[..., :3].mean(axis=-1)
        if image.ndim != 2:
            raise MedSynthInputError(f"Expected a 2-D grey image; got shape {image.shape}.")
        low, high = self.window if self.window is not None else np.percentile(image, [1, 99])
        scaled = np.clip((image - low) / max(high - low, 1e-6), 0.0, 1.0)
        return resize(scaled, (self.size, self.size), order=1, anti_aliasing=True, preserve_range=True).astype(np.float32)


@dataclass
class ImageSet:
    """images (n, size, size) float32 in [0, 1]; labels (n,) class indices; one id per image."""

    images: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    ids: list[str]
    source: str = "real"
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    #: (n, classes) 0/1 matrix for multi-label tasks (several findings per image); ``labels``
    #: then holds each image's first finding (or 0), used only to stratify splits
    findings: np.ndarray | None = None

    @classmethod
    def multilabel(cls, images, findings, finding_names: list[str], ids: list[str], source: str = "real",
                   preprocessing: Preprocessing | None = None) -> "ImageSet":
        """An image set where each image has any number of the ``finding_names``."""
        findings = np.asarray(findings)
        if findings.ndim != 2 or findings.shape[1] != len(finding_names) or not set(np.unique(findings)) <= {0, 1}:
            raise MedSynthInputError(
                f"findings must be a 0/1 matrix of (images, {len(finding_names)} findings); got shape {findings.shape}.")
        return cls(images, findings.argmax(axis=1), list(finding_names), ids, source,
                   preprocessing or Preprocessing(size=np.shape(images)[-1]), findings.astype(np.float32))

    def __post_init__(self) -> None:
        self.images = np.asarray(self.images, dtype=np.float32)
        self.labels = np.asarray(self.labels, dtype=np.int64)
        if self.images.ndim != 3 or len(self.images) != len(self.labels) or len(self.ids) != len(self.labels):
            raise MedSynthInputError(
                f"An image set needs (n, h, w) images with n labels and n ids; got {self.images.shape}, "
                f"{len(self.labels)} labels, {len(self.ids)} ids.")
        if len(self.labels) == 0:
            raise MedSynthInputError("The image set is empty.")
        if self.labels.min() < 0 or self.labels.max() >= len(self.class_names):
            raise MedSynthInputError(f"Labels must be 0..{len(self.class_names) - 1} for classes {self.class_names}.")

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, indices) -> "ImageSet":
        indices = np.asarray(indices)
        return ImageSet(self.images[indices], self.labels[indices], self.class_names,
                        [self.ids[i] for i in indices], self.source, self.preprocessing,
                        None if self.findings is None else self.findings[indices])

    def concat(self, other: "ImageSet", source: str) -> "ImageSet":
        if other.class_names != self.class_names:
            raise MedSynthInputError(f"Class names differ: {self.class_names} vs {other.class_names}.")
        findings = None if self.findings is None else np.concatenate([self.findings, other.findings])
        return ImageSet(np.concatenate([self.images, other.images]), np.concatenate([self.labels, other.labels]),
                        self.class_names, self.ids + other.ids, source, self.preprocessing, findings)

    def stratified_sample(self, count: int, rng: np.random.Generator) -> "ImageSet":
        """``count`` images with the classes in their current proportions (at least one each)."""
        if count >= len(self):
            return self
        chosen = []
        for c in range(len(self.class_names)):
            members = np.flatnonzero(self.labels == c)
            share = max(1, int(round(count * members.size / len(self)))) if members.size else 0
            chosen.extend(rng.choice(members, min(share, members.size), replace=False))
        return self.subset(np.sort(np.array(chosen[:count] if len(chosen) > count else chosen)))

    def summary(self) -> dict:
        counts = (self.findings.sum(axis=0).astype(int) if self.findings is not None
                  else np.bincount(self.labels, minlength=len(self.class_names)))
        return {"source": self.source, "images": len(self), "per_class": dict(zip(self.class_names, counts.tolist())),
                "size": self.preprocessing.size, "window": self.preprocessing.window}


def split(images: ImageSet, test_fraction: float, seed: int, groups: list[str] | None = None) -> tuple[ImageSet, ImageSet]:
    """Stratified train/test split (by class; a multi-label set at random); with ``groups``
    (e.g. patient ids) no group is on both sides."""
    from sklearn.model_selection import GroupShuffleSplit, ShuffleSplit, StratifiedShuffleSplit

    indices = np.arange(len(images))
    if groups is not None:
        splitter = GroupShuffleSplit(n_splits=1, test_size=test_fraction, random_state=seed)
        train, test = next(splitter.split(indices, images.labels, groups))
    elif images.findings is not None:  # several findings per image: no class to stratify by
        train, test = next(ShuffleSplit(n_splits=1, test_size=test_fraction, random_state=seed).split(indices))
    else:
        splitter = StratifiedShuffleSplit(n_splits=1, test_size=test_fraction, random_state=seed)
        train, test = next(splitter.split(indices, images.labels))
    return images.subset(train), images.subset(test)


def load_folder(folder: Path, labels_csv: Path | None = None, file_column: str = FILE_COLUMN,
                label_column: str = LABEL_COLUMN, preprocessing: Preprocessing = Preprocessing(),
                source: str = "real", class_names: list[str] | None = None, progress: bool = False) -> ImageSet:
    """Images listed in a CSV (see ``MedSynthCommonLib.tables.read_label_table``), preprocessed
    into an ``ImageSet``; ``progress`` shows a progress bar while they are read."""
    paths, labels, names, ids = read_label_table(folder, labels_csv, file_column, label_column, class_names)
    return ImageSet(_read_all(paths, preprocessing, folder, progress), labels, names, ids, source, preprocessing)


def load_findings_folder(folder: Path, findings: list[str], labels_csv: Path | None = None,
                         file_column: str = FILE_COLUMN, preprocessing: Preprocessing = Preprocessing(),
                         source: str = "real", progress: bool = False) -> ImageSet:
    """Images listed in a CSV with one 0/1 column per finding (``tables.read_findings_table``),
    preprocessed into a multi-label ``ImageSet``."""
    from MedSynthCommonLib.tables import read_findings_table

    paths, matrix, ids = read_findings_table(folder, findings, labels_csv, file_column)
    return ImageSet.multilabel(_read_all(paths, preprocessing, folder, progress), matrix, findings, ids, source,
                               preprocessing)


def _read_all(paths: list[Path], preprocessing: Preprocessing, folder: Path, progress: bool) -> np.ndarray:
    """(n, size, size) images read and preprocessed, with a progress bar when asked."""
    from MedSynthCommonLib.progress import progress_bar

    with progress_bar(len(paths), f"reading {Path(folder).name}", "image", enabled=progress) as bar:
        images = []
        for path in paths:
            images.append(preprocessing.apply(read_image_array(path)))
            bar.update(1)
    return np.stack(images)


def load_images(folder: Path, preprocessing: Preprocessing = Preprocessing(), progress: bool = False,
                labels_csv: Path | None = None, file_column: str = FILE_COLUMN) -> tuple[np.ndarray, list[str]]:
    """(images (n, size, size) in [0, 1], ids) of a folder: the files its label CSV lists when
    there is one (``labels_csv``, default FOLDER/labels.csv), else every 2-D image file in it
    (PNG, JPEG, TIFF, BMP, NIfTI/NRRD slices), sorted by name; labels are not needed."""
    from MedSynthCommonLib.imageio import IMAGE_2D_EXTENSIONS, VOLUME_EXTENSIONS
    from MedSynthCommonLib.progress import progress_bar
    from MedSynthCommonLib.tables import read_table

    folder = Path(folder)
    if not folder.is_dir():
        raise MedSynthInputError(f"{folder} is not a folder of images.")
    table = Path(labels_csv) if labels_csv is not None else folder / "labels.csv"
    if table.exists():
        ids = [row[file_column] for _, row in read_table(table, (file_column,), "image table")]
        paths = [folder / name for name in ids]
    else:
        paths = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
                       and p.name.lower().endswith(IMAGE_2D_EXTENSIONS + VOLUME_EXTENSIONS))
        ids = [p.name for p in paths]
    if not paths:
        raise MedSynthInputError(f"{folder} holds no image files (PNG, JPEG, TIFF, BMP, NIfTI, NRRD).")
    images = []
    with progress_bar(len(paths), f"reading {folder.name}", "image", enabled=progress) as bar:
        for path in paths:
            if not path.is_file():
                raise MedSynthInputError(f"{table} lists {path.name}, which is not in {folder}.")
            images.append(preprocessing.apply(read_image_array(path)))
            bar.update(1)
    return np.stack(images), ids
