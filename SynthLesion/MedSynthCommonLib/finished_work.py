"""The finished parts of a long job, kept so that a killed or cancelled run, started again with
the same inputs and settings, does only what is left (e.g. one training run per arm and seed of
a study).  Each part is one JSON record in the job's folder, named by the job's fingerprint and
the part's name, written whole (``write_bytes_atomic``) and read back as data only (JSON, which
cannot run code).  Records of other inputs or settings carry another fingerprint and are never
reused."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

RECORD_FORMAT = "medsynth-finished-part/1"


def fingerprint(*items) -> str:
    """SHA-256 of ``items`` (JSON-able values: content hashes, settings) in a stable form."""
    return hashlib.sha256(json.dumps(items, sort_keys=True, default=_plain).encode("utf-8")).hexdigest()


def _plain(value):
    """numpy scalars and arrays as Python values (for ``json.dumps``)."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON data")


class FinishedWork:
    """The finished parts of one job in ``folder`` (None: nothing is kept), for the inputs and
    settings that ``job_fingerprint`` stands for."""

    def __init__(self, folder: Path | None, job_fingerprint: str):
        self.folder, self.fingerprint = (None if folder is None else Path(folder)), job_fingerprint

    def _path(self, part: str) -> Path:
        return self.folder / f"{self.fingerprint[:16]}-{re.sub(r'[^A-Za-z0-9]+', '-', part).strip('-')}.json"

    def get(self, part: str) -> dict | None:
        """The record of ``part`` finished earlier with this fingerprint (None: not finished, or
        a record that does not read back whole: the part is done again)."""
        if self.folder is None:
            return None
        try:
            record = json.loads(self._path(part).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(record, dict) or record.get("format") != RECORD_FORMAT or \
                record.get("fingerprint") != self.fingerprint or record.get("part") != part:
            return None
        return record.get("data")

    def keep(self, part: str, data: dict) -> dict:
        """Keep ``part``'s record; returns ``data`` as ``get`` will read it back (tuples as
        lists, numpy values as plain ones, NaN and infinities kept), so that a job gives the
        same result whether its parts were done now or found from an earlier run."""
        text = json.dumps({"format": RECORD_FORMAT, "fingerprint": self.fingerprint, "part": part, "data": data},
                          default=_plain)
        if self.folder is not None:
            from .storage import prepare_folder, write_bytes_atomic

            prepare_folder(self.folder, "folder of finished runs")
            write_bytes_atomic(self._path(part), text.encode("utf-8"))
        return json.loads(text)["data"]

    @staticmethod
    def forget(folder: Path) -> None:
        """Remove the records kept in ``folder`` (any fingerprint), then the folder if nothing
        else is in it: the job they served has written its result."""
        folder = Path(folder)
        if not folder.is_dir():
            return
        for path in folder.glob("*.json"):
            try:
                if json.loads(path.read_text(encoding="utf-8")).get("format") == RECORD_FORMAT:
                    path.unlink()
            except (OSError, ValueError, AttributeError):
                continue  # not a record of ours: left as it is
        try:
            folder.rmdir()
        except OSError:
            pass  # something else is in it
