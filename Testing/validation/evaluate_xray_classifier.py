"""Validation on real data (not a test): the classifier protocols on paediatric chest X-rays.

    python Testing/validation/evaluate_xray_classifier.py --data ../shared/data --out xray_validation

Three domains (normal, bacterial, viral pneumonia), 64 px.  The "synthetic" set is, with
``--translator MODEL_DIR``, the real training images translated by a SynthTranslate StarGAN or
MI-GAN into another domain (labelled with that domain); without it, a stand-in labelled so
everywhere: seeded classical augmentations (rotation, scale, gamma, noise).  The run checks
that the protocols work end to end on real anatomy within a bounded CPU time, and measures
whether classical augmentation helps, the baseline any GAN must beat.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

from SynthEvaluateLib.recipes.data import ImageSet, Preprocessing, load_folder, split
from SynthEvaluateLib.studies.protocols import augmentation_study, gan_train_test
from SynthEvaluateLib.report import write_report
from SynthEvaluateLib.studies.synthetic_sets import translated
from SynthEvaluateLib.recipes.training import ClassifierRecipe

STAND_IN = "stand-in synthetic: classical augmentation of real training images (no GAN yet)"


def classical_augmentations(images: ImageSet, seed: int) -> ImageSet:
    """One seeded augmented copy of every image: rotation +-10 deg, scale 0.9-1.1, gamma 0.8-1.25,
    noise sd 0.02; labels unchanged."""
    rng = np.random.default_rng(seed)
    out = []
    size = images.images.shape[-1]
    centre = (size - 1) / 2.0
    for image in images.images:
        angle, scale = np.deg2rad(rng.uniform(-10, 10)), rng.uniform(0.9, 1.1)
        rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]) / scale
        offset = centre - rotation @ np.array([centre, centre])
        moved = ndimage.affine_transform(image, rotation, offset, order=1, mode="nearest")
        moved = np.clip(moved, 0, 1) ** rng.uniform(0.8, 1.25) + rng.normal(0, 0.02, moved.shape)
        out.append(np.clip(moved, 0, 1).astype(np.float32))
    return ImageSet(np.stack(out), images.labels.copy(), images.class_names, [f"aug{seed}:{i}" for i in images.ids],
                    STAND_IN, images.preprocessing)


def run(data_root: Path, out: Path, size: int = 64, epochs: int = 30, seeds=(0, 1, 2), translator: Path | None = None) -> dict:
    started = time.perf_counter()
    # with a translator: the fixed 0-255 window it was trained with; otherwise per-image contrast
    preprocessing = Preprocessing(size=size, window=(0.0, 255.0) if translator else None)
    xray = load_folder(Path(data_root) / "chest_xray_pediatric", preprocessing=preprocessing,
                       class_names=["normal", "bacterial", "viral"], progress=True)
    real_train, real_test = split(xray, 0.3, seed=0)
    if translator:
        synthetic_train, synthetic_test = translated(real_train, translator, 1), translated(real_test, translator, 2)
    else:
        synthetic_train = classical_augmentations(real_train, seed=1)
        synthetic_test = classical_augmentations(real_test, seed=2)
    note = synthetic_train.source if translator else STAND_IN
    recipe = ClassifierRecipe(epochs=epochs, channels=(16, 32, 64, 128))
    log = lambda message: print(f"[{time.perf_counter() - started:6.0f} s] {message}", flush=True)  # noqa: E731
    gtt = gan_train_test(real_train, real_test, synthetic_train, synthetic_test, recipe, seeds, log)
    gtt["note"] = note
    augment = augmentation_study(real_train, synthetic_train, real_test, recipe, seeds, synthetic_ratios=(1.0,),
                                 real_counts=(None, 50), progress=log)
    augment["note"] = note
    paths = {"gan_train_test": write_report(gtt, Path(out) / "gan_train_test", f"GAN-train/GAN-test, chest X-ray ({note})"),
             "augmentation": write_report(augment, Path(out) / "augmentation", f"Augmentation study, chest X-ray ({note})")}
    summary = {"seconds": round(time.perf_counter() - started, 1), "synthetic": note, "data": xray.summary(),
               "train": real_train.summary(), "test": real_test.summary(),
               "gan_train_test": gtt["summary"], "augmentation": augment["summary"], "reports": paths}
    (Path(out) / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--out", type=Path, default=Path("xray_validation"))
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--translator", type=Path, help="SynthTranslate model folder (stargan/migan on normal/bacterial/viral)")
    args = parser.parse_args()
    print(json.dumps(run(args.data, args.out, args.size, args.epochs, translator=args.translator), indent=2))


if __name__ == "__main__":
    main()
