"""One rank of a distributed translator training run, for the tests (launched by torchrun, or
alone as a single process): ``python distributed_worker.py OUT MODEL[,MODEL...] ITERATIONS
BATCH [CHECKPOINT_EVERY]``.

Each translator trains into ``OUT/<model>`` on fixed random data; "segmenter" and "classifier"
train the SynthEvaluate recipes and each rank saves its weights beside OUT, in
``<model>-rank<r>.pt``.  The rank writes its pid to
``OUT/pids/rank<r>`` (so a test can kill it), and ranks other than 0 record, with a Python
audit hook, every file they open for writing or rename under ``OUT`` into
``OUT/../writes-rank<r>.txt`` (rank 0 alone may write there).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

from MedSynthCommonLib.distributed import Ranks, finish
from SynthTranslateLib.config import TranslatorConfig
from SynthTranslateLib.data import BatchSampler, Normalizer


def _setup(model: str, batch: int):
    size = {"spade": 64, "pix2pixhd": 128}.get(model, 32)  # the smallest each discriminator takes
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, (12, size, size)).astype(np.float32)
    if model in ("stargan", "migan"):
        config = TranslatorConfig(model=model, image_size=size, features=4, batch_size=batch, domains=["a", "b"],
                                  key_domain="b", n_critic=2)
        return config, BatchSampler("domains", batch, 0, image=images, domain=np.arange(12) % 2)
    if model == "stylegan":
        config = TranslatorConfig(model=model, image_size=size, features=4, batch_size=batch, domains=["a", "b"],
                                  latent=8, w_dim=16, mapping_layers=2, r1_every=2)
        return config, BatchSampler("domains", batch, 0, image=images, domain=np.arange(12) % 2)
    if model == "cyclegan":
        config = TranslatorConfig(model=model, image_size=size, features=4, batch_size=batch, domains=["a", "b"])
        return config, BatchSampler("unpaired", batch, 0, a=images, b=-images)
    if model == "maskgan":
        config = TranslatorConfig(model=model, image_size=size, features=4, batch_size=batch, n_critic=2)
        return config, BatchSampler("masks", batch, 0, mask=(images > 0).astype(np.float32))
    if model in ("spade", "pix2pixhd"):
        labels = (images > 0).astype(int)
        onehot = np.stack([labels == 0, labels == 1], 1).astype(np.float32) * 2 - 1
        config = TranslatorConfig(model=model, image_size=size, features=4, batch_size=batch, labels=[0, 1])
        return config, BatchSampler("paired", batch, 0, source=onehot, target=images)
    config = TranslatorConfig(model=model, image_size=size, features=4, batch_size=batch)
    return config, BatchSampler("paired", batch, 0, source=images, target=-images)


def _train_recipe(name: str, out: Path, ranks: Ranks) -> None:
    import torch

    rng = np.random.default_rng(0)
    if name == "segmenter":
        from SynthEvaluateLib.recipes.segmenter import SegmenterRecipe, train_segmenter

        volumes = [rng.normal(0, 50, (6, 32, 32)).astype(np.float32) for _ in range(3)]
        labels = [np.zeros(v.shape, np.uint8) for v in volumes]
        for volume, label in zip(volumes, labels):
            label[:, 10:20, 12:22] = 1
            volume[label > 0] += 120
        recipe = SegmenterRecipe(channels=(4, 8), patch_size=(16, 16), iterations=6, batch_size=4)
        model = train_segmenter(volumes, labels, recipe, seed=2, ranks=ranks).model
    else:
        from SynthEvaluateLib.recipes.data import ImageSet
        from SynthEvaluateLib.recipes.training import ClassifierRecipe, train_classifier

        images = rng.uniform(0, 1, (24, 16, 16)).astype(np.float32)
        classes = np.arange(24) % 2
        images[classes == 1, 4:12, 4:12] += 0.5
        train = ImageSet(np.clip(images, 0, 1), classes, ["a", "b"], [str(n) for n in range(24)])
        recipe = ClassifierRecipe(channels=(4, 8), epochs=2, batch_size=8, augment=False)
        model = train_classifier(train, recipe, seed=2, ranks=ranks).model
    torch.save(model.state_dict(), out.parent / f"{name}-rank{ranks.rank}.pt")


def _record_writes(out: Path, rank: int) -> None:
    log = out.parent / f"writes-rank{rank}.txt"
    inside = str(out.resolve())

    def hook(event, args):
        if event == "open" and isinstance(args[0], (str, Path)) and str(Path(args[0]).resolve()).startswith(inside):
            mode = args[1] if isinstance(args[1], str) else ""
            flags = args[2] if len(args) > 2 and isinstance(args[2], int) else 0
            if any(c in mode for c in "wax+") or flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
                with open(log, "a") as handle:  # outside OUT: not recorded again
                    handle.write(f"open {args[0]}\n")
        elif event in ("os.rename", "os.replace", "os.remove", "os.mkdir") and any(
                isinstance(arg, (str, Path)) and str(Path(arg).resolve()).startswith(inside) for arg in args):
            with open(log, "a") as handle:
                handle.write(f"{event} {args}\n")

    sys.addaudithook(hook)


def main(argv: list[str]) -> int:
    from SynthTranslateLib.training import train_translator

    out, models, iterations, batch = Path(argv[0]), argv[1].split(","), int(argv[2]), int(argv[3])
    checkpoint_every = int(argv[4]) if len(argv) > 4 else 2
    ranks = Ranks.from_environment("cpu")
    (out / "pids").mkdir(parents=True, exist_ok=True)
    (out / "pids" / f"rank{ranks.rank}").write_text(str(os.getpid()))
    if not ranks.is_main:
        _record_writes(out, ranks.rank)
    try:
        for model in models:
            if model in ("segmenter", "classifier"):
                _train_recipe(model, out, ranks)
                continue
            config, sampler = _setup(model, batch)
            train_translator(config, sampler, Normalizer((-1.0, 1.0)), iterations, out / model, seed=3,
                             checkpoint_every=checkpoint_every, sample_every=iterations, ranks=ranks)
    finally:
        finish(ranks)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
