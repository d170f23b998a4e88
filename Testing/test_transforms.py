"""SynthLesion inside MONAI pipelines: RandSynthLesiond / RandSynthLesion."""

from __future__ import annotations

import json

import numpy as np
import pytest

monai = pytest.importorskip("monai")
torch = pytest.importorskip("torch")

from monai.data import CacheDataset, DataLoader  # noqa: E402
from monai.transforms import Compose, EnsureChannelFirstd, LoadImaged, Orientationd, Spacingd  # noqa: E402

from MedSynthCommonLib.errors import MedSynthInputError  # noqa: E402
from MedSynthCommonLib.imageio import write_volume  # noqa: E402
from SynthLesionLib import make_ct_phantom  # noqa: E402
from SynthLesionLib.transforms import (RECORD_KEY, PrepareOrgand, RandSynthLesion, RandSynthLesiond,  # noqa: E402
                                      geometry_from_affine)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("monai")
    items = []
    for n in range(3):
        phantom = make_ct_phantom(shape=(36, 96, 96), spacing=(2.0, 2.0, 3.0), seed=n)
        labels = (phantom.organs == 1).astype(np.uint8)  # liver = 1
        image = write_volume(folder / f"ct{n}.nii.gz", phantom.image, phantom.geometry)
        label = write_volume(folder / f"label{n}.nii.gz", labels, phantom.geometry)
        items.append({"image": str(image), "label": str(label)})
    return items


def _pipeline(seed=None, prob=1.0):
    keys = ("image", "label")
    transforms = Compose([LoadImaged(keys), EnsureChannelFirstd(keys), Orientationd(keys, "RAS"),
                          Spacingd(keys, (2.0, 2.0, 3.0), mode=("bilinear", "nearest")),
                          RandSynthLesiond(keys, organ_label=1, lesion_label=2, prob=prob, size_classes=("small",),
                                           count=(1, 2))])
    if seed is not None:
        transforms.set_random_state(seed)
    return transforms


def test_lesions_are_inserted_with_exact_labels_and_geometry_kept(files):
    before = Compose(_pipeline().transforms[:-1])(files[0])
    after = _pipeline(seed=3)(files[0])
    image, label = after["image"], after["label"]
    assert torch.equal(image.affine, before["image"].affine) and image.shape == before["image"].shape
    lesion = label[0] == 2
    assert lesion.any() and not torch.any(lesion & (before["label"][0] != 1))  # lesions only in the liver
    changed = image[0] != before["image"][0]
    assert changed.any() and float(changed.float().mean()) < 0.05  # only around the lesions
    record = json.loads(image.meta[RECORD_KEY])
    assert record["inserted"] and record["lesion_label"] == 2 and 1 <= len(record["lesions"]) <= 2
    # the record's RAS centre is where the affine puts the lesion's voxels (orientation and spacing read right)
    from scipy import ndimage

    components, count = ndimage.label(lesion.numpy())
    centres = [image.affine.numpy() @ np.r_[np.argwhere(components == n).mean(axis=0), 1.0] for n in range(1, count + 1)]
    for r in record["lesions"]:
        assert min(np.linalg.norm(c[:3] - r["centre_ras"]) for c in centres) < 6.0


def test_random_state_gives_reproducible_items(files):
    a, b, c = (_pipeline(seed=s)(files[1]) for s in (5, 5, 6))
    assert torch.equal(a["image"], b["image"]) and torch.equal(a["label"], b["label"])
    assert not torch.equal(a["image"], c["image"])
    skipped = _pipeline(seed=5, prob=0.0)(files[1])
    assert json.loads(skipped["image"].meta[RECORD_KEY]) == {"seed": json.loads(skipped["image"].meta[RECORD_KEY])["seed"],
                                                             "inserted": False}


def test_cache_dataset_and_worker_processes(files):
    """Deterministic prefix cached, synthesis after it, two worker processes: the same seed gives
    the same batches, and items collate (records are strings)."""
    def batches():
        transform = _pipeline(seed=11, prob=0.7)
        dataset = CacheDataset(files, transform, cache_rate=1.0, num_workers=1, progress=False)
        loader = DataLoader(dataset, batch_size=3, num_workers=2, generator=torch.Generator().manual_seed(0))
        return [(batch["image"].clone(), batch["label"].clone(), list(batch["image"].meta[RECORD_KEY]))
                for batch in loader]

    first, second = batches(), batches()
    assert len(first) == 1 and first[0][0].shape[0] == 3
    for (image_a, label_a, records_a), (image_b, label_b, records_b) in zip(first, second):
        assert torch.equal(image_a, image_b) and torch.equal(label_a, label_b) and records_a == records_b
    assert any(json.loads(r)["inserted"] for r in first[0][2])


def test_array_form_and_bad_input():
    phantom = make_ct_phantom(shape=(36, 96, 96), spacing=(2.0, 2.0, 3.0), seed=4)
    affine = np.diag([2.0, 2.0, 3.0, 1.0])
    image = phantom.image.transpose(2, 1, 0)[np.newaxis].astype(np.float32)
    label = (phantom.organs == 1).transpose(2, 1, 0)[np.newaxis].astype(np.uint8)
    transform = RandSynthLesion(organ_label=1, prob=1.0, size_classes=("tiny", "small"), affine=affine)
    transform.set_random_state(2)
    new_image, new_label = transform(image, label)
    assert new_image.dtype == image.dtype and new_label.max() == 2 and (new_label == 2).sum() > 0
    assert geometry_from_affine(affine).spacing.tolist() == [2.0, 2.0, 3.0]
    with pytest.raises(Exception, match="channel-first"):
        transform(image[0], label[0])
    with pytest.raises(Exception, match="size_classes"):
        RandSynthLesion(size_classes=("huge",))


def _prepared_pipeline(seed, stats: bool):
    keys = ("image", "label")
    middle = [PrepareOrgand(keys, organ_label=1)] if stats else []
    transforms = Compose([LoadImaged(keys), EnsureChannelFirstd(keys), Orientationd(keys, "RAS"),
                          Spacingd(keys, (2.0, 2.0, 3.0), mode=("bilinear", "nearest")), *middle,
                          RandSynthLesiond(keys, organ_label=1, lesion_label=2, prob=1.0, size_classes=("small",),
                                           count=(1, 2), stats_key="organ_stats" if stats else None)])
    transforms.set_random_state(seed)
    return transforms


def test_an_organ_measured_once_and_cached_gives_the_same_items_and_collates(files):
    """PrepareOrgand is cached with the item; reusing its measurement changes nothing in the
    output, and the measurement does not reach the batch."""
    measured_each_time = _prepared_pipeline(4, stats=False)(files[2])
    dataset = CacheDataset([files[2]], _prepared_pipeline(4, stats=True), cache_rate=1.0, num_workers=1,
                           progress=False)
    from SynthLesionLib.organ import OrganStatistics

    assert isinstance(dataset._cache[0]["organ_stats"], OrganStatistics)  # measured once, with the cached prefix
    reused = dataset[0]
    assert "organ_stats" not in reused
    assert torch.equal(reused["image"], measured_each_time["image"]) and torch.equal(reused["label"],
                                                                                    measured_each_time["label"])
    batch = next(iter(DataLoader(dataset, batch_size=1, num_workers=0)))
    assert batch["image"].shape[0] == 1 and "organ_stats" not in batch


def test_a_class_that_fits_nowhere_leaves_the_item_and_says_why():
    phantom = make_ct_phantom(shape=(36, 96, 96), spacing=(2.0, 2.0, 3.0), seed=4)
    affine = np.diag([2.0, 2.0, 3.0, 1.0])
    image = phantom.image.transpose(2, 1, 0)[np.newaxis].astype(np.float32)
    label = np.zeros_like(image, dtype=np.uint8)
    label[0, 40:46, 40:46, 15:18] = 1  # a 12 x 12 x 9 mm organ: no large lesion fits
    transform = RandSynthLesion(organ_label=1, prob=1.0, size_classes=("large",), affine=affine)
    transform.set_random_state(0)
    with pytest.warns(UserWarning, match="no large lesion fits"):
        new_image, new_label = transform(image, label)
    assert np.array_equal(new_image, image) and np.array_equal(new_label, label) and transform.last_record is None
    # a MetaTensor carries the reason in its record
    from monai.data import MetaTensor

    with pytest.warns(UserWarning):
        meta_image, _ = transform(MetaTensor(torch.as_tensor(image), affine=torch.as_tensor(affine)),
                                  MetaTensor(torch.as_tensor(label), affine=torch.as_tensor(affine)))
    record = json.loads(meta_image.meta[RECORD_KEY])
    assert record["inserted"] is False and record["size_class"] == "large" and record["reason"]


def test_organ_statistics_of_another_grid_or_kind_are_refused(files):
    keys = ("image", "label")
    from monai.transforms import SpatialCropd

    cropped_after_measuring = Compose([LoadImaged(keys), EnsureChannelFirstd(keys), PrepareOrgand(keys),
                                       SpatialCropd(keys, roi_start=(0, 0, 0), roi_end=(80, 80, 30)),
                                       RandSynthLesiond(keys, prob=1.0, stats_key="organ_stats")])
    wrong = Compose([LoadImaged(keys), EnsureChannelFirstd(keys), RandSynthLesiond(keys, prob=1.0, stats_key="image")])
    for pipeline, message in ((cropped_after_measuring, "another grid"), (wrong, "PrepareOrgand")):
        with pytest.raises(RuntimeError) as raised:  # MONAI's Compose names the transform, ours says why
            pipeline(files[0])
        assert isinstance(raised.value.__cause__, MedSynthInputError) and message in str(raised.value.__cause__)


def test_an_item_without_the_organ_is_named_in_the_error(files, tmp_path):
    from MedSynthCommonLib.imageio import read_volume

    image, geometry = read_volume(files[0]["image"])
    write_volume(tmp_path / "empty_label.nii.gz", np.zeros(image.shape, np.uint8), geometry)
    item = {"image": files[0]["image"], "label": str(tmp_path / "empty_label.nii.gz")}
    keys = ("image", "label")
    for last in (PrepareOrgand(keys), RandSynthLesiond(keys, prob=1.0)):
        with pytest.raises(RuntimeError) as raised:
            Compose([LoadImaged(keys), EnsureChannelFirstd(keys), last])(item)
        cause = str(raised.value.__cause__)
        assert "organ mask is empty" in cause and files[0]["image"] in cause
