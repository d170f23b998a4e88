"""Structured CT findings from synthetic training data: SynthLesion inserts lesions of known
type into known organs of healthy CTs, so every training scan carries an exact, located
findings list; a 3-D multi-label classifier learns the finding types; on held-back scans it is
judged per finding (AUC, sensitivity, specificity with intervals), its evidence is located in
anatomy (right organ or not), and each scan gets a rule-based report.

A finding is a lesion type ("hypodense lesion", "hyperdense lesion"), or with ``label_set``
"type-organ" the type in one organ ("hypodense lesion (liver)"), or with "type-organ-size" also
its SynthLesion size class ("hypodense lesion (liver, large)"), all read from the lesion
records; a scan may have none, one or two lesions, each in an organ drawn from ``organs``
(names in the scan's organ label map).  The user's real labelled scans can join the training
set (``real``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from MedSynthCommonLib.errors import MedSynthInputError
from MedSynthCommonLib.geometry import Geometry, standard_order

from .anatomy import locate_in_anatomy, organ_words

#: finding name -> SynthLesion lesion type
FINDING_TYPES = {"hypodense lesion": "hypo", "hyperdense lesion": "hyper"}
#: SynthLesion preset per organ name (others: ct-generic)
ORGAN_PRESETS = {"liver": "ct-liver", "right kidney": "ct-kidney", "left kidney": "ct-kidney",
                 "kidney right": "ct-kidney", "kidney left": "ct-kidney", "pancreas": "ct-pancreas"}


@dataclass
class HealthyScan:
    """A scan findings are made in, judged on or looked for in.  Stored in the standard order
    (``geometry.standard_order``: i toward the left, j posterior, k superior) whatever order
    it came in, so that a model sees every scan's anatomy the same way round."""

    image: np.ndarray  # [k, j, i] HU
    organs: np.ndarray | None  # [k, j, i] organ label map
    organ_names: dict[int, str]  # label value -> name
    geometry: Geometry

    def __post_init__(self) -> None:
        given = self.geometry
        image, self.geometry = standard_order(self.image, given)
        self.image = np.ascontiguousarray(image)
        if self.organs is not None:
            self.organs = np.ascontiguousarray(standard_order(self.organs, given)[0])

    def organ_labels(self) -> dict[str, int]:
        """Label value of each organ the map names (names as ``organ_words`` spells them)."""
        return {organ_words(name): value for value, name in self.organ_names.items()}

    def cut(self, box: tuple[slice, slice, slice]) -> "HealthyScan":
        """The scan's voxels in ``box`` (array slices, which may reach outside the scan), each
        where it was in RAS.  Outside the scan the image goes on as its edge voxels (the body
        goes on past a scan's last slice; air stays air) and the organ map as no organ."""
        g = self.geometry
        image = cut_array(self.image, box, outside="edge")
        organs = None if self.organs is None else cut_array(self.organs, box)
        start = np.array([s.start for s in box], float)
        return HealthyScan(image, organs, self.organ_names, Geometry(g.kji_to_ras(start), g.spacing, g.direction))


def cut_array(array: np.ndarray, box: tuple[slice, ...], outside: str = "zero") -> np.ndarray:
    """``array[box]`` for a box that may reach past the array: there it goes on as its edge
    voxels (``outside="edge"``) or as zeros."""
    inner, local = inside(box, np.shape(array))
    pad = [(part.start, s.stop - s.start - part.stop) for part, s in zip(local, box)]
    part = np.asarray(array)[inner]
    if not any(low or high for low, high in pad):
        return part
    return np.pad(part, pad, mode="edge") if outside == "edge" else np.pad(part, pad)


def inside(box: tuple[slice, ...], shape: tuple[int, ...]) -> tuple[tuple[slice, ...], tuple[slice, ...]]:
    """The part of ``box`` that lies in an array of ``shape``: (its slices in the array, the
    same voxels' slices in the box)."""
    inner = tuple(slice(max(s.start, 0), min(s.stop, n)) for s, n in zip(box, shape))
    return inner, tuple(slice(i.start - s.start, i.stop - s.start) for i, s in zip(inner, box))


def organ_bounds(scan: HealthyScan, organs: list[str], margin_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) voxel indices [k, j, i] of the box around ``organs`` (names, as in
    ``scan.organ_names``) with ``margin_mm`` on every side, not clipped to the scan.  A scan
    without any of those organs is refused: a model that reads the box would read the whole scan
    as another body."""
    from SynthLesionLib.patch import bounding_slices

    labels = scan.organ_labels()
    values = [labels[o] for o in {organ_words(o) for o in organs} if o in labels]
    inside_organs = np.isin(scan.organs, values) if scan.organs is not None and values else None
    tight = None if inside_organs is None else bounding_slices(inside_organs, np.zeros(3, int))
    if tight is None:
        raise MedSynthInputError(
            f"The model reads the region around its organs ({', '.join(organs)}); "
            + ("this scan has no organ map" if scan.organs is None else "this scan's organ map holds none of them")
            + ": give the scan an organ_mask with those organs (e.g. TotalSegmentator's) and their --organ-names, "
              "or train the model with --whole-scan.")
    margin = np.ceil(float(margin_mm) / scan.geometry.spacing_kji).astype(int)
    return np.array([t.start for t in tight]) - margin, np.array([t.stop for t in tight]) + margin


def view_box(bounds: tuple[np.ndarray, np.ndarray], scan: HealthyScan,
             view_mm: tuple[float, float, float] | None = None) -> tuple[slice, slice, slice]:
    """Array slices of the box a model reads, from the organs' ``organ_bounds``.

    Without ``view_mm`` the box is the bounds clipped to the scan.  With it (mm per axis
    [k, j, i], from ``view_extent_mm``) the box is that size, centred on the organs, and may reach
    past the scan (``HealthyScan.cut`` goes on with the edge voxels there): every scan is then
    shown at one scale whatever its organs' size or framing, as ``Spacingd`` to one spacing would.
    Organs larger than the view get their own box (smaller on the model's input) rather than
    being cut."""
    low, high = bounds
    if view_mm is None:
        low, high = np.maximum(low, 0), np.minimum(high, scan.image.shape)
    else:
        size = np.maximum(np.round(np.asarray(view_mm, float) / scan.geometry.spacing_kji).astype(int), high - low)
        low = (low + high - size) // 2
        high = low + size
    return tuple(slice(int(a), int(b)) for a, b in zip(low, high))


def organ_box(scan: HealthyScan, organs: list[str], margin_mm: float | None,
              view_mm: tuple[float, float, float] | None = None) -> tuple[slice, slice, slice]:
    """``view_box`` of the scan's ``organ_bounds``; the whole scan when ``margin_mm`` is None."""
    if margin_mm is None:
        return tuple(slice(0, n) for n in scan.image.shape)
    return view_box(organ_bounds(scan, organs, margin_mm), scan, view_mm)


def view_extent_mm(scans: list[HealthyScan], bounds: list[tuple[np.ndarray, np.ndarray]]) -> tuple[float, float, float]:
    """The box a model reads (mm per axis [k, j, i]): the largest of the ``scans``' organ boxes
    (``bounds``, their ``organ_bounds``; the model's training scans), so that each fits it whole."""
    extents = [(high - low) * scan.geometry.spacing_kji for scan, (low, high) in zip(scans, bounds)]
    return tuple(round(float(v), 3) for v in np.max(extents, axis=0))


def organ_region(scan: HealthyScan, organs: list[str], margin_mm: float | None,
                 view_mm: tuple[float, float, float] | None = None) -> HealthyScan:
    """The scan cut to ``organ_box``; the scan itself when ``margin_mm`` is None."""
    return scan if margin_mm is None else scan.cut(organ_box(scan, organs, margin_mm, view_mm))


def model_box(classifier, scan: HealthyScan) -> tuple[slice, slice, slice] | None:
    """The box ``classifier`` reads of ``scan``: around the organs it was trained on, with the
    recipe's margin (``VolumeRecipe.organ_margin_mm``) and its view size (None in cards written
    before it existed: the box clipped to the scan); None for a whole-scan model."""
    if not classifier.organs or classifier.recipe.organ_margin_mm is None:
        return None
    return organ_box(scan, classifier.organs, classifier.recipe.organ_margin_mm, classifier.view_mm)


def box_coverage(box: tuple[slice, ...] | None, shape: tuple[int, ...]) -> float:
    """The share (0-1) of ``box`` that lies inside an array of ``shape`` (1 for None, the whole
    scan): below 1 where a scan ends within the box a model reads (a shorter field of view), which
    the model saw in training only at the training scans' own ends."""
    if box is None:
        return 1.0
    inner, _ = inside(box, shape)
    return float(np.prod([i.stop - i.start for i in inner]) / np.prod([s.stop - s.start for s in box]))


def model_view(classifier, scan: HealthyScan, box: tuple[slice, slice, slice] | None = None) -> HealthyScan:
    """What ``classifier`` reads of a scan: the box around its organs (``box`` when the caller has
    it from ``model_box``), or the whole scan."""
    box = box or model_box(classifier, scan)
    return scan if box is None else scan.cut(box)


def evidence_on_scan(classifier, scan: HealthyScan, finding: int) -> tuple[np.ndarray, dict]:
    """The evidence of ``finding`` on the whole scan's grid (zero outside the region the model
    reads) and where it lies (``locate_in_anatomy``, from that region)."""
    box = model_box(classifier, scan) or tuple(slice(0, n) for n in scan.image.shape)
    view = scan.cut(box)
    seen = classifier.evidence(view.image, finding)
    evidence = np.zeros(scan.image.shape, np.float32)
    inner, local = inside(box, scan.image.shape)
    evidence[inner] = seen[local]
    return evidence, locate_in_anatomy(seen, view.geometry, view.organs, view.organ_names)


LABEL_SETS = ("type", "type-organ", "type-organ-size")


def finding_name(lesion: str, organ: str, size_class: str, label_set: str = "type") -> str:
    """The finding a lesion of type ``lesion`` (a ``FINDING_TYPES`` key) is labelled as."""
    return {"type": lesion, "type-organ": f"{lesion} ({organ})",
            "type-organ-size": f"{lesion} ({organ}, {size_class})"}[label_set]


def finding_names(organs: list[str], label_set: str = "type",
                  size_classes: tuple[str, ...] = ("medium", "large")) -> list[str]:
    """Every finding of a label set, in a fixed order (sizes: every class up to the largest
    asked for, since a lesion too large for its organ falls back to a smaller class)."""
    organs = [organ_words(o) for o in organs]
    if label_set not in LABEL_SETS:
        raise MedSynthInputError(f"Unknown label set {label_set!r}; choose one of {', '.join(LABEL_SETS)}.")
    sizes = SIZE_CLASSES[:max(SIZE_CLASSES.index(s) for s in size_classes) + 1]
    return list(dict.fromkeys(finding_name(lesion, organ, size, label_set)
                              for lesion in FINDING_TYPES for organ in organs for size in sizes))


@dataclass
class FindingsSet:
    """Scans with exact, located findings: ``findings`` (n, F) 0/1 in ``names`` order;
    ``masks`` per scan {finding index: [k, j, i] bool lesion voxels}; ``references`` per scan
    a list of {finding, type, organ, size_class, size_mm, centre_ras}."""
    names: list[str]
    volumes: list[np.ndarray]
    findings: np.ndarray
    masks: list[dict[int, np.ndarray]]
    references: list[list[dict]]
    records: list[list[dict]]  # per scan: SynthLesion's lesion records (what made each lesion)


def findings_scan(scans: list[HealthyScan], n: int, organs: list[str], seed: int, names: list[str],
                  size_classes: tuple[str, ...] = ("medium", "large"), positive_rate: float = 0.5,
                  label_set: str = "type") -> tuple[np.ndarray, np.ndarray, dict, list[dict], list[dict]]:
    """Synthetic scan ``n`` (from ``scans[n % len(scans)]``, seeded by (seed, n) alone, so any
    scan can be made on its own, in any process): (image [k, j, i], findings row (F,) 0/1 in
    ``names`` order, {finding index: lesion voxels}, references, SynthLesion records)."""
    scan, organs = scans[n % len(scans)], [organ_words(o) for o in organs]
    rng = np.random.default_rng([seed, n])
    by_name = scan.organ_labels()
    available = [o for o in organs if o in by_name and (scan.organs == by_name[o]).any()]
    if not available:
        raise MedSynthInputError(f"Scan {n % len(scans)} has none of the organs {organs} in its label map.")
    image, row, masks, inserted, records = scan.image, np.zeros(len(names), np.int64), {}, [], []
    for lesion in FINDING_TYPES:
        if rng.random() >= positive_rate:
            continue
        organ = str(rng.choice(available))
        result = _insert(image, scan, by_name[organ], organ, FINDING_TYPES[lesion], str(rng.choice(size_classes)),
                         int(rng.integers(2 ** 31)))
        if result is None:  # no size fits this organ: the finding stays absent
            continue
        image = result.image
        record = result.records[0]
        name = finding_name(lesion, organ, record.size_class, label_set)
        f = names.index(name)
        masks[f] = masks.get(f, False) | (result.lesion_labels > 0)
        row[f] = 1
        inserted.append({"finding": name, "type": lesion, "organ": organ, "size_class": record.size_class,
                         "size_mm": round(record.target_diameter_mm, 1),
                         "centre_ras": [round(v, 1) for v in record.centre_ras]})
        records.append(record.to_dict())
    return image, row, masks, inserted, records


def check_organs(scans: list[HealthyScan], organs: list[str]) -> None:
    """Refuse organs that no scan's organ map names (listing the names it has)."""
    known = {organ_words(name) for scan in scans for name in scan.organ_names.values()}
    unknown = [organ for organ in [organ_words(o) for o in organs] if organ not in known]
    if unknown:
        raise MedSynthInputError(f"No organ map names {', '.join(map(repr, unknown))}; its names include "
                                 f"{', '.join(sorted(known)[:12])}{' ...' if len(known) > 12 else ''}.")


def synthetic_findings_set(scans: list[HealthyScan], count: int, organs: list[str], seed: int,
                           size_classes: tuple[str, ...] = ("medium", "large"), positive_rate: float = 0.5,
                           label_set: str = "type", progress: Callable[[str], None] | None = None) -> FindingsSet:
    """``count`` scans made from ``scans`` (in turn), each lesion type present with
    ``positive_rate``, in a random organ among ``organs`` (``findings_scan``)."""
    check_organs(scans, organs)
    names = finding_names(organs, label_set, size_classes)
    made = FindingsSet(names, [], np.zeros((count, len(names)), np.int64), [], [], [])
    for n in range(count):
        image, made.findings[n], masks, inserted, records = findings_scan(
            scans, n, organs, seed, names, size_classes, positive_rate, label_set)
        made.volumes.append(image)
        made.masks.append(masks)
        made.references.append(inserted)
        made.records.append(records)
        if progress is not None and (n + 1) % 10 == 0:
            progress(f"synthetic scans: {n + 1}/{count}")
    return made


SIZE_CLASSES = ("tiny", "small", "medium", "large")


def _insert(image, scan: HealthyScan, label: int, organ: str, lesion_type: str, size_class: str, seed: int):
    """One lesion of ``lesion_type`` in the organ (no mass effect, so the healthy organ map stays
    the truth), at ``size_class`` or the largest smaller class that fits (small organs); None
    when none fits.  The organ's preset is used where its intensity range fits this scan (an
    unenhanced kidney may not fit ``ct-kidney``), else ``ct-generic``."""
    from SynthLesionLib import LesionConfig, synthesize_lesions
    from SynthLesionLib.errors import PlacementError, PresetMismatchError

    presets = list(dict.fromkeys([ORGAN_PRESETS.get(organ, "ct-generic"), "ct-generic"]))
    for preset in presets:
        for size in reversed(SIZE_CLASSES[:SIZE_CLASSES.index(size_class) + 1]):
            config = LesionConfig(preset=preset, lesion_type=lesion_type, size_class=size, count=1,
                                  mass_effect=0.0)  # the organ map stays exact
            try:
                result = synthesize_lesions(image, scan.organs, scan.geometry, config, seed=seed, organ_label=label)
            except PlacementError:
                continue
            except PresetMismatchError:
                if preset == presets[-1]:
                    raise
                break  # this preset does not fit the organ's intensities: the next one
            if result.records:
                return result
        else:
            return None  # the preset fits, no size does
    return None


def _training_line(entry: dict) -> str:
    if "resumed_at_epoch" in entry:
        return f"resuming the interrupted training after epoch {entry['resumed_at_epoch']}"
    return f"epoch {entry['epoch']}/{entry['epochs']} loss {entry['loss']:.3f}"


@dataclass
class RealFindings:
    """The user's real labelled scans joining the training set: ``findings`` (n, F) 0/1 in the
    study's finding order; ``masks`` as in ``FindingsSet`` (on each scan's grid) where lesion
    masks exist, else None.  The study cuts each to the box the network reads, as it cuts the
    healthy scans."""
    scans: list[HealthyScan]
    findings: np.ndarray
    masks: list[dict[int, np.ndarray] | None] | None = None


def findings_study(train_scans: list[HealthyScan], test_scans: list[HealthyScan], organs: list[str],
                   train_count: int = 60, test_count: int = 20, recipe=None, seed: int = 0,
                   real: RealFindings | None = None, rules: dict | None = None,
                   size_classes: tuple[str, ...] = ("medium", "large"), label_set: str = "type",
                   progress: Callable[[str], None] | None = None, checkpoint_dir=None,
                   calibration_scans: list[HealthyScan] | None = None, calibration_count: int = 24) -> dict:
    """Train the 3-D classifier on synthetic located findings made from ``train_scans`` (plus
    ``real`` when given) and judge it on synthetic findings made from ``test_scans`` (scans it
    never saw): per finding AUC (DeLong CI), sensitivity and specificity (Wilson CIs) at the
    validation thresholds (or, with ``calibration_scans``, thresholds chosen on those real scans
    and ``calibration_count`` synthetic scans made from them: ``calibration.calibrate_thresholds``);
    location: the organ named by each finding's evidence against the organ the lesion was
    inserted in; a report per test scan."""
    from ..metrics.classification import per_finding_metrics
    from .calls import checked_calls, healthy_calls, located_findings
    from .report_rules import write_report_text
    from ..recipes.volume_classifier import VolumeRecipe, train_volume_classifier

    recipe = recipe or VolumeRecipe()
    say = progress or (lambda message: None)
    # the network reads the box around the organs, on every scan it trains and is judged on
    check_organs(train_scans + test_scans, organs)  # a misspelt organ: the names the maps hold

    def bounds(scans: list[HealthyScan], which: str) -> list:
        found = []
        for number, scan in enumerate(scans, 1):  # numbered as the rows of the user's CSV
            try:
                found.append(organ_bounds(scan, organs, recipe.organ_margin_mm))
            except MedSynthInputError as error:
                raise MedSynthInputError(f"{which} scan {number}: {error}") from None
        return found

    every = (train_scans, test_scans, real.scans if real is not None else [])
    view_mm = None
    if recipe.organ_margin_mm is None:  # the whole scans
        boxes = [[organ_box(scan, organs, None) for scan in scans] for scans in every]
    else:  # one view size for every scan: the largest training box
        found = [bounds(scans, which) for scans, which in zip(every, ("Training", "Test", "Real training"))]
        view_mm = view_extent_mm(every[0] + every[2], found[0] + found[2])
        boxes = [[view_box(b, scan, view_mm) for b, scan in zip(f, scans)] for f, scans in zip(found, every)]
    train_boxes, test_boxes, real_boxes = boxes
    train_scans = [scan.cut(box) for scan, box in zip(train_scans, train_boxes)]
    test_scans = [scan.cut(box) for scan, box in zip(test_scans, test_boxes)]
    made = synthetic_findings_set(train_scans, train_count, organs, seed, size_classes, label_set=label_set,
                                  progress=say)
    names = made.names
    volumes, findings, masks = list(made.volumes), made.findings, list(made.masks)
    groups = [f"healthy scan {n % len(train_scans)}" for n in range(train_count)]  # thresholds on unseen patients
    if real is not None:
        real_findings = np.asarray(real.findings)
        if real_findings.shape != (len(real.scans), len(names)):
            raise MedSynthInputError(f"The real scans' findings must be ({len(real.scans)}, {len(names)}): "
                                     f"one 0/1 column per finding ({', '.join(names)}).")
        volumes += [scan.cut(box).image for scan, box in zip(real.scans, real_boxes)]
        findings = np.concatenate([findings, real_findings])
        masks += [None if m is None else {f: cut_array(mask, box) for f, mask in m.items()}
                  for m, box in zip(real.masks or [None] * len(real.scans), real_boxes)]
        groups += [f"real scan {n}" for n in range(len(real.scans))]
    say(f"training the 3-D classifier on {len(volumes)} scans")
    classifier = train_volume_classifier(
        volumes, findings, names, recipe, seed, masks=masks, groups=groups, checkpoint_dir=checkpoint_dir,
        progress=lambda e: say(_training_line(e)))
    classifier.organs, classifier.view_mm = [organ_words(o) for o in organs], view_mm
    classifier.training["synthetic_lesions"] = {"size_classes": list(size_classes), "label_set": label_set}
    from .familiarity import level_ranges, organ_levels

    trained_on = train_scans + ([] if real is None else [scan.cut(box) for scan, box in zip(real.scans, real_boxes)])
    classifier.training["organ_levels_hu"] = level_ranges([organ_levels(scan, organs) for scan in trained_on])
    if calibration_scans:
        from .calibration import calibrate_thresholds

        calibrate_thresholds(classifier, calibration_scans, calibration_count, seed + 20_000, progress=say)
    test = synthetic_findings_set(test_scans, test_count, organs, seed + 10_000, size_classes, label_set=label_set)
    probabilities = classifier.predict_proba(test.volumes)
    called = classifier.called(probabilities)
    per_finding = per_finding_metrics(test.findings, probabilities, called, names, classifier.thresholds)
    healthy = healthy_calls(classifier, test_scans, names, rules)
    from .familiarity import familiarity_text, unfamiliar_organs

    healthy["unlike_the_training_scans"] = [familiarity_text(unfamiliar_organs(
        organ_levels(scan, organs), classifier.training["organ_levels_hu"])) for scan in test_scans]
    cases, called_right, called_total, any_right, any_total = [], 0, 0, 0, 0
    for n, volume in enumerate(test.volumes):
        scan = test_scans[n % len(test_scans)]
        inserted = [names.index(r["finding"]) for r in test.references[n]]
        wanted = inserted + [int(f) for f in np.flatnonzero(called[n])]
        evidence = classifier.evidence_maps(volume, wanted)  # one pass for every map this scan needs
        rows = located_findings(classifier, volume, scan, scan.geometry, probabilities[n], evidence, rules)
        for row in rows:
            truth_organs = [r["organ"] for r in test.references[n] if r["finding"] == row["finding"]]
            if truth_organs:
                row["right_organ"] = row["organ"] in truth_organs
                called_total += 1
                called_right += row["right_organ"]
        for reference in test.references[n]:  # every inserted lesion, called or not
            where = locate_in_anatomy(evidence[names.index(reference["finding"])], scan.geometry,
                                      scan.organs, scan.organ_names)
            reference["located_organ"] = where["organ"]
            any_total += 1
            any_right += where["organ"] == reference["organ"]
        cases.append({"case": n, "reference": test.references[n], "predicted": rows,
                      "report": write_report_text(rows, rules)})
    per_scan = [{"scan": c["case"],
                 "inserted": "; ".join(f"{r['finding']} in the {r['organ']}, {r['size_mm']:g} mm"
                                       for r in c["reference"]) or "none",
                 "called": "; ".join(f"{r['finding']}: {r['location']} (p {r['probability']:.2f}"
                                     + (", not borne out by its density)" if r["supported"] is False else ")")
                                     for r in c["predicted"]) or "none",
                 "report": c["report"]} for c in cases]
    from ..metrics.classification import proportion

    return {"protocol": "ct-findings", "findings": names, "label_set": label_set,
            "organs": [organ_words(o) for o in organs], "recipe": recipe.to_dict(), "seed": seed,
            "view_mm": None if view_mm is None else list(view_mm),  # the box the network reads, [k, j, i] mm
            "sets": {"train": {"synthetic": train_count, "real": 0 if real is None else len(real.scans)},
                     "test": {"synthetic": test_count}},
            "per_finding": per_finding, "healthy_test_scans": healthy,
            "per_finding_after_density_check": per_finding_metrics(  # calls the image bears out
                test.findings, probabilities, checked_calls(called, [c["predicted"] for c in cases], names), names,
                classifier.thresholds),
            "location": {"called_true_positives": proportion(called_right, called_total),
                         "every_inserted_lesion": proportion(any_right, any_total),
                         "chance_uniform_guess": round(1 / len(organs), 3),
                         "rule": "the organ holding the most evidence (>= 30 % of it, at half-maximum) is the "
                                 "organ the lesion was inserted in"},
            "classifier": classifier.training, "cases": cases, "per_image": per_scan, "_classifier": classifier}
