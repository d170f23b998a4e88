"""Validation on real data (not a test): a generator of new chest X-rays trained within a CPU
budget, then judged the way a user would judge it, all through the ``medsynth`` command:

    python Testing/validation/generator_xray.py --data ../shared/data --out generator_validation --minutes 50

1. ``translate train --model fastgan --budget-minutes M`` on chest_xray_pediatric (3 classes,
   64 px); a run that is cut off resumes where it stopped (run the script again);
2. ``evaluate generator --record``: samples recognised as their class by a classifier trained
   on the real images, within-class diversity, Frechet/kernel distances against the held-out
   real images' yardstick, near copies; the figures go into the model folder;
3. ``evaluate gan-train-test`` and ``evaluate augment`` with the model folder as the synthetic
   set (sampled on the fly, seeded): does it help a classifier?

Prints one JSON summary (also written to OUT/summary.json) with the issue's targets beside the
figures.  Every step writes its own report folder under OUT.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path


def _medsynth(*arguments: str) -> float:
    """Run one ``medsynth`` command (failing loudly); returns its wall time in s."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "MedSynthCommonLib.cli", *arguments], check=True)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"), help="the shared data folder")
    parser.add_argument("--out", type=Path, required=True, help="folder for the model and the reports")
    parser.add_argument("--minutes", type=float, default=50.0, help="training budget in minutes")
    parser.add_argument("--model", default="fastgan", choices=["fastgan", "stylegan"], help="generator to train")
    parser.add_argument("--features", type=int, default=16, help="width of the networks")
    parser.add_argument("--batch-size", type=int, default=32, help="images per training step")
    parser.add_argument("--seeds", nargs="+", default=["0", "1", "2"], help="classifier seeds of the studies")
    parser.add_argument("--judge-only", action="store_true", help="judge OUT/model as it is (no training)")
    args = parser.parse_args(argv)
    data = args.data / "chest_xray_pediatric"
    model = args.out / "model"
    args.out.mkdir(parents=True, exist_ok=True)
    seconds = {} if args.judge_only else {"train": _medsynth("translate", "train", "--model", args.model, "--data", str(data), "--image-size", "64",
                                  "--features", str(args.features), "--batch-size", str(args.batch_size),
                                  "--iterations", "100000", "--budget-minutes", str(args.minutes),
                                  "--sample-every", "500", "--checkpoint-every", "500", "--out", str(model))}
    reports = {name: args.out / name for name in ("generator", "gan_train_test", "augment")}
    seconds["generator"] = _medsynth("evaluate", "generator", "--model-dir", str(model), "--real", str(data),
                                     "--record", "--device", "cpu", "--out", str(reports["generator"]))
    seconds["gan_train_test"] = _medsynth("evaluate", "gan-train-test", "--real", str(data), "--synthetic", str(model),
                                          "--seeds", *args.seeds, "--device", "cpu", "--out", str(reports["gan_train_test"]))
    seconds["augment"] = _medsynth("evaluate", "augment", "--real", str(data), "--synthetic", str(model), "--ratios", "1",
                                   "--seeds", *args.seeds, "--device", "cpu", "--out", str(reports["augment"]))
    quality = json.loads((reports["generator"] / "results.json").read_text(encoding="utf-8"))
    gtt = json.loads((reports["gan_train_test"] / "results.json").read_text(encoding="utf-8"))
    augment = json.loads((reports["augment"] / "results.json").read_text(encoding="utf-8"))
    card = json.loads((model / "card.json").read_text(encoding="utf-8"))
    accuracy = {arm: s["accuracy"] for arm, s in gtt["summary"].items()}
    summary = {
        "model": args.model, "training_steps": card["iterations"], "seconds": {k: round(v) for k, v in seconds.items()},
        "recognised": {"value": quality["recognised"], "target": ">= 0.70",
                       "real_held_out": quality["real_test_recognised"]},
        "per_class": {name: {"recognised": c["recognised"]["value"], "diversity_ratio": c["diversity_ratio"]}
                      for name, c in quality["per_class"].items()},
        "diversity_target": ">= 0.5 of the real images'",
        "distances": quality["distances"], "near_copies": quality["near_copies"],
        "gan_train_test_accuracy": accuracy,
        "gan_train_over_baseline": accuracy["gan_train"]["mean"] / accuracy["baseline"]["mean"],
        "gan_train_target": ">= 0.8 of the real-trained accuracy",
        "augment_accuracy": {arm: s["accuracy"] for arm, s in augment["summary"].items()},
        "augment_versus_real_only": {arm: [run.get("versus_real_only", {}).get("accuracy_difference") for run in runs]
                                     for arm, runs in augment["runs"].items() if arm != "real only"},
        "augment_over_seeds": augment["pooled"],  # each test image's correctness averaged over the seeds
        "augment_verdict": augment["verdict"],
        "augment_target": "real + samples not worse than real alone (accuracy difference CI; over seeds: "
                          "not worse by more than the margin)",
    }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
