"""How good is a generator of new images?  One report per model folder (stylegan, fastgan).

A classifier trained on the real images (the project's recipe, on a stratified training split)
is the judge, and its feature space the ruler:

- **recognition**: the share of each class's samples that the judge assigns to that class
  (Wilson CI), beside the share of held-out real images it gets right (the ceiling);
- **diversity**: mean pairwise distance of a class's samples in the judge's feature space,
  divided by the same for that class's real images (1 = as varied as real; near 0 = collapse);
- **distances**: Frechet and kernel distances of the samples to the real training images in
  that feature space, beside the same distances of the held-out real images (the yardstick:
  what "as close as real" measures at this sample size);
- **near copies**: the privacy audit of the samples against every real image;
- a picture of samples beside their nearest real images.

The figures can be recorded in the model folder (``quality.json``, naming the weights they
were measured on: ``SynthTranslateLib.model_dir.write_quality``), where Slicer's Sample panel
reads them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from MedSynthCommonLib.errors import MedSynthInputError

from ..recipes.data import ImageSet, split
from ..recipes.training import ClassifierRecipe, train_classifier

#: samples shown per class in the picture
SHOWN = 6


def _mean_pairwise(features: np.ndarray) -> float:
    from scipy.spatial.distance import pdist

    return float(pdist(features).mean()) if len(features) > 1 else float("nan")


def generator_quality(model_dir: Path, real: ImageSet, recipe: ClassifierRecipe = ClassifierRecipe(), seed: int = 0,
                      samples_per_class: int = 100, test_fraction: float = 0.3, split_seed: int = 0,
                      truncation: float = 1.0, progress: Callable[[str], None] | None = None) -> dict:
    """Judge the generator in ``model_dir`` against ``real`` (its classes by name); a result for
    ``write_report`` (protocol "generator")."""
    from ..metrics.classification import proportion
    from ..metrics.distances import frechet_distance, kernel_inception_distance, network_features
    from .privacy import privacy_audit
    from .synthetic_sets import sampled

    say = progress or (lambda message: None)
    if len(real.class_names) < 2:
        raise MedSynthInputError("Judging a generator needs real images of at least two classes (the judge is a "
                                 "classifier).")
    train, test = split(real, test_fraction, split_seed)
    say(f"training the judge (recipe classifier) on {len(train)} real images")
    judge = train_classifier(train, recipe, seed)
    say(f"sampling {samples_per_class} images per class")
    samples = sampled(model_dir, real.class_names, [samples_per_class] * len(real.class_names), seed,
                      real.preprocessing, truncation)
    predicted_samples = judge.predict_proba(samples.images).argmax(axis=1)
    predicted_test = judge.predict_proba(test.images).argmax(axis=1)
    features = {name: network_features(judge, s.images)["features"]
                for name, s in (("train", train), ("test", test), ("samples", samples))}
    per_class = {}
    for c, name in enumerate(real.class_names):
        mine, real_test = samples.labels == c, test.labels == c
        real_all = np.concatenate([features["train"][train.labels == c], features["test"][real_test]])
        spread = _mean_pairwise(real_all)
        per_class[name] = {
            "recognised": proportion(int((predicted_samples[mine] == c).sum()), int(mine.sum())),
            "real_test_recognised": proportion(int((predicted_test[real_test] == c).sum()), int(real_test.sum())),
            "diversity_ratio": _mean_pairwise(features["samples"][mine]) / spread if spread > 0 else float("nan"),
            "samples": int(mine.sum()), "real_images": len(real_all)}
    # distances at the held-out set's size, so samples and yardstick are measured alike
    size = len(test)
    chosen = np.random.default_rng(seed).choice(len(samples), min(size, len(samples)), replace=False)
    distances = {
        "frechet": {"samples": frechet_distance(features["train"], features["samples"][chosen]),
                    "real_held_out": frechet_distance(features["train"], features["test"])},
        "kid": {"samples": kernel_inception_distance(features["train"], features["samples"][chosen], seed=seed)["kid"],
                "real_held_out": kernel_inception_distance(features["train"], features["test"], seed=seed)["kid"]},
        "images_each": int(min(size, len(samples))), "reference": f"{len(train)} real training images"}
    say("looking for near copies")
    audit = privacy_audit(real.images, samples.images, real.ids, samples.ids,
                          features={"judge features": (np.concatenate([features["train"], features["test"]]),
                                                       features["samples"], None)}, radiomics=False)
    overall = proportion(int((predicted_samples == samples.labels).sum()), len(samples))
    real_overall = proportion(int((predicted_test == test.labels).sum()), len(test))
    copies = audit["summary"]["pixels"]["flagged"]
    diversity = [v["diversity_ratio"] for v in per_class.values()]
    verdict = (f"{overall['value']:.0%} of the samples are recognised as their class by a classifier trained on the "
               f"real images (held-out real images: {real_overall['value']:.0%}); within-class diversity "
               f"{min(diversity):.2f}-{max(diversity):.2f} of the real images'; Frechet distance "
               f"{distances['frechet']['samples']:.3g} (real held-out: {distances['frechet']['real_held_out']:.3g}); "
               + (f"{copies} near copies of real images" if copies else "no near copy of a real image"))
    return {"protocol": "generator", "verdict": verdict, "model_dir": str(model_dir),
            "recognised": overall, "real_test_recognised": real_overall, "per_class": per_class,
            "distances": distances, "near_copies": copies, "privacy": audit["summary"],
            "settings": {"samples_per_class": samples_per_class, "truncation": truncation, "seed": seed,
                         "test_fraction": test_fraction, "split_seed": split_seed, "judge": recipe.to_dict(),
                         "features": "judge's input of its last linear layer", "samples": samples.source},
            "sets": {"real_train": len(train), "real_test": len(test), "samples": len(samples)},
            "_pictures": _picture_rows(samples, real, audit)}


def _picture_rows(samples: ImageSet, real: ImageSet, audit: dict) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Per class: the first ``SHOWN`` samples and the real image nearest to each (in pixels)."""
    nearest = {entry["synthetic"]: entry["nearest_training_image"] for entry in audit["per_image"]}
    index = {image_id: n for n, image_id in enumerate(real.ids)}
    rows = []
    for c, name in enumerate(samples.class_names):
        chosen = np.flatnonzero(samples.labels == c)[:SHOWN]
        rows.append((name, samples.images[chosen], real.images[[index[nearest[samples.ids[i]]] for i in chosen]]))
    return rows


def record_quality(model_dir: Path, result: dict) -> Path:
    """Write the report's figures into ``model_dir/quality.json`` (see ``model_dir.write_quality``)."""
    from SynthTranslateLib.model_dir import write_quality

    return write_quality(model_dir, {
        "verdict": result["verdict"], "recognised": result["recognised"]["value"],
        "real_test_recognised": result["real_test_recognised"]["value"],
        "per_class": {name: {"recognised": v["recognised"]["value"], "diversity_ratio": v["diversity_ratio"]}
                      for name, v in result["per_class"].items()},
        "frechet": result["distances"]["frechet"], "kid": result["distances"]["kid"],
        "near_copies": result["near_copies"], "settings": {k: v for k, v in result["settings"].items() if k != "judge"}})
