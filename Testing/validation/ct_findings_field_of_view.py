"""Validation (not a test): does the CT findings model read the patient or the framing?

    python Testing/validation/ct_findings_field_of_view.py --out fov_validation

No data needed: the model trains on SynthLesion findings in 4 CT phantoms (100 scans, as the
test suite's study) and is judged on findings in 3 other phantoms framed three ways: as the
training scans, scanned twice as long (the body goes on above and below), framed 1.5 times
wider (air around the body), and a larger body (organs 1.17 times wider, as in a larger patient).  Real scans differ this way (the liver-tumour CTs of the issue "Does
synthesis pay off?": 44 to 207 slices of 2.5 to 5 mm).
Each framing runs with the network reading the whole scan and reading the box around the
organs (``FindingsRecipe.organ_margin_mm``; a box of one size in mm, ``scans.view_extent_mm``),
same seed.  The longer scans go on as their edge slices, as the box does past a scan's end, so
that row shows the scale alone; a real scan goes on with other anatomy there.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # Testing/: the suite's phantom scans

from findings_scans import ORGANS, framed, phantom_scans  # noqa: E402
from SynthEvaluateLib.findings.findings_study import findings_study  # noqa: E402
from SynthEvaluateLib.recipes.findings_model import FindingsRecipe  # noqa: E402


FRAMINGS = ("as trained", "twice as long", "1.5 times wider", "larger body")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reads", nargs="+", default=["whole scan", "organ box"], choices=["whole scan", "organ box"])
    parser.add_argument("--framings", nargs="+", default=list(FRAMINGS), choices=list(FRAMINGS))
    parser.add_argument("--scan-end-augment", action="store_true", help="FindingsRecipe.scan_end_augment")
    parser.add_argument("--scanner-augment", action="store_true", help="FindingsRecipe.scanner_augment")
    parser.add_argument("--organs-only-mm", type=float, help="FindingsRecipe.organs_only_mm (organ box only)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    train, test = phantom_scans(range(4)), phantom_scans(range(10, 13))
    framings = {"as trained": test, "twice as long": [framed(s, 20, 0) for s in test],
                "1.5 times wider": [framed(s, 0, 24) for s in test],
                "larger body": phantom_scans(range(10, 13), shape=(40, 112, 112))}
    recipe = FindingsRecipe(input_shape=(32, 64, 64), epochs=60, scan_end_augment=args.scan_end_augment,
                            scanner_augment=args.scanner_augment)
    results = {}
    for reads, margin in (("whole scan", None), ("organ box", 15.0)):
        for framing, scans in framings.items():
            if reads not in args.reads or framing not in args.framings:
                continue
            started = time.perf_counter()
            result = findings_study(train, scans, ORGANS, 100, 24, dataclasses.replace(
                recipe, organ_margin_mm=margin, organs_only_mm=None if margin is None else args.organs_only_mm),
                                    args.seed)
            where = result["location"]["every_inserted_lesion"]
            results[f"{reads}, {framing}"] = {
                "auc": {name: [round(f["auc"]["value"], 3), [round(c, 2) for c in f["auc"]["ci"]]]
                        for name, f in result["per_finding"].items()},
                "right_organ": [round(where["value"], 3), where["n"]],
                "minutes": round((time.perf_counter() - started) / 60, 1)}
            print(f"{reads}, {framing}:", json.dumps(results[f"{reads}, {framing}"]), flush=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
