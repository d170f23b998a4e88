"""``medsynth build-db``: many synthetic variants of many cases, in parallel, resumable.

Storage discipline (one mechanism for every way a run can end):

- every output (case, variant) has a seed derived from the base seed, the case id and the
  variant, so a resumed, re-ordered or parallel run produces the same files;
- a lock keeps a second run out of the folder while one is writing;
- each output's image, label map and record are written whole and checked, the record last;
  then the parent process alone appends one JSON line to ``manifest.jsonl``: that line is the
  commit, and it names each file's size and SHA-256;
- on start, partial files of killed runs are swept and the manifest is rewritten without torn,
  repeated or dangling lines; outputs made with other settings (seed, options, inputs) or by
  another engine (``records.engine_fingerprint``: an update that changed the cases a seed
  makes) are refused unless ``force`` discards them, so that a data set is one engine's;
- an output whose files changed after they were made (a label corrected by hand) is reported
  and kept, never made again nor discarded; a file in the way of a new output is replaced only
  when it holds the very bytes this run makes (an interrupted run's own file), else it is kept
  and that output is reported as not made;
- workers end with the parent, whatever ends it; on a Dask cluster a task whose worker dies is
  run again by Dask and, if it keeps failing, reported as not made (the next run makes it).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from MedSynthCommonLib.errors import MedSynthInputError, MedSynthOutputError
from MedSynthCommonLib.progress import progress_bar
from MedSynthCommonLib.storage import FolderLock, claim_folder, sweep_partials, write_text_atomic
from MedSynthCommonLib.paths import safe_file_stem
from MedSynthCommonLib.tables import parse_int, read_table, table_file

from .config import LesionConfig
from .presets import get_preset

MANIFEST = "manifest.jsonl"
FOLDERS = ("images", "labels", "records")


@dataclass(frozen=True)
class Case:
    case_id: str
    image: Path
    organ_mask: Path
    organ_label: int | None
    preset: str | None


@dataclass(frozen=True)
class Job:
    case: Case
    variant: int
    seed: int
    config: dict
    out_dir: Path
    settings: str  # hash of the options and inputs that decide this output's content
    engine: str = ""  # ``engine_fingerprint()`` of the engine that makes it (the rest of what decides it)

    @property
    def name(self) -> str:
        return f"{self.case.case_id}_v{self.variant:04d}"

    def relative(self) -> dict[str, Path]:
        return {"image": Path("images") / f"{self.name}.nii.gz", "label": Path("labels") / f"{self.name}.nii.gz",
                "record": Path("records") / f"{self.name}.json"}


def is_database_folder(folder: Path) -> bool:
    """A folder build-db made (its manifest), or one holding only what build-db writes."""
    return (Path(folder) / MANIFEST).is_file() or all(
        entry.name in FOLDERS or entry.name.startswith(".medsynth") for entry in Path(folder).iterdir())


def read_cases(path: Path) -> list[Case]:
    """Cases from a CSV with columns ``image, organ_mask`` and optional ``case_id,
    organ_label, preset``; relative paths are relative to the CSV's folder."""
    path = Path(path)
    cases = []
    for number, row in read_table(path, ("image", "organ_mask"), "case list"):
        files = [table_file(path, row, column, number) for column in ("image", "organ_mask")]
        case_id = row.get("case_id") or f"case{len(cases):04d}"
        safe_file_stem(case_id, f"Line {number} of {path}: case_id")
        preset = row.get("preset") or None
        if preset is not None:
            try:
                get_preset(preset)
            except MedSynthInputError as error:
                raise MedSynthInputError(f"Line {number} of {path}: {error}") from None
        cases.append(Case(case_id, files[0], files[1], parse_int(row.get("organ_label", ""), "organ_label", number, path),
                          preset))
    folded = [c.case_id.casefold() for c in cases]
    repeated = sorted({c.case_id for c in cases if folded.count(c.case_id.casefold()) > 1})
    if repeated:
        raise MedSynthInputError(f"{path} repeats the case_id(s) {', '.join(repeated)} (ids that differ only in "
                                 "upper/lower case name the same file on Windows and macOS); give each case its own.")
    return cases


def derive_seed(base_seed: int, case_id: str, variant: int) -> int:
    """The seed of one output, from the run's seed, the case id and the variant number."""
    words = np.frombuffer(hashlib.sha256(case_id.encode("utf-8")).digest()[:16], dtype="<u4").tolist()
    return int(np.random.SeedSequence([base_seed, *words, variant]).generate_state(1)[0])


def _settings_hash(case: Case, config: dict, seed: int) -> str:
    described = {"config": config, "seed": seed, "organ_label": case.organ_label,
                 "image": str(case.image), "organ_mask": str(case.organ_mask)}
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()[:16]


def read_manifest(out_dir: Path) -> tuple[dict[str, dict], bool, dict[str, str]]:
    """(finished outputs by name whose files are all there as made; whether the manifest needs
    rewriting (torn, repeated or dangling lines); outputs changed since they were made, by name,
    with the first changed file's key).  The last line for a name wins.  A changed output (a
    label corrected by hand) is kept as it is: never made again, never discarded."""
    manifest = Path(out_dir) / MANIFEST
    if not manifest.exists():
        return {}, False, {}
    rows, lines, untidy = {}, 0, False
    for line in manifest.read_bytes().decode("utf-8", "replace").splitlines():
        lines += 1
        try:
            row = json.loads(line)
            name = row["name"]
            hash(name)
        except (ValueError, KeyError, TypeError, RecursionError):  # torn, foreign or hostile lines are dropped
            untidy = True
            continue
        untidy |= name in rows
        rows[name] = row
    done, changed = {}, {}
    for name, row in rows.items():
        state = _file_states(Path(out_dir), row)
        if "changed" in state.values():
            changed[name] = next(key for key, value in state.items() if value == "changed")
            done[name] = row  # kept in the manifest: its line still says how it was made
        elif state and all(value == "as made" for value in state.values()):
            done[name] = row
    return done, untidy or len(done) != len(rows) or lines != len(rows), changed


def _file_states(out_dir: Path, row: dict) -> dict[str, str]:
    """{file key: "as made" | "missing" | "changed"} of a manifest row's files ({} for a malformed
    row).  Size and modification time as recorded mean unchanged (as git decides); otherwise the
    SHA-256 decides, where the row has one."""
    from MedSynthCommonLib.storage import content_sha256

    sizes, times, hashes = (row.get(key) if isinstance(row.get(key), dict) else {} for key in
                            ("bytes", "mtime_ns", "sha256"))
    states = {}
    for key in ("image", "label", "record"):
        if not isinstance(row.get(key), str):
            return {}
        path = out_dir / row[key]
        if not path.is_file():
            states[key] = "missing"
            continue
        stat = path.stat()
        if key in sizes and stat.st_size != sizes[key]:
            states[key] = "changed"
        elif key in times and stat.st_mtime_ns == times[key]:
            states[key] = "as made"
        elif key in hashes:
            states[key] = "as made" if content_sha256(path) == hashes[key] else "changed"
        else:
            states[key] = "as made"  # a row of an older version: its size only
    return states


def _rewrite_manifest(out_dir: Path, rows: dict[str, dict]) -> None:
    write_text_atomic(out_dir / MANIFEST, "".join(json.dumps(row) + "\n" for row in rows.values()))


def _append_line(path: Path, row: dict) -> None:
    try:
        with path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(row) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as error:
        from MedSynthCommonLib.storage import explain_os_error

        raise MedSynthOutputError(f"Could not add {row['name']} to {path}: {explain_os_error(error, path)}.") from None


def _run_job(job: Job) -> dict:
    from .files import synthesize_files

    relative = job.relative()
    paths = {key: job.out_dir / rel for key, rel in relative.items()}
    # the label is written beside the image; synthesize_files commits image, label, record in that order
    # a file already there with other bytes (a hand-corrected label, someone else's file behind a
    # symlinked folder) is kept and this output refused; an interrupted run's own files are
    # byte-identical (seeded) and are replaced
    result, _ = synthesize_files(job.case.image, job.case.organ_mask, paths["image"], paths["label"],
                                 LesionConfig.from_dict(job.config), job.seed, job.case.organ_label,
                                 record_path=paths["record"], keep_different=True)
    from MedSynthCommonLib.storage import content_sha256

    outputs = result.case_record["outputs"]
    stats = {key: paths[key].stat() for key in paths}
    return {"name": job.name, "case_id": job.case.case_id, "variant": job.variant, "seed": job.seed,
            "settings": job.settings, "engine": job.engine, **{k: str(v) for k, v in relative.items()},
            "bytes": {key: stats[key].st_size for key in paths},
            "mtime_ns": {key: stats[key].st_mtime_ns for key in paths},
            "sha256": {**{key: outputs[key]["sha256"] for key in ("image", "label")},
                       "record": content_sha256(paths["record"])},
            "lesions": [{"size_class": r.size_class, "volume_ml": r.volume_ml,
                         "equivalent_diameter_mm": r.equivalent_diameter_mm, "centre_ras": r.centre_ras}
                        for r in result.records],
            "finding": result.finding}


def _safe(job: Job) -> dict:
    """Run one job; a problem with this case's input is reported as a failure of this output,
    a problem writing (full disk...) ends the run."""
    try:
        return _run_job(job)
    except MedSynthOutputError:
        raise
    except MedSynthInputError as error:
        return {"error": str(error)}


def plan_jobs(cases: list[Case], out_dir: Path, variants: int, base_config: LesionConfig, seed: int) -> list[Job]:
    from .records import engine_fingerprint

    engine = engine_fingerprint()
    jobs = []
    for case in cases:
        config = base_config.to_dict() | ({"preset": case.preset} if case.preset else {})
        LesionConfig.from_dict(config).validate()
        for variant in range(variants):
            jobs.append(Job(case, variant, derive_seed(seed, case.case_id, variant), config, out_dir,
                            _settings_hash(case, config, seed), engine))
    return jobs


def _discard(out_dir: Path, rows: list[dict]) -> None:
    for row in rows:
        for key in ("record", "image", "label"):  # record first: a set without its record is visibly incomplete
            if isinstance(row.get(key), str):
                with contextlib.suppress(OSError):
                    (out_dir / row[key]).unlink()


def build_database(cases: list[Case], out_dir: Path, variants: int, base_config: LesionConfig,
                   seed: int = 0, workers: int = 1, progress: bool = True, force: bool = False,
                   cluster: str | None = None, on_output=None) -> dict:
    """Generate ``variants`` outputs per case into ``out_dir``; returns a summary dict.

    ``force`` discards outputs that an earlier run made there with other settings (otherwise
    they are refused, so that old and new outputs never mix).  ``cluster``: run on Dask
    (``local[:N]`` or a scheduler address; ``out_dir`` must then be on storage every worker
    sees) instead of ``workers`` processes on this machine.  ``on_output(row)`` is called after
    each output is committed to the manifest (e.g. to time throughput)."""
    if variants < 1:
        raise MedSynthInputError(f"variants must be at least 1, got {variants}.")
    if workers < 1:
        raise MedSynthInputError(f"workers must be at least 1, got {workers}.")
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise MedSynthInputError(f"--out {out_dir} is a file; give a folder for the database.")
    claim_folder(out_dir, "database folder", is_database_folder, create=False)
    jobs = plan_jobs(cases, out_dir, variants, base_config, seed)
    with FolderLock(out_dir):
        for folder in FOLDERS:  # the lock is ours: any partial file here is a killed run's
            sweep_partials(out_dir / folder, every=True)
        done, untidy, changed = read_manifest(out_dir)
        wanted = {job.name: job for job in jobs}
        # outputs of other settings, or of another engine (rows from before engines were recorded
        # name none: not known, kept), are stale
        mine = [name for name in done if name in wanted and name not in changed]
        other_engine = [name for name in mine if done[name].get("engine", wanted[name].engine) != wanted[name].engine]
        stale = set(other_engine) | {name for name in mine if done[name].get("settings") != wanted[name].settings}
        if stale and not force:
            if other_engine:
                raise MedSynthInputError(
                    f"{out_dir} already holds {len(other_engine)} output(s) made by an engine that makes other cases "
                    f"for the same seed and options (e.g. {other_engine[0]}: MedSynth or its numerical libraries "
                    "changed since). Choose another --out to keep each engine's outputs apart, or add --force to "
                    "discard those outputs and make them again.")
            raise MedSynthInputError(
                f"{out_dir} already holds {len(stale)} output(s) made with other settings (seed, lesion options, "
                f"organ label or input files; e.g. {sorted(stale)[0]}). Choose another --out, or add --force to "
                "discard those outputs and make them again.")
        if stale:
            _discard(out_dir, [done[name] for name in stale])
            done = {name: row for name, row in done.items() if name not in stale}
            untidy = True
        if untidy:
            _rewrite_manifest(out_dir, done)
        todo = [job for job in jobs if job.name not in done]
        kept = [{"name": name, "file": done[name][key]} for name, key in sorted(changed.items()) if name in wanted]
        if kept and progress:
            import sys

            print(f"build-db: {len(kept)} output(s) changed since they were made (e.g. {kept[0]['file']}) are kept as "
                  "they are and not made again; move the changed files away to have them made again.",
                  file=sys.stderr, flush=True)
        failures = _run(todo, out_dir / MANIFEST, workers, progress, len(jobs), len(jobs) - len(todo), cluster, on_output)
    return {"out_dir": str(out_dir), "total": len(jobs), "already_done": len(jobs) - len(todo),
            "made": len(todo) - len(failures), "failed": failures, "changed_kept": kept,
            "manifest": str(out_dir / MANIFEST)}


def _run(jobs: list[Job], manifest: Path, workers: int, progress: bool, total: int, initial: int,
         cluster: str | None = None, on_output=None) -> list[dict]:
    """Run the jobs on the chosen executor; this process alone appends the manifest."""
    from MedSynthCommonLib.executors import TaskLost, executor

    failures: list[dict] = []
    tasks = _tasks(jobs, workers)
    with progress_bar(total, "build-db", "output", initial, progress) as bar, \
            executor(1 if len(tasks) <= 1 and not cluster else workers, cluster) as runner:
        for task, rows in runner.run(_safe_all, tasks):
            if isinstance(rows, TaskLost):
                rows = [{"error": f"not made: {rows}; run again to retry"}] * len(task)
            for job, row in zip(task, rows):
                if "error" in row:
                    failures.append({"name": job.name, "error": row["error"]})
                else:
                    _append_line(manifest, row)
                    if on_output is not None:
                        on_output(row)
                bar.update(1)
    return failures


#: outputs of one case made by one task at most: the worker reads the case once for them
TASK_VARIANTS = 4


def _tasks(jobs: list[Job], workers: int) -> list[tuple[Job, ...]]:
    """Jobs grouped by case into tasks of up to ``TASK_VARIANTS`` outputs (smaller when there are
    fewer jobs than workers could share), so that a case is read once per task, not per output."""
    by_case: dict[str, list[Job]] = {}
    for job in sorted(jobs, key=lambda job: (job.case.case_id, job.variant)):
        by_case.setdefault(job.case.case_id, []).append(job)
    size = max(1, min(TASK_VARIANTS, -(-len(jobs) // max(2 * workers, 1))))
    return [tuple(group[i:i + size]) for group in by_case.values() for i in range(0, len(group), size)]


def _safe_all(task: tuple[Job, ...]) -> list[dict]:
    return [_safe(job) for job in task]
