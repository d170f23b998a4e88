"""SynthLesion as MONAI transforms: lesions synthesised on the fly inside a training pipeline
(the seed paper's on-the-fly mode), with exact labels.

``RandSynthLesiond`` (dictionary) and ``RandSynthLesion`` (image, label) follow MONAI's
conventions: ``Randomizable`` (``set_random_state``, honoured by ``Compose``), channel-first
arrays or ``MetaTensor``s whose affine gives the grid (spacing in mm and orientation read from
it, so ``Spacingd``/``Orientationd`` before it are respected), safe in DataLoader workers and
after a ``CacheDataset``'s deterministic prefix.  What was drawn is recorded in the image's
metadata (``synth_lesion``, a JSON string so that it collates), and the seed of every call comes
from the transform's own random state, never from global state.

``PrepareOrgand`` measures the organ once (``prepare_organ``) as a deterministic step, so a
``CacheDataset`` keeps the measurement with the cached item and ``RandSynthLesiond(stats_key=...)``
reuses it on every draw instead of measuring the organ again.  A drawn size class that fits
nowhere in the organ leaves the item as it is (the record says why) rather than stopping training.

Requires MONAI (imported here, not by ``SynthLesionLib`` itself).
"""

from __future__ import annotations

import json
import warnings
from typing import Hashable, Mapping, Sequence

import numpy as np
from monai.config import KeysCollection
from monai.transforms import MapTransform, Randomizable

from MedSynthCommonLib.errors import MedSynthInputError
from MedSynthCommonLib.geometry import Geometry

from .config import LesionConfig
from .errors import PlacementError
from .organ import OrganStatistics
from .sizes import SIZE_CLASSES

#: metadata key holding what a call drew (JSON), in the image's (and label's) meta dict
RECORD_KEY = "synth_lesion"


def geometry_from_affine(affine) -> Geometry:
    """A MONAI affine (voxel (i, j, k) -> world mm, RAS for MONAI's readers) as a ``Geometry``
    (the inverse of ``Geometry.ijk_to_ras_matrix``)."""
    affine = np.asarray(affine.detach().cpu() if hasattr(affine, "detach") else affine, dtype=float)
    if affine.shape != (4, 4):
        raise MedSynthInputError(f"Expected a 4x4 affine for a 3-D image, got shape {affine.shape}.")
    columns = affine[:3, :3]
    spacing = np.linalg.norm(columns, axis=0)
    return Geometry(affine[:3, 3], spacing, columns / spacing)


def engine_geometry(affine) -> Geometry:
    """The geometry under which the engine can work on a MONAI array ``[x, y, z]`` as it is.

    The engine indexes arrays as ``[k, j, i]`` with ``Geometry`` axes i, j, k; a MONAI array's
    axes are the affine's i, j, k in that order.  Reversing the axes of the geometry (spacing and
    direction columns) makes array axis 0 the engine's k: the same voxels land at the same RAS
    positions, and no array is transposed or copied."""
    geometry = geometry_from_affine(affine)
    return Geometry(geometry.origin, geometry.spacing[::-1], geometry.direction[:, ::-1])


def engine_array_affine(geometry: Geometry) -> np.ndarray:
    """The affine under which an engine array ``[k, j, i]`` on ``geometry`` is a MONAI array as
    it is (the inverse of ``engine_geometry``): how the engine's own cases enter the transforms."""
    return Geometry(geometry.origin, geometry.spacing[::-1], geometry.direction[:, ::-1]).ijk_to_ras_matrix()


def _as_numpy(value) -> np.ndarray:
    if hasattr(value, "detach"):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def _like(template, array: np.ndarray):
    """``array`` in the container of ``template`` (MetaTensor with its metadata, tensor or ndarray)."""
    if hasattr(template, "detach"):
        import torch

        out = torch.as_tensor(array, dtype=template.dtype, device=template.device)
        if hasattr(template, "copy_meta_from"):
            from monai.data import MetaTensor

            out = MetaTensor(out)
            out.copy_meta_from(template)
        return out
    return array.astype(np.asarray(template).dtype, copy=False)


def _item_name(image) -> str:
    """The file an item came from (a MetaTensor's ``filename_or_obj``), for error messages."""
    meta = getattr(image, "meta", None) or {}
    name = meta.get("filename_or_obj")
    return f"{name}: " if isinstance(name, str) and name else ""


def _engine_inputs(image, label, affine=None) -> tuple[np.ndarray, np.ndarray, Geometry]:
    """(image, label) as numpy arrays (1, X, Y, Z), checked to be channel-first, of one shape and
    on one grid, and the ``Geometry`` under which the engine reads them (``affine``, else the
    image's own, else the identity)."""
    array, labels = _as_numpy(image), _as_numpy(label)
    if array.ndim != 4 or array.shape[0] != 1 or labels.shape != array.shape:
        raise MedSynthInputError(f"Expected channel-first (1, X, Y, Z) image and label of one shape; got "
                                 f"{array.shape} and {labels.shape} (EnsureChannelFirstd before this transform).")
    affine = getattr(image, "affine", None) if affine is None else affine
    label_affine = getattr(label, "affine", None)
    if affine is not None and label_affine is not None and not np.allclose(
            _as_numpy(affine), _as_numpy(label_affine), atol=1e-4):
        raise MedSynthInputError(
            "The image and the label map lie on different grids (their affines differ); resample the label onto "
            "the image (e.g. the same Spacingd/Orientationd on both keys, nearest neighbour for the label) before "
            "this transform.")
    return array, labels, engine_geometry(np.eye(4) if affine is None else affine)


def _with_record(value, summary: str):
    """``value`` with ``summary`` in its metadata: a new MetaTensor header on the same data (the
    input's metadata, e.g. a cached item's, is not modified); plain arrays are returned as they are."""
    if not hasattr(value, "copy_meta_from"):
        return value
    from monai.data import MetaTensor

    out = MetaTensor(value.as_tensor())
    out.copy_meta_from(value)
    out.meta[RECORD_KEY] = summary
    return out


class RandSynthLesion(Randomizable):
    """Insert lesions into a channel-first image (1, X, Y, Z) inside ``organ_label`` of its label
    map; returns (image, label) with the lesion voxels set to ``lesion_label``.

    Args:
        organ_label: the organ's value in the label map.
        lesion_label: value written for lesion voxels (default: the largest label + 1).
        prob: probability of inserting lesions in one call.
        size_classes: one drawn per call (tiny, small, medium, large).
        count: (low, high) lesions per call, drawn uniformly.
        preset: SynthLesion preset name or preset file.
        affine: the image's affine when arrays (not MetaTensors) are given; default identity.
        warn_when_nothing_fits: warn (once per place) when a drawn size class fits nowhere in an
            item's organ and the item goes on without lesions; off for callers that draw again.
        options: other ``LesionConfig`` fields (phase, lesion_type, contrast, ...).  The mass
            effect defaults to 0: it would move the organ but not the label map's other labels.
    """

    def __init__(self, organ_label: int = 1, lesion_label: int | None = None, prob: float = 0.5,
                 size_classes: Sequence[str] = ("tiny", "small", "medium"), count: tuple[int, int] = (1, 3),
                 preset: str = "ct-liver", affine=None, warn_when_nothing_fits: bool = True, **options):
        unknown = [s for s in size_classes if s not in SIZE_CLASSES]
        if unknown or not size_classes:
            raise MedSynthInputError(f"size_classes must be among {list(SIZE_CLASSES)}, got {list(size_classes)}.")
        if not 0.0 <= prob <= 1.0:
            raise MedSynthInputError(f"prob must lie in [0, 1], got {prob}.")
        low, high = count
        if not 1 <= low <= high:
            raise MedSynthInputError(f"count must be (low, high) with 1 <= low <= high, got {count}.")
        self.organ_label, self.lesion_label, self.prob = organ_label, lesion_label, prob
        self.size_classes, self.count, self.preset, self.affine = tuple(size_classes), (low, high), preset, affine
        self.warn_when_nothing_fits = warn_when_nothing_fits
        self.options = {"mass_effect": 0.0, **options}
        LesionConfig(preset=preset, **self.options).validate()  # refuse bad options at construction
        self._do, self._seed, self._size, self._count = False, 0, self.size_classes[0], low
        #: the last call's case record (what made it); None when that call inserted nothing
        self.last_record: dict | None = None

    def randomize(self, data=None) -> None:
        self._do = self.R.rand() < self.prob
        self._seed = int(self.R.randint(0, 2**31 - 1))
        self._size = self.size_classes[self.R.randint(len(self.size_classes))]
        self._count = int(self.R.randint(self.count[0], self.count[1] + 1))

    def __call__(self, image, label, randomize: bool = True, organ_stats: OrganStatistics | None = None):
        """``organ_stats``: the organ measured once on this image and label (``prepare_organ`` or
        ``PrepareOrgand``), reused instead of measured again."""
        if randomize:
            self.randomize()
        self.last_record = None
        if not self._do:  # the record says so, so that batches of items with and without lesions collate
            skipped = json.dumps({"seed": self._seed, "inserted": False})
            return _with_record(image, skipped), _with_record(label, skipped)
        from .synthesizer import synthesize_lesions

        array, labels, geometry = _engine_inputs(image, label, self.affine)
        organ = labels[0] == self.organ_label
        config = LesionConfig(preset=self.preset, size_class=self._size, count=self._count, **self.options)
        try:
            result = synthesize_lesions(array[0], organ, geometry, config, self._seed, organ_stats=organ_stats)
        except PlacementError as error:  # this class fits nowhere in this organ: the item goes on without
            skipped = json.dumps({"seed": self._seed, "inserted": False, "size_class": self._size,
                                  "reason": str(error)})
            # said once per place (Python's default warning filter), so that a run in which no
            # lesion ever fits does not pass for one with lesions
            if self.warn_when_nothing_fits:
                warnings.warn(f"{_item_name(image)}no {self._size} lesion fits this item's organ, which goes on "
                              f"without lesions (its '{RECORD_KEY}' record says why); choose smaller size_classes if "
                              "this repeats.", UserWarning, stacklevel=2)
            return _with_record(image, skipped), _with_record(label, skipped)
        except MedSynthInputError as error:  # e.g. an item without the organ: say which item
            raise MedSynthInputError(f"{_item_name(image)}{error}") from None
        value = self.lesion_label if self.lesion_label is not None else int(labels.max()) + 1
        new_labels = labels.copy()
        block = result.changed  # the lesions lie in it
        new_labels[0][block][result.lesion_labels[block] > 0] = value
        out_image = _like(image, result.image[np.newaxis])
        out_label = _like(label, new_labels)
        summary = json.dumps({"seed": self._seed, "inserted": True, "size_class": self._size, "asked": self._count,
                              "lesion_label": value, "lesions": [r.to_dict() for r in result.records],
                              "warnings": result.case_record["warnings"]})
        self.last_record = result.case_record
        return _with_record(out_image, summary), _with_record(out_label, summary)


def _image_and_label(data: Mapping, keys, allow_missing: bool, name: str):
    image_key, label_key = keys
    if image_key not in data or label_key not in data:
        if allow_missing:
            return None
        raise MedSynthInputError(f"{name} needs the keys {image_key!r} and {label_key!r}; the item has {list(data)}.")
    return data[image_key], data[label_key]


class PrepareOrgand(MapTransform):
    """Measure the organ once (``prepare_organ``) and keep the result under ``stats_key``, for
    ``RandSynthLesiond(stats_key=...)``.  Deterministic, so a ``CacheDataset`` caches it with the
    item.  Put it right before ``RandSynthLesiond``, after every transform that changes the grid
    (a crop between them is refused by the shape check; the measurement belongs to this grid)."""

    def __init__(self, keys: KeysCollection = ("image", "label"), organ_label: int = 1,
                 stats_key: str = "organ_stats", allow_missing_keys: bool = False):
        MapTransform.__init__(self, keys, allow_missing_keys)
        if len(self.keys) != 2:
            raise MedSynthInputError(f"keys must be (image key, label key); got {self.keys}.")
        self.organ_label, self.stats_key = organ_label, stats_key

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        from .synthesizer import prepare_organ

        d = dict(data)
        pair = _image_and_label(d, self.keys, self.allow_missing_keys, "PrepareOrgand")
        if pair is None:
            return d
        image, label, geometry = _engine_inputs(*pair)
        try:
            d[self.stats_key] = prepare_organ(image[0], label[0] == self.organ_label, geometry)
        except MedSynthInputError as error:  # e.g. an item without the organ: say which item
            raise MedSynthInputError(f"{_item_name(pair[0])}{error}") from None
        return d


class RandSynthLesiond(Randomizable, MapTransform):
    """Dictionary form of ``RandSynthLesion``: ``keys = (image_key, label_key)``.  With
    ``stats_key``, the organ statistics that ``PrepareOrgand`` put there are reused (and removed
    from the item, so that batches collate).

    Example::

        Compose([LoadImaged(("image", "label")), EnsureChannelFirstd(("image", "label")),
                 Spacingd(("image", "label"), (1.5, 1.5, 2.0), mode=("bilinear", "nearest")),
                 PrepareOrgand(("image", "label"), organ_label=1),            # cached with the item
                 RandSynthLesiond(("image", "label"), organ_label=1, lesion_label=2, prob=0.5,
                                  stats_key="organ_stats"),
                 RandCropByPosNegLabeld(("image", "label"), "label", (96, 96, 96))])
    """

    def __init__(self, keys: KeysCollection = ("image", "label"), organ_label: int = 1, lesion_label: int | None = None,
                 prob: float = 0.5, size_classes: Sequence[str] = ("tiny", "small", "medium"),
                 count: tuple[int, int] = (1, 3), preset: str = "ct-liver", allow_missing_keys: bool = False,
                 stats_key: str | None = None, **options):
        MapTransform.__init__(self, keys, allow_missing_keys)
        if len(self.keys) != 2:
            raise MedSynthInputError(f"keys must be (image key, label key); got {self.keys}.")
        self.stats_key = stats_key
        self.synth = RandSynthLesion(organ_label, lesion_label, prob, size_classes, count, preset, **options)

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None):
        super().set_random_state(seed, state)
        self.synth.set_random_state(seed, state)
        return self

    def randomize(self, data=None) -> None:
        self.synth.randomize()

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        stats = d.pop(self.stats_key, None) if self.stats_key is not None else None
        if self.stats_key is not None and stats is not None and not isinstance(stats, OrganStatistics):
            raise MedSynthInputError(f"The item's {self.stats_key!r} is not an organ measurement; put PrepareOrgand "
                                     f"(stats_key={self.stats_key!r}) before RandSynthLesiond.")
        pair = _image_and_label(d, self.keys, self.allow_missing_keys, "RandSynthLesiond")
        if pair is None:
            return d
        self.randomize()
        image_key, label_key = self.keys
        d[image_key], d[label_key] = self.synth(*pair, randomize=False, organ_stats=stats)
        return d
