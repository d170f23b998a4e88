"""A command-line fuzzer for ``medsynth``: every command, started from a small valid call and
mutated with hostile values, must end with exit 0, 1 or 2 (or 130/143 when interrupted) and a
plain message; never exit 3 ("internal error"), a traceback, a changed input or a partial file
left behind.

Derandomised (``--seed``), in-process (fast: most runs refuse in milliseconds), each run under
a time limit (a run still working at the limit is interrupted the way Ctrl-C does, which also
exercises the clean-up paths).  The suite runs 2,000 runs (``Testing/test_cli_fuzz.py``); a
longer local run::

    python Testing/cli_fuzz.py --runs 20000 --seed 1 --limit-s 2
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import random
import signal
import struct
import sys
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

NUMBERS = ["0", "-1", "1", "2", "3", "0.5", "-0.5", "nan", "inf", "-inf", "1e309", "1e30", "99999999999999999999",
           "abc", "", " 2", "1_0", "0x10", "4294967296", "-2147483649"]
TEXT = ["", " ", "x", "../x", "a/b", "=HYPERLINK(\"http://x\")", "é", "-", "--", "local:abc", "bogus://x:1", "A" * 300,
        "liver", "5=liver", "hypodense lesion", "real", "synthetic"]
LIMITS = {"--iterations": "3", "--epochs": "1", "--variants": "2", "--count": "3", "--train-count": "6",
          "--test-count": "3", "--per-stratum": "1", "--train-unet": "2", "--train-cases": "1"}


#: commands that train networks: drawn less often (each valid call trains, which takes a second)
HEAVY = {("evaluate", "gan-train-test"), ("evaluate", "augment"), ("evaluate", "generator"), ("evaluate", "privacy"), ("evaluate", "robustness"),
         ("evaluate", "ct-findings"), ("evaluate", "segment-study"), ("translate", "train")}
HEAVY_WEIGHT = 0.2

#: options naming one output file (replacing a file named there is what the user asked for)
OUTPUT_FILE_OPTIONS = {"--out-image", "--out-label", "--record", "--preview", "--out"}


class FuzzTimeout(BaseException):
    """A run reached its time limit (raised from SIGALRM; not an error)."""


def png_bomb(path: Path, width: int, height: int) -> None:
    """A real, decodable grey PNG of width x height zeros (compresses about 1000:1)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    compressor, row = zlib.compressobj(9), b"\0" * (width + 1)
    data = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", data) + chunk(b"IEND", b""))


@dataclass
class Fixtures:
    """Small valid inputs of every kind, and hostile files, made once in ``root/inputs``."""

    root: Path
    files: dict[str, str] = field(default_factory=dict)
    hostile: list[str] = field(default_factory=list)

    @property
    def inputs(self) -> Path:
        return self.root / "inputs"

    def make(self) -> "Fixtures":
        import SimpleITK as sitk

        from MedSynthCommonLib.imageio import write_volume
        from SynthLesionLib import LesionConfig, make_ct_phantom, synthesize_lesions

        folder = self.inputs
        folder.mkdir(parents=True, exist_ok=True)
        phantom = make_ct_phantom(shape=(16, 48, 48), spacing=(4.0, 4.0, 5.0), seed=1)
        f = self.files
        f["ct"] = str(write_volume(folder / "ct.nii.gz", phantom.image, phantom.geometry))
        f["organs"] = str(write_volume(folder / "organs.nii.gz", phantom.organs, phantom.geometry))
        result = synthesize_lesions(phantom.image, phantom.organs == 1, phantom.geometry,
                                    LesionConfig(size_class="small"), 3)
        labels = result.label_map()
        f["lesion_ct"] = str(write_volume(folder / "lesion_ct.nii.gz", result.image, phantom.geometry))
        f["lesion_labels"] = str(write_volume(folder / "lesion_labels.nii.gz", labels, phantom.geometry))
        (folder / "cases.csv").write_text("case_id,image,organ_mask,organ_label\na,ct.nii.gz,organs.nii.gz,1\n")
        f["cases"] = str(folder / "cases.csv")
        (folder / "test.csv").write_text("image,label\nlesion_ct.nii.gz,lesion_labels.nii.gz\n")
        f["test"] = str(folder / "test.csv")
        (folder / "ct_cases.csv").write_text("image,organ_mask,case_id\nct.nii.gz,organs.nii.gz,a\n")
        f["ct_cases"] = str(folder / "ct_cases.csv")
        rng = np.random.default_rng(0)
        for name, shift in (("pngs", 0), ("pngs2", 30)):
            images = folder / name
            images.mkdir(exist_ok=True)
            rows = ["path,label"]
            for n in range(8):
                pixels = (rng.uniform(0, 150, (24, 24)) + shift + 60 * (n % 2)).astype(np.uint8)
                sitk.WriteImage(sitk.GetImageFromArray(pixels), str(images / f"i{n}.png"))
                rows.append(f"i{n}.png,{'ab'[n % 2]}")
            (images / "labels.csv").write_text("\n".join(rows) + "\n")
            f[name] = str(images)
        f["png"] = str(folder / "pngs" / "i0.png")
        f["png2"] = str(folder / "pngs2" / "i1.png")
        f["preset"] = str(folder / "preset.json")
        from SynthLesionLib.presets import PRESETS

        (folder / "preset.json").write_text(json.dumps(PRESETS["ct-liver"].to_dict()))
        self._models()
        self._hostile()
        return self

    def _models(self) -> None:
        from MedSynthCommonLib.cli import main

        quiet = contextlib.redirect_stdout(io.StringIO()), contextlib.nullcontext()
        f, folder = self.files, self.inputs
        with quiet[0], quiet[1]:
            for model, key in (("stargan", "stargan"), ("stylegan", "stylegan"), ("fastgan", "fastgan")):
                code = main(["translate", "train", "--model", model, "--data", f["pngs"], "--image-size", "16",
                             "--features", "4", "--batch-size", "2", "--iterations", "2", "--device", "cpu",
                             "--out", str(folder / key)])
                assert code == 0, model
                f[key] = str(folder / key)
            code = main(["lesion", "--image", f["ct"], "--organ-mask", f["organs"], "--organ-label", "1",
                         "--out-image", str(folder / "made.nii.gz"), "--out-label", str(folder / "made_label.nii.gz"),
                         "--record", str(folder / "record.json")])
            assert code == 0
            f["record"] = str(folder / "record.json")
            code = main(["evaluate", "ct-findings", "--healthy", f["ct_cases"], "--organ-names", "1=liver",
                         "--organs", "liver", "--train-count", "6", "--test-count", "3", "--epochs", "1",
                         "--input-shape", "8", "16", "16", "--sizes", "small", "--out", str(folder / "findings")])
            assert code == 0
            f["findings_model"] = str(folder / "findings" / "model")
            code = main(["evaluate", "reader-study", "create", "--study", str(folder / "study"), "--real", f["ct"],
                         "--synthetic", f["lesion_ct"]])
            assert code == 0
            (folder / "study" / "answers.csv").write_text(
                "reader,case,answer,confidence,seconds\nr1,1,real,3,2.0\nr1,2,synthetic,4,1.0\n")
            f["study"] = str(folder / "study")

    def _hostile(self) -> None:
        """Files that must be refused with a plain message."""
        import SimpleITK as sitk

        folder = self.inputs / "hostile"
        folder.mkdir(exist_ok=True)
        ct = Path(self.files["ct"]).read_bytes()
        made = {
            "truncated.nii.gz": ct[: len(ct) // 2], "empty.nii.gz": b"", "text.nii.gz": b"not an image\n",
            "junk.png": b"\x89PNG junk", "deep.json": b"[" * 50000 + b"]" * 50000,
            "digits.json": b'{"seed": ' + b"9" * 5000 + b"}", "nan.json": b'{"seed": NaN}',
            "answers.csv": b"reader,case,answer,confidence,seconds\n=HYPERLINK(1),99,maybe,NaN,-1\n",
            "dup.csv": b"image,image,organ_mask\nct.nii.gz,ct.nii.gz,organs.nii.gz\n",
            "evil.pt2": b"PK\x03\x04 not really", "bom.csv": "\ufeffimage,organ_mask\n".encode(),
        }
        for name, data in made.items():
            (folder / name).write_bytes(data)
        values = np.ones((4, 5, 6), np.float32)
        values[1, 2, 3] = np.nan
        sitk.WriteImage(sitk.GetImageFromArray(values), str(folder / "nan.nii.gz"))
        sitk.WriteImage(sitk.GetImageFromArray(np.zeros((2, 3, 4, 5), np.int16)), str(folder / "four_d.nii.gz"))
        png_bomb(folder / "bomb.png", 20000, 14000)
        (folder / "a_folder").mkdir(exist_ok=True)
        (folder / "a_folder" / "keep.txt").write_text("someone's notes")  # a folder of someone else's files
        fifo = folder / "fifo.nii.gz"
        if hasattr(os, "mkfifo") and not fifo.exists():
            os.mkfifo(fifo)
        bad_name = os.path.join(os.fsencode(folder), b"bad\xff.nii.gz")
        with open(bad_name, "wb") as handle:
            handle.write(ct)
        self.hostile = [str(p) for p in sorted(folder.iterdir())] + [os.fsdecode(bad_name), str(folder / "missing.nii.gz"),
                                                                   "/dev/null", "/dev/full", str(folder / ("L" * 300))]

    def digest(self) -> dict[str, str]:
        """SHA-256 of every input fixture file (none may change)."""
        return {os.fsdecode(path): hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(self.inputs.rglob("*"))
                if path.is_file() and not path.name.startswith(".medsynth")}


def base_calls(f: dict, out: Path) -> dict[tuple[str, ...], list[str]]:
    """A small valid call of every command (outputs under ``out``)."""
    o = str(out)
    return {
        ("lesion",): ["--image", f["ct"], "--organ-mask", f["organs"], "--organ-label", "1", "--size", "small",
                      "--out-image", f"{o}/img.nii.gz", "--out-label", f"{o}/lab.nii.gz", "--record", f"{o}/rec.json"],
        ("lesion-fit",): ["--image", f["lesion_ct"], "--label", f["lesion_labels"], "--organ-label", "1",
                          "--lesion-label", "2", "--out", f"{o}/preset.json"],
        ("build-db",): ["--cases", f["cases"], "--out", f"{o}/db", "--variants", "1", "--size", "tiny", "--quiet"],
        ("translate", "train"): ["--model", "stargan", "--data", f["pngs"], "--image-size", "16", "--features", "4",
                                 "--batch-size", "2", "--iterations", "1", "--device", "cpu", "--out", f"{o}/model"],
        ("translate", "apply"): ["--model-dir", f["stargan"], "--image", f["png"], "--target-domain", "b",
                                 "--device", "cpu", "--out", f"{o}/x.png"],
        ("translate", "sample"): ["--model-dir", f["stylegan"], "--count", "2", "--device", "cpu", "--out", f"{o}/s"],
        ("evaluate", "images"): ["--real", f["ct"], f["lesion_ct"], "--synthetic", f["lesion_ct"], f["ct"],
                                 "--out", f"{o}/r"],
        ("evaluate", "segmentation"): ["--reference", f["lesion_labels"], "--prediction", f["lesion_labels"],
                                       "--out", f"{o}/r"],
        ("evaluate", "privacy"): ["--train", f["pngs"], "--synthetic", f["pngs2"], "--image-size", "16",
                                  "--no-radiomics", "--out", f"{o}/r"],
        ("evaluate", "gan-train-test"): ["--real", f["pngs"], "--synthetic", f["pngs2"], "--image-size", "16",
                                         "--epochs", "1", "--seeds", "0", "--device", "cpu", "--out", f"{o}/r"],
        ("evaluate", "generator"): ["--model-dir", f["fastgan"], "--real", f["pngs"], "--image-size", "16",
                                    "--samples-per-class", "3", "--epochs", "1", "--device", "cpu", "--out", f"{o}/r"],
        ("evaluate", "augment"): ["--real", f["pngs"], "--synthetic", f["pngs2"], "--image-size", "16",
                                  "--epochs", "1", "--seeds", "0", "--device", "cpu", "--out", f"{o}/r"],
        ("evaluate", "segment-study"): ["--healthy", f["cases"], "--test", f["test"], "--arms", "on-the-fly",
                                        "--iterations", "2", "--seeds", "0", "--out", f"{o}/r"],
        ("evaluate", "robustness"): ["--cases", f["cases"], "--train-unet", "2", "--train-cases", "1",
                                     "--per-stratum", "1", "--sizes", "small", "--out", f"{o}/r"],
        ("evaluate", "reader-study", "create"): ["--study", f"{o}/study", "--real", f["ct"], "--synthetic",
                                                 f["lesion_ct"]],
        ("evaluate", "reader-study", "results"): ["--study", f["study"], "--out", f"{o}/r"],
        ("evaluate", "ct-findings"): ["--healthy", f["ct_cases"], "--organ-names", "1=liver", "--organs", "liver",
                                      "--train-count", "6", "--test-count", "3", "--epochs", "1", "--input-shape",
                                      "8", "16", "16", "--sizes", "small", "--out", f"{o}/r"],
        ("evaluate", "calibrate-findings"): ["--model", f["findings_model"], "--healthy", f["ct_cases"],
                                             "--organ-names", "1=liver", "--count", "2", "--model-out", f"{o}/cal"],
        ("evaluate", "triage"): ["--model", f["findings_model"], "--cases", f["ct_cases"], "--finding",
                                 "hypodense lesion", "--organ-names", "1=liver", "--out", f"{o}/queue.csv"],
    }


def _options(parser) -> dict[str, argparse.Action]:
    """The options of one (sub)command by their first option string."""
    return {a.option_strings[-1]: a for a in parser._actions if a.option_strings and "-h" not in a.option_strings}


def _subparser(parser, words: tuple[str, ...]):
    for word in words:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[word]
    return parser


def _value(action: argparse.Action, rng: random.Random, fixtures: Fixtures, out: Path) -> list[str]:
    """Hostile value(s) for ``action``, by its type."""
    if action.nargs == 0:
        return []
    kind = getattr(action.type, "__name__", str(action.type))
    if action.choices and rng.random() < 0.5:
        pool = [str(c) for c in action.choices] + ["", "x"]
    elif kind == "Path" or action.type is Path or "PATH" in (action.metavar or "") or action.dest in (
            "out", "model_dir", "study", "cases", "data", "image", "real", "synthetic"):
        pool = fixtures.hostile + list(fixtures.files.values()) + [str(out), str(out / "x.NII.GZ"), str(out / "o.dcm"),
                                                                   str(out / ("n" * 250 + ".nii.gz")), "."]
    elif "number" in kind or kind in ("float", "int", "fraction", "finite_number", "parse"):
        pool = NUMBERS
    else:
        pool = TEXT + NUMBERS[:6]
    count = 3 if action.nargs == 3 else 2 if action.nargs == 2 else (rng.randint(1, 2) if action.nargs in ("+", "*") else 1)
    return [rng.choice(pool) for _ in range(count)]


def mutated_call(words: tuple[str, ...], base: list[str], parser, rng: random.Random, fixtures: Fixtures,
                 out: Path) -> list[str]:
    """``base`` with 0-3 mutations: an option's value replaced, an option dropped, an option added,
    an option repeated.  Options that decide how much work a run does keep small values."""
    options = _options(_subparser(parser, words))
    call = list(base)
    for _ in range(rng.choice([0, 1, 1, 1, 2, 2, 3])):
        move = rng.random()
        flags = [i for i, part in enumerate(call) if part.startswith("--") and part in options]
        if move < 0.45 and flags:  # replace a value
            i = rng.choice(flags)
            action = options[call[i]]
            end = i + 1
            while end < len(call) and not (call[end].startswith("--") and call[end] in options):
                end += 1
            if call[i] in LIMITS and rng.random() < 0.7:
                continue
            call[i + 1:end] = _value(action, rng, fixtures, out)
        elif move < 0.6 and flags:  # drop an option
            i = rng.choice(flags)
            end = i + 1
            while end < len(call) and not (call[end].startswith("--") and call[end] in options):
                end += 1
            del call[i:end]
        elif move < 0.9:  # add an option
            name = rng.choice(sorted(options))
            if name in ("--cluster", "--workers") and rng.random() < 0.8:
                continue  # starting clusters and pools is slow: tested elsewhere
            value = [LIMITS[name]] if name in LIMITS and rng.random() < 0.7 else _value(options[name], rng, fixtures, out)
            call += [name, *value]
        elif flags:  # repeat an option
            i = rng.choice(flags)
            call += call[i:i + 2]
    return call


def _confirm(arguments: list[str], out: Path, limit_s: float) -> str | None:
    """Run ``arguments`` again in a fresh process (outputs removed first); what it shows when the
    failure repeats (exit 3, a traceback, partial files), else None."""
    import shutil
    import subprocess

    from MedSynthCommonLib.storage import PARTIAL_PREFIX

    shutil.rmtree(out, ignore_errors=True)
    try:
        done = subprocess.run([sys.executable, "-m", "MedSynthCommonLib.cli", *arguments], capture_output=True,
                              timeout=max(60.0, 20 * limit_s))
    except subprocess.TimeoutExpired:
        return None
    partials = list(out.rglob(f"{PARTIAL_PREFIX}*")) if out.exists() else []
    stderr = done.stderr.decode("utf-8", "replace")
    if done.returncode not in (0, 1, 2) or "Traceback" in stderr or partials:
        return f"exit {done.returncode}: {stderr[-400:]}"
    return None


def _alarm(signum, frame):
    raise FuzzTimeout()


def _unraisable_hook(previous):
    """A ``sys.unraisablehook`` for the fuzzer's runs: an alarm that landed in a ``__del__`` or a
    weakref callback (reported as unraisable) is the fuzzer's own and is dropped; anything else
    goes to ``previous`` (pytest's, under pytest) with the alarm held back meanwhile, so that an
    alarm never lands inside that hook (pytest then fails the test with "Failed to process
    unraisable exception", whatever the command did)."""
    def hook(unraisable):
        if isinstance(unraisable.exc_value, FuzzTimeout):
            return
        held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
        try:
            previous(unraisable)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, held)
    return hook


@dataclass
class Outcome:
    runs: int = 0
    codes: dict = field(default_factory=dict)
    timeouts: int = 0
    failures: list = field(default_factory=list)
    seconds: float = 0.0
    seconds_by_command: dict = field(default_factory=dict)
    unconfirmed: int = 0  # failures a fresh process did not repeat (a library left half-way by an alarm)


def fuzz(root: Path, runs: int, seed: int = 0, limit_s: float = 1.0, commands: list[tuple[str, ...]] | None = None,
         fixtures: Fixtures | None = None, budget_s: float | None = None) -> Outcome:
    """``runs`` mutated calls; returns what happened (``failures`` lists every exit 3, exception,
    changed input or partial file left behind)."""
    from MedSynthCommonLib.cli import build_parser, main
    from MedSynthCommonLib.storage import PARTIAL_PREFIX

    fixtures = fixtures or Fixtures(Path(root)).make()
    parser = build_parser()
    rng = random.Random(seed)
    outcome, started = Outcome(), time.monotonic()
    before = fixtures.digest()
    inputs = set(before)  # the fixtures as made; files runs add later are outputs
    previous = signal.signal(signal.SIGALRM, _alarm)
    previous_hook, sys.unraisablehook = sys.unraisablehook, _unraisable_hook(sys.unraisablehook)
    try:
        for run in range(runs):
            if budget_s is not None and time.monotonic() - started > budget_s:
                break
            out = Path(root) / "runs" / f"{run:05d}"
            calls = base_calls(fixtures.files, out)
            choices = commands or sorted(calls)
            words = rng.choices(choices, [HEAVY_WEIGHT if c in HEAVY else 1.0 for c in choices])[0]
            call = mutated_call(words, calls[words], parser, rng, fixtures, out)
            arguments = [*words, *call]
            with open(Path(root) / "last_call.json", "w") as handle:  # what was running if the fuzzer dies
                json.dump(arguments, handle)
            stderr = io.StringIO()
            timed_out = False
            run_started = time.monotonic()
            signal.setitimer(signal.ITIMER_REAL, limit_s, 0.25)  # again and again: one may land where it is ignored (a __del__)
            try:
                with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(stderr):
                    try:
                        code = main(arguments)
                    except SystemExit as stop:
                        code = stop.code if isinstance(stop.code, int) else 2
            except FuzzTimeout:
                timed_out, code = True, "limit"
            except BaseException as error:  # anything main() let through is a failure
                code = f"{type(error).__name__}: {error}"[:300]
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            outcome.runs += 1
            key = " ".join(words)
            outcome.seconds_by_command[key] = round(outcome.seconds_by_command.get(key, 0) + time.monotonic() - run_started, 2)
            outcome.timeouts += timed_out
            outcome.codes[str(code)] = outcome.codes.get(str(code), 0) + 1
            partials = [str(p) for p in out.rglob(f"{PARTIAL_PREFIX}*")] if out.exists() and not timed_out else []
            text = stderr.getvalue()
            traceback = "Traceback" in text and "FuzzTimeout" not in text  # (the fuzzer's own alarm, ignored)
            if code not in (0, 1, 2, 130, 143, "limit") or traceback or partials:
                # a run after an interrupted one may meet a library left half-way (the fuzzer's alarm can land
                # anywhere; a user's Ctrl-C ends the process): only what a fresh process repeats is a failure
                confirmed = _confirm(arguments, out, limit_s)
                if confirmed is not None:
                    outcome.failures.append({"run": run, "arguments": arguments, "code": code, "partials": partials,
                                             "stderr": text[-600:], "fresh process": confirmed})
                else:
                    outcome.unconfirmed += 1
            after = fixtures.digest()
            named = {arguments[i + 1] for i, part in enumerate(arguments[:-1]) if part in OUTPUT_FILE_OPTIONS}
            # a new file costs nothing (nor does one an earlier run made); an input changed or gone may be a loss
            changed = sorted(k for k in before if k in inputs and before[k] != after.get(k) and k not in named)
            if changed:  # a file the user named as an output may be replaced; nothing else
                outcome.failures.append({"run": run, "arguments": arguments, "code": "an input changed",
                                         "files": changed[:5]})
            before = after
    finally:
        signal.signal(signal.SIGALRM, previous)
        sys.unraisablehook = previous_hook
    outcome.seconds = round(time.monotonic() - started, 1)
    return outcome


def main(argv: list[str] | None = None) -> int:
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit-s", type=float, default=1.0, help="time limit of one run")
    parser.add_argument("--root", type=Path, help="working folder (default: a temporary one)")
    args = parser.parse_args(argv)
    root = args.root or Path(tempfile.mkdtemp(prefix="medsynth-fuzz-"))
    outcome = fuzz(root, args.runs, args.seed, args.limit_s)
    print(json.dumps({"runs": outcome.runs, "seconds": outcome.seconds, "exit codes": outcome.codes,
                      "time limit reached": outcome.timeouts, "not repeated by a fresh process": outcome.unconfirmed,
                      "seconds by command": outcome.seconds_by_command,
                      "failures": outcome.failures[:20],
                      "failure count": len(outcome.failures)}, indent=2))
    return 1 if outcome.failures else 0


if __name__ == "__main__":
    sys.exit(main())
