"""``medsynth bench lesion-transform``: RandSynthLesiond inside a MONAI pipeline.

Per sample, on cached items (LoadImaged -> EnsureChannelFirstd -> Orientationd -> Spacingd,
cached by a CacheDataset): the time of ``RandSynthLesiond`` against the time of
``RandCropByPosNegLabeld`` (96^3) itself, per size class, measured in the same run, with the
organ measured on every draw (nothing kept from an earlier draw, as in a data set of more items
than ``measure_organ`` keeps) and measured once (``PrepareOrgand`` cached with the item); then
samples per second through a DataLoader with 2 workers feeding a small CPU UNet step, with
and without on-the-fly synthesis.  Prints one JSON object.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from MedSynthCommonLib.kept import forget_all

from .benchmark import _median_seconds


def _cases(folder: Path, count: int = 3):
    from MedSynthCommonLib.imageio import write_volume

    from .phantom import make_ct_phantom

    items = []
    for n in range(count):
        phantom = make_ct_phantom(shape=(128, 192, 192), spacing=(1.5, 1.5, 2.0), seed=n)
        image = write_volume(folder / f"ct{n}.nii.gz", phantom.image, phantom.geometry)
        label = write_volume(folder / f"label{n}.nii.gz", (phantom.organs == 1).astype(np.uint8), phantom.geometry)
        items.append({"image": str(image), "label": str(label)})
    return items


def _median_ms(function, repeats: int, setup=None) -> float:
    return round(_median_seconds(function, repeats, setup) * 1000, 2)


def bench_transform(repeats: int = 10, steps: int = 12) -> dict:
    import torch
    from monai.data import CacheDataset, DataLoader
    from monai.networks.nets import UNet
    from monai.transforms import (Compose, EnsureChannelFirstd, LoadImaged, Orientationd, RandCropByPosNegLabeld,
                                  Spacingd)

    from .transforms import PrepareOrgand, RandSynthLesiond

    keys = ("image", "label")
    prefix = [LoadImaged(keys), EnsureChannelFirstd(keys), Orientationd(keys, "RAS"),
              Spacingd(keys, (1.5, 1.5, 2.0), mode=("bilinear", "nearest"))]
    crop = RandCropByPosNegLabeld(keys, "label", (96, 96, 96), pos=1, neg=1, num_samples=1)
    result = {"volume": "CT phantom 192x192x128 at 1.5x1.5x2 mm", "crop": "RandCropByPosNegLabeld 96^3", "per_sample_ms": {}}
    with tempfile.TemporaryDirectory() as folder:
        items = _cases(Path(folder))
        cached = CacheDataset(items, Compose(prefix), cache_rate=1.0, num_workers=1, progress=False)
        samples = [cached[n] for n in range(len(items))]
        measured = [PrepareOrgand(keys, organ_label=1)(sample) for sample in samples]
        crop.set_random_state(0)
        crop_ms = _median_ms(lambda: crop(samples[0]), repeats)
        result["per_sample_ms"]["RandCropByPosNegLabeld"] = crop_ms
        for size in ("tiny", "small", "medium"):
            for label, stats_key, items_used in (("", None, samples), (" organ measured once", "organ_stats", measured)):
                synth = RandSynthLesiond(keys, organ_label=1, lesion_label=2, prob=1.0, size_classes=(size,),
                                         count=(1, 1), stats_key=stats_key)
                synth.set_random_state(0)
                counter = iter(range(10 ** 6))
                ms = _median_ms(lambda: synth(items_used[next(counter) % len(items_used)]), repeats,
                                None if stats_key else forget_all)
                result["per_sample_ms"][f"RandSynthLesiond {size}{label}"] = ms
                result["per_sample_ms"][f"ratio {size}{label} to crop"] = round(ms / crop_ms, 2)

        def throughput(with_synthesis: bool) -> float:
            random = [PrepareOrgand(keys, organ_label=1),  # cached with the item
                      RandSynthLesiond(keys, organ_label=1, lesion_label=2, prob=0.5, stats_key="organ_stats")
                      ] if with_synthesis else []
            transform = Compose(prefix + random + [crop])
            transform.set_random_state(1)
            dataset = CacheDataset(items, transform, cache_rate=1.0, num_workers=1, progress=False)
            loader = DataLoader(dataset, batch_size=2, shuffle=True, num_workers=2, persistent_workers=True,
                                generator=torch.Generator().manual_seed(0))
            network = UNet(3, 1, 3, (8, 16, 32), (2, 2))
            optimiser = torch.optim.Adam(network.parameters(), 1e-3)
            done, start = 0, None
            while done < steps:
                for batch in loader:
                    if start is None:
                        start = time.perf_counter()  # after the workers' start-up
                    images = torch.cat([b for b in [batch["image"]]]).float() / 1000.0
                    loss = torch.nn.functional.cross_entropy(network(images), batch["label"][:, 0].long().clamp(0, 2))
                    optimiser.zero_grad()
                    loss.backward()
                    optimiser.step()
                    done += images.shape[0]
                    if done >= steps:
                        break
            return round(done / (time.perf_counter() - start), 2)

        result["unet_training_samples_per_s"] = {"without synthesis": throughput(False),
                                                 "with on-the-fly synthesis (prob 0.5)": throughput(True)}
    return result
