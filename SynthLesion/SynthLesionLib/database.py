"""``medsynth build-db``: many synthetic variants of many cases, in parallel, resumable.

Every output (case, variant) has a seed derived from the base seed, the case's index and the
variant number, so a resumed or re-ordered run produces the same files.  Each finished output
is written atomically, then appended as one JSON line to ``manifest.jsonl``; on restart, the
outputs already in the manifest (with their files present) are skipped.  A torn last line from
an interrupted run is ignored.
"""

from __future__ import annotations

import csv
import json
import multiprocessing
import os
import sys
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .config import LesionConfig
from .errors import MedSynthInputError

MANIFEST = "manifest.jsonl"


@dataclass(frozen=True)
class Case:
    case_id: str
    image: Path
    organ_mask: Path
    organ_label: int | None
    preset: str | None


@dataclass(frozen=True)
class Job:
    case_index: int
    case: Case
    variant: int
    seed: int
    config: dict
    out_dir: Path

    @property
    def name(self) -> str:
        return f"{self.case.case_id}_v{self.variant:04d}"


def read_cases(path: Path) -> list[Case]:
    """Cases from a CSV with columns ``image, organ_mask`` and optional ``case_id,
    organ_label, preset``; relative paths are relative to the CSV's folder."""
    path = Path(path)
    if not path.exists():
        raise MedSynthInputError(f"Case list not found: {path}")
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or not {"image", "organ_mask"} <= set(rows[0]):
        raise MedSynthInputError(f"{path} needs a header with at least the columns 'image' and 'organ_mask', and one row per case.")
    cases = []
    for number, row in enumerate(rows):
        image = (path.parent / row["image"]).resolve()
        mask = (path.parent / row["organ_mask"]).resolve()
        for file in (image, mask):
            if not file.exists():
                raise MedSynthInputError(f"Row {number + 1} of {path}: file not found: {file}")
        label = row.get("organ_label") or None
        cases.append(Case(row.get("case_id") or f"case{number:04d}", image, mask,
                          int(label) if label is not None else None, row.get("preset") or None))
    ids = [c.case_id for c in cases]
    if len(set(ids)) != len(ids):
        raise MedSynthInputError(f"{path} has repeated case_id values; each case needs its own.")
    return cases


def derive_seed(base_seed: int, case_index: int, variant: int) -> int:
    return int(np.random.SeedSequence([base_seed, case_index, variant]).generate_state(1)[0])


def read_manifest(out_dir: Path) -> dict[str, dict]:
    """Finished outputs by name; lines that do not parse (a torn last write) are skipped."""
    done = {}
    manifest = out_dir / MANIFEST
    if manifest.exists():
        for line in manifest.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if all((out_dir / row[key]).exists() for key in ("image", "label", "record")):
                done[row["name"]] = row
    return done


def _run_job(job: Job) -> dict:
    from .files import synthesize_files

    config = LesionConfig.from_dict(job.config)
    relative = {
        "image": Path("images") / f"{job.name}.nii.gz",
        "label": Path("labels") / f"{job.name}.nii.gz",
        "record": Path("records") / f"{job.name}.json",
    }
    result, _ = synthesize_files(job.case.image, job.case.organ_mask, job.out_dir / relative["image"],
                                 job.out_dir / relative["label"], config, job.seed, job.case.organ_label,
                                 record_path=job.out_dir / relative["record"])
    return {"name": job.name, "case_id": job.case.case_id, "variant": job.variant, "seed": job.seed,
            **{k: str(v) for k, v in relative.items()},
            "lesions": [{"size_class": r.size_class, "volume_ml": r.volume_ml,
                         "equivalent_diameter_mm": r.equivalent_diameter_mm, "centre_ras": r.centre_ras}
                        for r in result.records],
            "finding": result.finding}


def _end_torn_line(path: Path) -> None:
    """Terminate a last line cut short by an interruption, so the next row starts cleanly."""
    if path.exists() and path.stat().st_size > 0:
        with path.open("rb+") as handle:
            handle.seek(-1, os.SEEK_END)
            if handle.read(1) != b"\n":
                handle.write(b"\n")


def _append_line(path: Path, row: dict) -> None:
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(row) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def build_database(cases: list[Case], out_dir: Path, variants: int, base_config: LesionConfig,
                   seed: int = 0, workers: int = 1, progress: bool = True) -> dict:
    """Generate ``variants`` outputs per case into ``out_dir``; returns a summary dict."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if variants < 1:
        raise MedSynthInputError(f"variants must be at least 1, got {variants}.")
    done = read_manifest(out_dir)
    jobs = []
    for index, case in enumerate(cases):
        config = base_config.to_dict() | ({"preset": case.preset} if case.preset else {})
        LesionConfig.from_dict(config).validate()
        for variant in range(variants):
            job = Job(index, case, variant, derive_seed(seed, index, variant), config, out_dir)
            if job.name not in done:
                jobs.append(job)
    total = len(cases) * variants
    bar = _progress(total, len(done), progress)
    failures = []
    manifest = out_dir / MANIFEST
    _end_torn_line(manifest)
    if workers <= 1:
        for job in jobs:
            _finish(job, _safe(job), manifest, failures, bar)
    else:
        # spawn, not fork: forking a multi-threaded process (Slicer, VTK, BLAS) can deadlock
        with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            pending = {pool.submit(_safe, job): job for job in jobs}
            try:
                while pending:
                    finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for future in finished:
                        _finish(pending.pop(future), future.result(), manifest, failures, bar)
            except KeyboardInterrupt:
                pool.shutdown(wait=True, cancel_futures=True)
                raise
    bar.close()
    return {"out_dir": str(out_dir), "total": total, "already_done": len(done),
            "made": len(jobs) - len(failures), "failed": failures, "manifest": str(manifest)}


def _safe(job: Job) -> dict:
    try:
        return _run_job(job)
    except MedSynthInputError as error:
        return {"error": str(error)}


def _finish(job: Job, row: dict, manifest: Path, failures: list, bar) -> None:
    if "error" in row:
        failures.append({"name": job.name, "error": row["error"]})
    else:
        _append_line(manifest, row)
    bar.update(1)


class _PlainProgress:
    """Fallback progress line when tqdm is not installed (e.g. inside Slicer)."""

    def __init__(self, total: int, initial: int, enabled: bool):
        self.total, self.count, self.enabled = total, initial, enabled

    def update(self, n: int) -> None:
        self.count += n
        if self.enabled:
            print(f"\r{self.count}/{self.total} outputs", end="", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.enabled:
            print(file=sys.stderr)


def _progress(total: int, initial: int, enabled: bool):
    try:
        from tqdm import tqdm
    except ImportError:
        return _PlainProgress(total, initial, enabled)
    return tqdm(total=total, initial=initial, disable=not enabled, unit="output", desc="build-db")
