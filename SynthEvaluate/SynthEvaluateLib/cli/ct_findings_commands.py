"""``medsynth evaluate ct-findings`` (train and judge a located 3-D findings classifier on
SynthLesion data) and ``medsynth evaluate triage`` (a reading queue from a trained model)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from MedSynthCommonLib.cli import MAX_ITEMS, MAX_STEPS, non_negative_number, positive_number, seed_number, whole_number
from MedSynthCommonLib.errors import MedSynthInputError
from MedSynthCommonLib.executors import add_executor_options
from MedSynthCommonLib.tables import csv_text

from ..findings.synthetic import LABEL_SETS, finding_names
from ..findings.triage import QUEUE_COLUMNS
from .image_set_cli import add_loader_workers_option


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _recipe(args):
    from MedSynthCommonLib.devices import resolve_accelerator

    from ..recipes.findings_model import FindingsRecipe

    device = resolve_accelerator(args.device, precision="fp32").device
    return FindingsRecipe(network=args.network, input_shape=tuple(args.input_shape), epochs=args.epochs,
                        learning_rate=args.learning_rate, scanner_augment=args.scanner_augment,
                        scan_end_augment=args.scan_end_augment, organ_relative=args.organ_relative,
                          organs_only_mm=args.organs_only_mm,
                        organ_margin_mm=None if args.whole_scan else FindingsRecipe.organ_margin_mm, device=device,
                        workers=args.loader_workers)


def _scans(path: Path, organ_names: dict[int, str]):
    from ..findings.ct_findings_cases import load_scan, read_ct_cases

    cases = read_ct_cases(path)
    _say(f"reading {len(cases)} scan(s) of {path}")
    return cases, [load_scan(case, organ_names) for case in cases]


def _cmd_ct_findings(args) -> dict:
    from ..findings.ct_findings_cases import finding_columns, parse_organ_names
    from ..findings.findings_study import findings_study
    from ..findings.scans import RealFindings
    from ..findings.report_rules import load_rules
    from ..recipes.findings_model import check_new_model_folder, save_findings_model

    model_out = check_new_model_folder(Path(args.model_out or Path(args.out) / "model"), "--model-out")
    organ_names = parse_organ_names(args.organ_names)
    rules = load_rules(args.rules)
    _, train_scans = _scans(args.healthy, organ_names)
    same = args.test_healthy is None
    test_scans = train_scans if same else _scans(args.test_healthy, organ_names)[1]
    real = None
    if args.real_train is not None:
        from ..findings.ct_findings_cases import load_scan, read_ct_cases

        cases = read_ct_cases(args.real_train, "real training cases")
        names = finding_names(args.organs, args.labels, tuple(args.sizes))
        columns = finding_columns(cases, names, args.real_train)  # the table checked before any scan is read
        real = RealFindings([load_scan(c, organ_names, need_organs=False) for c in cases], columns)
    calibration = None
    if args.calibrate_on is not None:
        from ..studies.leakage import check_disjoint

        calibration = _scans(args.calibrate_on, organ_names)[1]
        # thresholds chosen on the scans the model is judged on would be optimistic
        check_disjoint({f"scan {n}": s.image for n, s in enumerate(test_scans, 1)},
                       {f"--calibrate-on scan {n}": s.image for n, s in enumerate(calibration, 1)},
                       "calibration", "test" if not same else "test (the --healthy scans: no --test-healthy)")
    result = findings_study(train_scans, test_scans, args.organs, args.train_count, args.test_count, _recipe(args),
                            args.seed, real, rules, tuple(args.sizes), args.labels, _say, checkpoint_dir=model_out,
                            calibration_scans=calibration, calibration_count=args.calibration_count)
    if same:
        result["sets"]["test"]["note"] = ("no --test-healthy: the test scans were made from the training scans "
                                          "(other lesions, other places); give other patients to judge generalisation")
        result["healthy_test_scans"]["note"] += ("; without --test-healthy these are the training scans, which the "
                                                 "model saw, so their specificity is optimistic")
    model = save_findings_model(model_out, result["_classifier"])
    result["model"] = str(model)
    return result


def _cmd_calibrate(args) -> int:
    from SynthTranslateLib.model_dir import CARD

    from ..findings.calibration import calibrate_thresholds
    from ..findings.ct_findings_cases import finding_columns, load_scan, parse_organ_names, read_ct_cases
    from ..findings.scans import RealFindings
    from ..recipes.findings_model import load_findings_model, save_findings_model

    if args.healthy is None and args.labelled is None:
        raise MedSynthInputError("Give the real scans to calibrate on: --healthy (healthy scans with organ masks) "
                                 "and/or --labelled (scans with one 0/1 column per finding).")
    model_out = Path(args.model_out)
    if (model_out / CARD).exists() or model_out.resolve() == Path(args.model).resolve():
        raise MedSynthInputError(f"{model_out} already holds a model; choose another --model-out: a model is never "
                                 "overwritten (the calibrated copy is written beside it).")
    if model_out.exists() and not model_out.is_dir():
        raise MedSynthInputError(f"--model-out {model_out} is a file, not a folder; give a new folder path.")
    classifier = load_findings_model(args.model)
    organ_names = parse_organ_names(args.organ_names or [])
    healthy = _scans(args.healthy, organ_names)[1] if args.healthy is not None else []
    real = None
    if args.labelled is not None:
        cases = read_ct_cases(args.labelled, "labelled calibration scans")
        columns = finding_columns(cases, list(classifier.findings), args.labelled)
        real = RealFindings([load_scan(c, organ_names, need_organs=bool(classifier.organs)) for c in cases], columns)
    record = calibrate_thresholds(classifier, healthy, args.count if healthy else 0, args.seed, real, _say)
    save_findings_model(model_out, classifier)
    print(json.dumps({"model": str(model_out), **{k: record[k] for k in ("scans", "thresholds_before", "thresholds",
                                                                          "notes")}}, indent=2))
    return 0


def _cmd_triage(args) -> int:
    from MedSynthCommonLib.storage import write_text_atomic
    from MedSynthCommonLib.paths import check_distinct_paths

    from ..findings.ct_findings_cases import organ_names_file, parse_organ_names, read_ct_cases
    from ..findings.report_rules import load_rules
    from ..findings.triage import QUEUE_COLUMNS, triage_files

    if Path(args.out).suffix.lower() != ".csv":
        raise MedSynthInputError(f"--out {args.out}: the queue is a CSV file; give a name ending in .csv.")
    cases = read_ct_cases(args.cases)
    inputs = {"--cases": args.cases, "--rules": args.rules, "the model's card": Path(args.model) / "card.json",
              **{f"case {c.case_id}": c.image for c in cases},
              **{f"the organ mask of case {c.case_id}": c.organ_mask for c in cases},
              **{f"--organ-names {item}": organ_names_file(item)[0] for item in args.organ_names or []
                 if organ_names_file(item) is not None}}
    check_distinct_paths({"--out": args.out}, {role: path for role, path in inputs.items()
                                              if path is not None and Path(path).exists()})
    rows = triage_files(args.model, cases, args.finding, parse_organ_names(args.organ_names or []),
                        load_rules(args.rules), args.workers, args.cluster, _say)
    write_text_atomic(args.out, csv_text(rows, QUEUE_COLUMNS))
    print(json.dumps({"queue": str(args.out), "cases": len(rows),
                      "called": sum(row["called"] == "yes" for row in rows)}, indent=2))
    return 0


def _organ_names_option(parser, required: bool) -> None:
    parser.add_argument("--organ-names", nargs="+", required=required, metavar="VALUE=NAME | FILE.json[:KEY]",
                        help="names of the organ label values, e.g. 5=liver 1=spleen, or a JSON file of them "
                             "(FILE.json:KEY for such an object under KEY)")


def register(commands, out_option, run) -> None:
    """Add ``ct-findings`` and ``triage`` to ``medsynth evaluate``."""
    study = commands.add_parser(
        "ct-findings", help="3-D multi-label findings classifier trained on SynthLesion scans: per-finding AUC, "
                            "sensitivity, specificity, locations in anatomy, rule-based reports; saves the model")
    study.add_argument("--healthy", type=Path, required=True,
                       help="CSV image,organ_mask[,case_id] of healthy CTs the training lesions go into")
    study.add_argument("--test-healthy", type=Path,
                       help="CSV of other healthy CTs for the test scans (default: the training CTs, other lesions)")
    study.add_argument("--real-train", type=Path,
                       help="CSV image[,case_id],organ_mask plus a 0/1 column per finding (named as --labels names "
                            "them): real labelled scans mixed into training (organ_mask may be left out with "
                            "--whole-scan)")
    _organ_names_option(study, required=True)
    study.add_argument("--organs", nargs="+", default=["liver", "spleen", "kidney right", "kidney left"],
                       help="organs (by name) that lesions are put in; '_' and ' ' are the same")
    study.add_argument("--sizes", nargs="+", default=["medium", "large"], choices=["tiny", "small", "medium", "large"],
                       help="SynthLesion size classes of the lesions (the largest that fits is used)")
    study.add_argument("--labels", default="type", choices=LABEL_SETS,
                       help="what a finding is: the lesion type ('hypodense lesion'), the type in an organ "
                            "('hypodense lesion (liver)') or also its size class ('hypodense lesion (liver, large)')")
    study.add_argument("--train-count", type=whole_number(6, MAX_ITEMS), default=100, help="synthetic training scans")
    study.add_argument("--test-count", type=whole_number(2, MAX_ITEMS), default=24, help="synthetic test scans")
    study.add_argument("--network", default="small", choices=["small", "densenet121", "resnet18"],
                       help="MONAI 3-D network: small (CPU, learns from the lesion masks) or a GPU-sized one")
    study.add_argument("--input-shape", type=whole_number(8, 1024), nargs=3, default=[64, 96, 96], metavar=("K", "J", "I"),
                       help="the grid volumes are resized to for the network (slices, rows, columns)")
    study.add_argument("--epochs", type=whole_number(1, MAX_STEPS), default=60, help="training epochs")
    study.add_argument("--learning-rate", type=positive_number, default=1e-3, help="AdamW learning rate")
    add_loader_workers_option(study, "scans")
    study.add_argument("--scanner-augment", action="store_true",
                       help="train with augmentation that imitates other scanners (levels, contrast, noise, "
                            "sharpness, field of view). Measured from phantom-trained to real-CT scans it helped "
                            "within the noise (README); try it when your training and test scanners differ, and "
                            "compare")
    study.add_argument("--scan-end-augment", action="store_true",
                       help="train with scans cut short at their top or bottom, away from their lesions, for test "
                            "scans that end within the organs. Measured once it helped on phantoms and not on a "
                            "real CT's crop (README); compare on your scans")
    study.add_argument("--organ-relative", action="store_true",
                       help="read every scan with each organ at the training scans' median HU, so that a lesion "
                            "counts by its contrast against its organ, not by the organ's level (another contrast "
                            "phase or scanner); measured on a proxy in the README")
    study.add_argument("--organs-only-mm", type=non_negative_number, metavar="MM",
                       help="the network reads the --organs only, with this margin in mm: the rest of its box "
                            "(bone, bowel, the body's outline, past the scan's end) reads as the window's lower "
                            "end, so none of it can be learnt or carry the evidence. Measured with 10 on a real "
                            "CT's crop it placed the evidence in the right organ more often and kept the thresholds "
                            "from calling every cropped scan, with AUCs moving both ways (README); try it for scans "
                            "that end within the organs, and compare")
    study.add_argument("--whole-scan", action="store_true",
                       help="the network reads each whole scan instead of a box of one size in mm around the "
                            "--organs (15 mm margin); a longer or wider scan then looks different to it "
                            "(README: CT findings)")
    study.add_argument("--calibrate-on", type=Path, metavar="CSV",
                       help="CSV image,organ_mask[,case_id] of healthy real scans like the ones the model will read "
                            "(scanner, phase, field of view; other patients than the test scans): each finding's "
                            "threshold is chosen on them as given and with synthetic lesions put in them")
    study.add_argument("--calibration-count", type=whole_number(0, MAX_ITEMS), default=24,
                       help="synthetic scans made from the --calibrate-on scans")
    study.add_argument("--seed", type=seed_number, default=0, help="seed of the lesions, split and training")
    study.add_argument("--rules", type=Path, help="report rules (JSON, see report_rules.DEFAULT_RULES)")
    study.add_argument("--model-out", type=Path, help="model folder to write (default OUT/model); training keeps its "
                                                      "state there after every epoch and a killed run resumes it")
    study.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N, mps")
    out_option(study)
    study.set_defaults(protocol_run=_cmd_ct_findings, title="Structured CT findings", run=run)

    calibrate = commands.add_parser(
        "calibrate-findings", help="a copy of a CT findings model with each finding's threshold chosen on your real "
                                   "scans (the scanner, phase and field of view it will read)")
    calibrate.add_argument("--model", type=Path, required=True, help="model folder written by evaluate ct-findings")
    calibrate.add_argument("--healthy", type=Path, metavar="CSV",
                           help="CSV image,organ_mask[,case_id] of healthy real scans: used as given (no finding) "
                                "and with synthetic lesions put in them")
    calibrate.add_argument("--labelled", type=Path, metavar="CSV",
                           help="CSV image[,organ_mask][,case_id] of real scans with one 0/1 column per finding of "
                                "the model")
    calibrate.add_argument("--count", type=whole_number(0, MAX_ITEMS), default=24,
                           help="synthetic scans made from the --healthy scans")
    calibrate.add_argument("--seed", type=seed_number, default=0, help="seed of the synthetic lesions")
    _organ_names_option(calibrate, required=False)
    calibrate.add_argument("--model-out", type=Path, required=True,
                           help="model folder to write: the model with the new thresholds (the input is left as is)")
    calibrate.set_defaults(run=_cmd_calibrate)

    triage = commands.add_parser(
        "triage", help="a reading queue: scans ordered by one finding's score, with location and report line")
    triage.add_argument("--model", type=Path, required=True, help="model folder written by evaluate ct-findings")
    triage.add_argument("--cases", type=Path, required=True,
                        help="CSV image[,organ_mask][,case_id] of the scans to queue (no organ map: coarse regions)")
    triage.add_argument("--finding", required=True, help="the finding that orders the queue, e.g. 'hypodense lesion'")
    _organ_names_option(triage, required=False)
    triage.add_argument("--rules", type=Path, help="report rules (JSON)")
    add_executor_options(triage, "scoring the scans")
    triage.add_argument("--out", type=Path, required=True, help="queue CSV to write: " + ", ".join(QUEUE_COLUMNS))
    triage.set_defaults(run=_cmd_triage)
