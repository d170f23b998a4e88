"""Research script (not a test): which StarGAN / MI-GAN settings learn most in a fixed CPU budget?

    python Testing/validation/multidomain_cpu_settings.py --data ../shared/data --out cpu_settings \
        --minutes 12 --settings paper critic1 critic1_cls5

Each setting trains MI-GAN (key domain "viral") on the same 70 % of the paediatric chest X-rays
(normal / bacterial / viral, 64 px) for the same wall-clock budget (``budget_s``; run nothing else
meanwhile: the comparison is per CPU minute).  Then, on the 30 % held out:

- GAN-test: every held-out image is translated into another class (seeded); the share that a
  classifier trained on the real 70 % assigns to the requested class (chance: 1/3);
- GAN-train: a classifier trained only on the translated training images, tested on the real
  held-out images, against the same classifier trained on the real images (one seed).

Prints one JSON object per setting and a summary.  It reads the shared data by name, so it does
not ship with the extension.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

#: settings screened: TranslatorConfig overrides (features 16, batch 16 in all: the measured CPU sizes)
SETTINGS = {
    "paper": {"n_critic": 5, "lambda_cls": 1.0},  # StarGAN's published schedule
    "critic1": {"n_critic": 1, "lambda_cls": 1.0},  # the generator learns at every step
    "critic1_cls5": {"n_critic": 1, "lambda_cls": 5.0},  # ... and the target class weighs more
    "critic2_cls5": {"n_critic": 2, "lambda_cls": 5.0},
}


def run_setting(name: str, train, test, judge, minutes: float, out: Path, model: str) -> dict:
    from SynthEvaluateLib.recipes.training import ClassifierRecipe, train_classifier
    from SynthEvaluateLib.studies.synthetic_sets import translated
    from SynthTranslateLib.config import TranslatorConfig
    from SynthTranslateLib.data import BatchSampler, Normalizer
    from SynthTranslateLib.training import train_translator

    normalizer = Normalizer((0.0, 255.0))
    config = TranslatorConfig(model=model, image_size=train.images.shape[-1], domains=list(train.class_names),
                              key_domain="viral" if model == "migan" else None, features=16, batch_size=16,
                              **SETTINGS[name])
    sampler = BatchSampler("domains", config.batch_size, 0, image=normalizer.forward(train.images * 255.0),
                           domain=train.labels)
    folder = out / name
    started = time.perf_counter()
    result = train_translator(config, sampler, normalizer, 1_000_000, folder, seed=0,
                              training_data={"train": train.summary()}, sample_every=500, checkpoint_every=500,
                              budget_s=minutes * 60)
    training_s = time.perf_counter() - started
    synthetic_test = translated(test, folder, seed=2)
    gan_test = float(np.mean(judge.predict_proba(synthetic_test.images).argmax(axis=1) == synthetic_test.labels))
    synthetic_train = translated(train, folder, seed=1)
    recipe = ClassifierRecipe(epochs=30, channels=(16, 32, 64, 128))
    on_synthetic = train_classifier(synthetic_train, recipe, seed=0)
    gan_train = float(np.mean(on_synthetic.predict_proba(test.images).argmax(axis=1) == test.labels))
    return {"setting": name, **SETTINGS[name], "model": model, "iterations": result.get("iterations"),
            "training_s": round(training_s, 1), "gan_test": round(gan_test, 3), "gan_train": round(gan_train, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--out", type=Path, default=Path("cpu_settings"))
    parser.add_argument("--minutes", type=float, default=12.0, help="training budget per setting")
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--model", default="migan", choices=["migan", "stargan"])
    parser.add_argument("--size", type=int, default=64)
    args = parser.parse_args()

    from SynthEvaluateLib.recipes.data import ImageSet, Preprocessing, split
    from SynthEvaluateLib.recipes.training import ClassifierRecipe, train_classifier
    from SynthTranslateLib.datasets import domain_folder

    images, domains, names, _, _ = domain_folder(args.data / "chest_xray_pediatric", args.size,
                                                 domains=["normal", "bacterial", "viral"])
    everything = ImageSet(images / 255.0, domains, names, [str(i) for i in range(len(images))], "real",
                          Preprocessing(size=args.size))
    train, test = split(everything, 0.3, seed=0)
    judge = train_classifier(train, ClassifierRecipe(epochs=30, channels=(16, 32, 64, 128)), seed=0)
    real_accuracy = float(np.mean(judge.predict_proba(test.images).argmax(axis=1) == test.labels))
    print(json.dumps({"real_trained_accuracy": round(real_accuracy, 3), "train": len(train), "test": len(test)}),
          flush=True)
    rows = []
    for name in args.settings:
        rows.append(run_setting(name, train, test, judge, args.minutes, args.out, args.model))
        print(json.dumps(rows[-1]), flush=True)
    print(json.dumps({"real_trained_accuracy": round(real_accuracy, 3), "minutes_each": args.minutes,
                      "settings": rows}, indent=2))


if __name__ == "__main__":
    main()
