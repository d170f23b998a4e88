"""Validation on real data (not a test), bounded CPU time:

    python Testing/validation/translate_migan_xray.py --data ../shared/data --out translate_validation --minutes 4

1. MI-GAN (StarGAN + key-migration + attention; key domain "viral", the rarest) on the three
   domains of chest_xray_pediatric at 64 px.  Judged by SynthEvaluate: a classifier trained on
   real images labels the translated test images; the share labelled as the requested target
   domain is the translation success (GAN-test), and real-vs-translated FRD per domain.
2. Mask GAN (WGAN-GP) on stroke_lesions_mni: 2-D 32 px lesion cross-sections; generated vs
   real masks compared by area and compactness, and used as SynthLesion shapes.
3. SPADE on stroke semantic maps (tissue + lesion labels -> T1), see ``validation_spade``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from SynthTranslateLib.config import TranslatorConfig
from SynthTranslateLib.data import BatchSampler, Normalizer
from SynthTranslateLib.datasets import domain_folder, mask_slices
from SynthTranslateLib.model_dir import load_model
from SynthTranslateLib.training import train_translator


def _budget(seconds: float):
    deadline = time.perf_counter() + seconds
    return lambda: time.perf_counter() > deadline


def validate_migan(data_root: Path, out: Path, minutes: float, size: int = 64) -> dict:
    from SynthEvaluateLib.recipes.data import ImageSet, Preprocessing, split
    from SynthEvaluateLib.metrics.distances import frechet_radiomics_distance
    from SynthEvaluateLib.recipes.training import ClassifierRecipe, train_classifier

    from SynthTranslateLib.apply import translate_volume

    images, domains, names, _, _ = domain_folder(Path(data_root) / "chest_xray_pediatric", size,
                                              domains=["normal", "bacterial", "viral"])
    everything = ImageSet(images / 255.0, domains, names, [str(i) for i in range(len(images))], "real", Preprocessing(size=size))
    train, test = split(everything, 0.3, seed=0)
    normalizer = Normalizer((0.0, 255.0))
    config = TranslatorConfig(model="migan", image_size=size, domains=names, key_domain="viral", features=32,
                              batch_size=16, n_critic=5)
    sampler = BatchSampler("domains", 16, 0, image=normalizer.forward(train.images * 255.0), domain=train.labels)
    started = time.perf_counter()
    try:
        train_translator(config, sampler, normalizer, 100_000, out / "migan", seed=0,
                         training_data={"train": train.summary()}, sample_every=250, checkpoint_every=250,
                         should_stop=_budget(minutes * 60))
    except InterruptedError:
        pass  # the time budget ended training; the last checkpoint is the model
    training_s = time.perf_counter() - started
    model = load_model(out / "migan")
    judge = train_classifier(train, ClassifierRecipe(epochs=30), seed=0)
    report = {"iterations": model.card["iterations"], "training_s": round(training_s, 1), "per_target": {}}
    for target, name in enumerate(names):
        sources = test.subset(np.flatnonzero(test.labels != target))
        translated = translate_volume(model, sources.images * 255.0, name) / 255.0
        predicted = judge.predict_proba(np.clip(translated, 0, 1)).argmax(axis=1)
        real_target = test.subset(np.flatnonzero(test.labels == target))
        frd = frechet_radiomics_distance(list(real_target.images), list(np.clip(translated, 0, 1)), intensity_range=(0, 1))
        frd_untranslated = frechet_radiomics_distance(list(real_target.images), list(sources.images), intensity_range=(0, 1))
        report["per_target"][name] = {"translated": len(sources), "classified_as_target": float(np.mean(predicted == target)),
                                      "classified_as_target_before": float(np.mean(judge.predict_proba(sources.images).argmax(1) == target)),
                                      "frd_to_real_target": round(frd["frd"], 3),
                                      "frd_untranslated": round(frd_untranslated["frd"], 3)}
    return report


def validate_maskgan(data_root: Path, out: Path, minutes: float, cases: int = 400, size: int = 32) -> dict:
    from MedSynthCommonLib.imageio import read_volume

    files = sorted((Path(data_root) / "stroke_lesions_mni" / "lesions").glob("*.nii.gz"))[:cases]
    real = mask_slices([read_volume(f)[0] for f in files], size)
    config = TranslatorConfig(model="maskgan", image_size=size, features=32, batch_size=32, latent=64, n_critic=5)
    try:
        train_translator(config, BatchSampler("masks", 32, 0, mask=real), Normalizer((0.0, 1.0)), 100_000, out / "maskgan",
                         seed=0, training_data={"lesion_slices": len(real), "cases": len(files)}, sample_every=500,
                         checkpoint_every=250, should_stop=_budget(minutes * 60))
    except InterruptedError:
        pass
    from SynthTranslateLib.apply import sample_masks

    model = load_model(out / "maskgan")
    raw = sample_masks(model, len(real), seed=1, clean=False).astype(bool)
    generated = sample_masks(model, len(real), seed=1).astype(bool)

    def describe(masks):
        areas = masks.reshape(len(masks), -1).sum(axis=1)
        from scipy import ndimage

        perimeters = np.array([(m & ~ndimage.binary_erosion(m)).sum() for m in masks])
        compact = 4 * np.pi * areas / np.maximum(perimeters, 1) ** 2
        components = np.array([ndimage.label(m)[1] for m in masks])
        return {"area_px_quartiles": np.percentile(areas, [25, 50, 75]).round(1).tolist(),
                "compactness_median": round(float(np.median(compact)), 3),
                "one_component_share": round(float(np.mean(components == 1)), 3),
                "empty_share": round(float(np.mean(areas == 0)), 3)}

    return {"iterations": model.card["iterations"], "real": describe(real.astype(bool)), "generated_raw": describe(raw),
            "generated_cleaned": describe(generated)}


def main() -> None:
    parser = argparse.ArgumentParser(description="SynthTranslate validation on real data")
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--out", type=Path, default=Path("translate_validation"))
    parser.add_argument("--minutes", type=float, default=4.0, help="training budget per model")
    parser.add_argument("--only", choices=["migan", "maskgan", "spade"], help="run one of the validations")
    args = parser.parse_args()
    parser_only = args.only
    report = {}
    if parser_only in (None, "migan"):
        report["migan_chest_xray"] = validate_migan(args.data, args.out, args.minutes)
    if parser_only in (None, "maskgan"):
        report["maskgan_stroke"] = validate_maskgan(args.data, args.out, args.minutes / 2)
    if parser_only in (None, "spade"):
        from translate_spade_stroke import validate_spade

        report["spade_stroke"] = validate_spade(args.data, args.out, args.minutes)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"summary{'' if args.only is None else '_' + args.only}.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
