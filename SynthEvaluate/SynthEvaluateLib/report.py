"""Reports of evaluation results: flat tables (CSV, Slicer table nodes), PNG plots, a
self-contained HTML page (plots embedded), and JSON of every figure."""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

import numpy as np

from MedSynthCommonLib.storage import OutputSet, bytes_writer, claim_folder, json_bytes
from MedSynthCommonLib.tables import csv_text


def _ci_text(entry) -> str:
    if not isinstance(entry, dict) or entry.get("value") is None:
        return "n/a"
    ci = entry.get("ci")
    return f"{entry['value']:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")


def summary_rows(result: dict) -> list[dict]:
    """One flat row per arm / stratum / reader / metric of a protocol result."""
    protocol = result.get("protocol")
    if protocol in ("gan-train/gan-test", "augmentation"):
        rows = [{"arm": arm, "metric": metric.replace("auc", "AUC"), "mean": s[metric]["mean"], "std": s[metric]["std"],
                 "seeds": len(s[metric]["per_seed"])} for arm, s in result["summary"].items() for metric in ("accuracy", "auc")]
        inception = result.get("inception_score")
        if inception:  # from the recipe's classifier, not Inception-v3 (results.json says so)
            rows += [{"arm": name.replace("_", " "), "metric": "Inception Score (recipe classifier)",
                      "mean": inception[name]["mean"], "std": inception[name]["std"],
                      "seeds": len(inception[name]["per_seed"])} for name in ("synthetic_test", "real_test")]
        return rows
    if protocol == "segmentation-augmentation":
        return [{"arm": arm, "dice": s["dice_mean_over_seeds"], "nsd": s["nsd_mean_over_seeds"]}
                for arm, s in result["summary"].items()]
    if protocol == "segment-study":
        return [{"arm": arm, "dice": s["dice_mean_over_seeds"], "nsd": s["nsd_mean_over_seeds"],
                 "lesion_sensitivity": s["lesion_sensitivity_mean_over_seeds"],
                 "false_positives_per_case": s["false_positives_per_case"]} for arm, s in result["summary"].items()]
    if protocol == "robustness":
        return [{"size_class": s["size_class"], "contrast": s["contrast"], "cases": s["cases"],
                 "detection": s["detection"]["value"], "detection_ci": _ci_text(s["detection"]),
                 "false_positives_per_case": s.get("false_positives_per_case"),
                 "dice": s["dice"]["value"], "dice_ci": _ci_text(s["dice"])} for s in result["strata"]]
    if protocol == "reader-study":
        rows = []
        for reader, r in [*result["readers"].items(), ("all readers", result["pooled"])]:
            rows.append({"reader": reader, "answered": r["answered"], "accuracy": _ci_text(r["accuracy"]),
                         "sensitivity": _ci_text(r["sensitivity"]), "specificity": _ci_text(r["specificity"]),
                         "mean_confidence": round(r["mean_confidence"], 2)})
        return rows
    if protocol == "multilabel":
        return _per_finding_rows(result["per_finding"])  # the called findings: per_image.csv
    if protocol == "segmentation":
        rows = []
        for label, metrics in result["aggregated"].items():
            for name, value in metrics.items():
                if isinstance(value, dict):
                    rows.append({"label": label, "metric": name, "mean": value["value"], "ci": _ci_text(value),
                                 "cases": value["cases"]})
                elif not isinstance(value, list):
                    rows.append({"label": label, "metric": name, "mean": value, "ci": "", "cases": result["cases"]})
        return rows
    if protocol == "images":
        return [{"metric": k, "value": v} for k, v in result["metrics"].items()]
    if protocol == "privacy":
        return [{"space": space, "near_copies": s["flagged"], "memorisation_rate": s["memorisation_rate"],
                 "closer_than_real_rate": s["closer_than_real_rate"], "chance_rate": s["chance_rate"],
                 "p_value_more_than_chance": s["p_value_more_than_chance"],
                 "median_synthetic_to_train": s["median_synthetic_to_train"],
                 "median_real_to_train": s["median_real_to_train"], "threshold": s["threshold"]}
                for space, s in result["summary"].items()]
    if protocol == "generator":
        rows = [{"class": name, "samples_recognised": _ci_text(c["recognised"]),
                 "real_test_recognised": _ci_text(c["real_test_recognised"]),
                 "diversity_vs_real": c["diversity_ratio"], "samples": c["samples"]} for name, c in result["per_class"].items()]
        rows.append({"class": "all", "samples_recognised": _ci_text(result["recognised"]),
                     "real_test_recognised": _ci_text(result["real_test_recognised"]),
                     "diversity_vs_real": min((c["diversity_ratio"] for c in result["per_class"].values()
                                               if np.isfinite(c["diversity_ratio"])), default=float("nan")),
                     "samples": result["sets"]["samples"]})
        return rows
    if protocol == "ct-findings":
        rows = _per_finding_rows(result["per_finding"])
        checked = result.get("per_finding_after_density_check", {})  # the calls the image bears out
        rows += [{**row, "metric": f"{row['metric']} after the density check"} for row in _per_finding_rows(checked)
                 if row["metric"] in ("sensitivity", "specificity")]
        healthy = result.get("healthy_test_scans")
        if healthy:  # beside the synthetic figures: the same model on the real scans as given
            rows += [{"finding": name, "metric": f"specificity on the healthy test scans as given (real, no lesion){after}",
                      "value": _ci_text(f[f"specificity{key}"]), "cases": healthy["scans"]}
                     for name, f in healthy["per_finding"].items()
                     for key, after in (("", ""), ("_after_density_check", ", after the density check"))
                     if f"specificity{key}" in f]
            unlike = healthy.get("unlike_the_training_scans")
            if unlike is not None:  # organ levels unlike the training scans' (another phase or scanner?)
                rows.append({"finding": "all", "metric": "healthy test scans whose organs measure unlike the training "
                                                         "scans'", "value": sum(bool(u) for u in unlike),
                             "cases": len(unlike)})
        where = result["location"]
        rows += [{"finding": "all", "metric": f"location in the right organ ({which.replace('_', ' ')})",
                  "value": _ci_text(where[which]), "cases": where[which]["n"]}
                 for which in ("called_true_positives", "every_inserted_lesion")]
        return rows
    raise ValueError(f"No table layout for protocol {protocol!r}.")


def _per_finding_rows(per_finding: dict) -> list[dict]:
    """AUC, sensitivity, specificity and threshold of each finding (``per_finding_metrics``)."""
    return [{"finding": name, "metric": metric, "value": _ci_text(f[metric]) if metric != "threshold"
             else round(f[metric], 4), "cases": f["positives"] + f["negatives"]}
            for name, f in per_finding.items() for metric in ("auc", "sensitivity", "specificity", "threshold")]


def _figures(result: dict) -> dict:
    """PNG bytes of the protocol's plots (matplotlib, no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figures = {}
    protocol = result.get("protocol")

    def save(name, figure):
        buffer = io.BytesIO()
        figure.tight_layout()
        figure.savefig(buffer, format="png", dpi=110)
        plt.close(figure)
        figures[name] = buffer.getvalue()

    def roc(name, curves: dict, size):
        """ROC curves ({legend label: {"fpr", "tpr"}}) against the chance diagonal."""
        figure, axis = plt.subplots(figsize=size)
        for label, curve in curves.items():
            axis.plot(curve["fpr"], curve["tpr"], label=label)
        axis.plot([0, 1], [0, 1], "--", color="grey")
        axis.set_xlabel("1 - specificity")
        axis.set_ylabel("sensitivity")
        axis.legend(fontsize=6)
        save(name, figure)

    if protocol in ("gan-train/gan-test", "augmentation"):
        arms = list(result["summary"])
        figure, axis = plt.subplots(figsize=(max(4, 1.3 * len(arms)), 3.4))
        means = [result["summary"][a]["accuracy"]["mean"] for a in arms]
        stds = [result["summary"][a]["accuracy"]["std"] for a in arms]
        axis.bar(range(len(arms)), means, yerr=stds, capsize=4, color="#4c78a8")
        axis.set_xticks(range(len(arms)), arms, rotation=20, ha="right")
        axis.set_ylim(0, 1)
        axis.set_ylabel("accuracy (mean +- sd over seeds)")
        save("accuracy_by_arm", figure)
        runs = result["runs"]
        first = next(iter(runs.values()))[0]
        if first.get("roc"):
            roc("roc_first_seed", {f"{arm}: {label}": curve for arm, arm_runs in runs.items()
                                   for label, curve in arm_runs[0].get("roc", {}).items()}, (4, 4))
    elif protocol in ("ct-findings", "multilabel"):
        curves = {f"{name} (AUC {f['auc']['value']:.2f})": f["roc"] for name, f in result["per_finding"].items()
                  if f.get("roc")}
        if curves:
            roc("roc_per_finding", curves, (4.2, 4.2))
    elif protocol == "robustness":
        strata = result["strata"]
        sizes = list(dict.fromkeys(s["size_class"] for s in strata))
        contrasts = list(dict.fromkeys(s["contrast"] for s in strata))
        figure, axis = plt.subplots(figsize=(4.8, 3.4))
        width = 0.8 / len(contrasts)
        for n, contrast in enumerate(contrasts):
            values = [next(s["detection"]["value"] for s in strata if s["size_class"] == z and s["contrast"] == contrast)
                      for z in sizes]
            axis.bar(np.arange(len(sizes)) + n * width, values, width, label=f"contrast {contrast:+g}")
        axis.set_xticks(np.arange(len(sizes)) + width * (len(contrasts) - 1) / 2, sizes)
        axis.set_ylim(0, 1)
        axis.set_ylabel("detection rate")
        axis.legend(fontsize=7)
        save("detection_by_size_and_contrast", figure)
    elif protocol == "reader-study":
        readers = list(result["readers"])
        figure, axis = plt.subplots(figsize=(max(3.5, 1.2 * len(readers)), 3.2))
        values = [result["readers"][r]["accuracy"]["value"] for r in readers]
        errors = np.array([[v - result["readers"][r]["accuracy"]["ci"][0], result["readers"][r]["accuracy"]["ci"][1] - v]
                           for r, v in zip(readers, values)]).T
        axis.bar(readers, values, yerr=errors, capsize=4, color="#f58518")
        axis.axhline(0.5, color="grey", linestyle="--")
        axis.set_ylim(0, 1)
        axis.set_ylabel("accuracy (real vs synthetic)")
        save("reader_accuracy", figure)
    elif protocol == "privacy":
        _privacy_figures(result, plt, save)
    elif protocol == "generator":
        _generator_figures(result, plt, save)
    return figures


def _generator_figures(result: dict, plt, save) -> None:
    """Recognition per class (samples beside held-out real images) and, per class, samples
    above the real image nearest to each."""
    names = list(result["per_class"])
    figure, axis = plt.subplots(figsize=(max(3.6, 1.3 * len(names)), 3.2))
    for offset, key, label in ((-0.2, "recognised", "samples"), (0.2, "real_test_recognised", "held-out real")):
        values = [result["per_class"][n][key]["value"] for n in names]
        axis.bar(np.arange(len(names)) + offset, values, 0.4, label=label)
    axis.set_xticks(range(len(names)), names)
    axis.set_ylim(0, 1)
    axis.set_ylabel("recognised as their class")
    axis.legend(fontsize=7)
    save("recognised_by_class", figure)
    rows = result.get("_pictures") or []
    if rows:
        columns = max(len(samples) for _, samples, _ in rows)
        figure, axes = plt.subplots(2 * len(rows), columns, figsize=(1.2 * columns + 0.8, 2.5 * len(rows)), squeeze=False)
        for r, (name, samples, nearest) in enumerate(rows):
            for row, (images, what) in enumerate(((samples, f"{name}: sample"), (nearest, "nearest real"))):
                for column in range(columns):
                    axis = axes[2 * r + row, column]
                    if column < len(images):
                        axis.imshow(images[column], cmap="gray", vmin=0, vmax=1)
                    axis.set_xticks([])
                    axis.set_yticks([])
                axes[2 * r + row, 0].set_ylabel(what, fontsize=7)
        save("samples_and_nearest_real", figure)


def _privacy_figures(result: dict, plt, save) -> None:
    """Distances to the closest training image (synthetic vs the real yardstick, per space)
    and the closest synthetic/training pairs side by side."""
    spaces = list(result["summary"])
    figure, axes = plt.subplots(1, len(spaces), figsize=(4.2 * len(spaces), 3.2), squeeze=False)
    for axis, space in zip(axes[0], spaces):
        s = result["summary"][space]
        values = np.concatenate([s["real_to_train"], s["synthetic_to_train"]])
        bins = np.linspace(0, max(float(values.max()), 1e-9), 30)
        axis.hist(s["real_to_train"], bins, alpha=0.6, density=True, label="real (yardstick)")
        axis.hist(s["synthetic_to_train"], bins, alpha=0.6, density=True, label="synthetic")
        axis.axvline(s["threshold"], color="red", linestyle="--", label="near-copy threshold")
        axis.set_xlabel(f"distance to the closest training image ({space})")
        axis.legend(fontsize=7)
    save("distance_to_closest_training_image", figure)
    pairs = result.get("_pairs") or []
    if pairs:
        figure, axes = plt.subplots(2, len(pairs), figsize=(1.4 * len(pairs) + 0.6, 3.4), squeeze=False)
        for column, (synthetic, train, entry) in enumerate(pairs):
            for row, image in enumerate((synthetic, train)):
                axes[row, column].imshow(image, cmap="gray", vmin=0, vmax=1)
                axes[row, column].set_xticks([])
                axes[row, column].set_yticks([])
            axes[0, column].set_title(f"d={entry['pixel_distance']:.2f}" + (" COPY" if entry["near_copy"] else ""),
                                      fontsize=7, color="red" if entry["near_copy"] else "black")
        axes[0, 0].set_ylabel("synthetic", fontsize=7)
        axes[1, 0].set_ylabel("closest training", fontsize=7)
        save("closest_pairs", figure)


def _jsonable(value):
    if isinstance(value, dict):  # keys starting with "_" hold what only the pictures need
        return {str(k): _jsonable(v) for k, v in value.items() if not str(k).startswith("_")}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return str(value)  # "inf" (identical images' PSNR), "nan": JSON has no such numbers
    return value


#: where a resumable protocol keeps its finished runs until its report is written
RUNS_FOLDER = "runs"
#: what a protocol may put in its report folder before the report (the CT findings model, the
#: finished runs of a study that was interrupted)
PROTOCOL_ENTRIES = ("model", RUNS_FOLDER)


def is_report_folder(folder: Path) -> bool:
    """An earlier report (``results.json``), or only what a protocol wrote there before its report."""
    return (Path(folder) / "results.json").is_file() or all(
        entry.name in PROTOCOL_ENTRIES or entry.name.startswith(".medsynth") for entry in Path(folder).iterdir())


def write_report(result: dict, out_dir: Path, title: str) -> dict:
    """Write ``report.html`` (self-contained), ``results.json``, ``summary.csv`` and PNGs as one
    set: all are made in memory, written whole and checked, ``results.json`` last."""
    out_dir = claim_folder(Path(out_dir), "report folder", is_report_folder)
    rows = summary_rows(result) or [{"result": "no metric applies to this input"}]
    summary = csv_text(rows, list(rows[0]))
    figures = _figures(result)
    header = "".join(f"<th>{html.escape(str(k))}</th>" for k in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(v))}</td>" for v in row.values()) + "</tr>" for row in rows)
    images = "".join(f'<figure><img alt="{name}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'
                     f"<figcaption>{html.escape(name.replace('_', ' '))}</figcaption></figure>"
                     for name, png in figures.items())
    settings = html.escape(json.dumps(_jsonable({k: v for k, v in result.items() if k in (
        "recipe", "seeds", "sets", "test", "preset", "seed", "settings", "verdict")}), indent=1))
    verdict = f"<p><strong>{html.escape(result['verdict'])}</strong></p>" if result.get("verdict") else ""
    page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}figure{display:inline-block}</style></head>"
            f"<body><h1>{html.escape(title)}</h1>{verdict}<h2>Summary</h2><table><tr>{header}</tr>{body}</table>"
            f"<h2>Plots</h2>{images or '<p>No plots for this protocol.</p>'}"
            f"<h2>Settings</h2><pre>{settings}</pre><p>Every figure: results.json. Tables: summary.csv.</p></body></html>")
    with OutputSet() as outputs:
        for name, png in figures.items():
            outputs.add(out_dir / f"{name}.png", *bytes_writer(png))
        if result.get("per_image"):  # one row per judged image (e.g. the privacy audit's)
            per_image = csv_text(result["per_image"], list(result["per_image"][0]))
            outputs.add(out_dir / "per_image.csv", *bytes_writer(per_image.encode("utf-8")))
        outputs.add(out_dir / "summary.csv", *bytes_writer(summary.encode("utf-8")))
        outputs.add(out_dir / "report.html", *bytes_writer(page.encode("utf-8")))
        outputs.add(out_dir / "results.json", *bytes_writer(json_bytes(_jsonable(result), "results")))
        outputs.commit()
    return {"html": str(out_dir / "report.html"), "json": str(out_dir / "results.json"),
            "csv": str(out_dir / "summary.csv"), **({"per_image": str(out_dir / "per_image.csv")} if result.get("per_image") else {}),
            "plots": [str(out_dir / f"{n}.png") for n in figures]}


def _cell(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
