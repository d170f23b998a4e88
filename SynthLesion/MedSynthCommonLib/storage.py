"""Outputs that are whole or absent, and output paths that never collide or escape.

Every file MedSynth writes goes through ``atomic_write``: the bytes go to a partial file beside
the destination (created with the user's umask), the library's own complaints on stderr are
caught, the result is checked by a caller-given ``verify``, flushed to disk (fsync), and only
then renamed into place.  Partial files carry the writer's process id, so the ones left by a
killed run are recognised and swept on the next write into that folder.

``claim_folder`` refuses output folders that hold someone else's files or overlap the inputs;
``FolderLock`` keeps two runs out of one output folder.  (Checks of the paths themselves: ``paths``.)
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import shutil
import stat
import sys
import tempfile
from pathlib import Path
from typing import Callable

from .errors import MedSynthError, MedSynthInputError, MedSynthOutputError
from .paths import NAME_MAX, check_utf8_name, is_inside

PARTIAL_PREFIX = ".medsynth-partial-"
_PARTIAL = re.compile(rf"^{re.escape(PARTIAL_PREFIX)}(\d+)-[0-9a-f]+-(.+)$")
#: messages that libraries (ITK's NIfTI writer, libpng, zlib) print instead of raising
_STDERR_FAILURE = re.compile(r"\berror\b|wrote only|failed|cannot|could not|no space", re.IGNORECASE)


def _partial_tail(name: str) -> str:
    """The end of a partial file's name for the destination ``name``: the name with its
    extension in lower case (ITK picks its writer by a lower-case extension: ``X.NII.GZ`` is
    written as ``...x.nii.gz`` and renamed), shortened to a hash of the name where the prefix
    would push it over ``NAME_MAX``."""
    import hashlib

    parts = name.split(".")
    count = 2 if len(parts) > 2 and parts[-1].lower() == "gz" else 1 if len(parts) > 1 else 0
    stem, extension = ".".join(parts[:len(parts) - count]), "".join("." + e.lower() for e in parts[len(parts) - count:])
    room = NAME_MAX - len(f"{PARTIAL_PREFIX}{2**32}-{'0' * 8}-".encode())
    if len((stem + extension).encode()) > room:
        stem = hashlib.sha256(name.encode("utf-8", "surrogateescape")).hexdigest()[:24]
    return stem + extension


def partial_path(path: Path) -> Path:
    """A partial-file path beside ``path`` ending in ``path``'s extension (lower case)."""
    return path.parent / f"{PARTIAL_PREFIX}{os.getpid()}-{secrets.token_hex(4)}-{_partial_tail(path.name)}"


def is_partial(path: Path) -> bool:
    return _PARTIAL.match(Path(path).name) is not None


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # someone else's live process (or a platform that cannot tell): keep its file
    with contextlib.suppress(OSError, IndexError):  # Linux: a zombie (killed, not yet reaped) is dead
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return True


def sweep_partials(folder: Path, name: str | None = None, every: bool = False) -> int:
    """Remove partial files left in ``folder`` by processes that no longer run (for the
    destination ``name`` only, when given; all of them with ``every``, for a caller that holds
    the folder's lock); returns how many were removed."""
    removed = 0
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return 0
    for entry in entries:
        match = _PARTIAL.match(entry.name)
        if match and (name is None or match.group(2) == _partial_tail(name)) and (every or not _pid_alive(int(match.group(1)))):
            with contextlib.suppress(OSError):
                entry.unlink()
                removed += 1
    return removed


class _Captured:
    text = ""


@contextlib.contextmanager
def captured_stderr():
    """Capture what C/C++ libraries print on file descriptor 2 (ITK's NIfTI writer reports a
    short write only there).  The text is passed on to the real stderr afterwards."""
    captured = _Captured()
    try:
        sink = tempfile.TemporaryFile()
        saved = os.dup(2)
    except OSError:  # no room even for that: do without capturing
        yield captured
        return
    with sink:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        os.dup2(sink.fileno(), 2)
        try:
            yield captured
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            captured.text = sink.read().decode("utf-8", "replace")
            if captured.text:
                with contextlib.suppress(Exception):
                    sys.stderr.write(captured.text)


def explain_os_error(error: OSError, path: Path) -> str:
    """A sentence naming why ``path`` could not be written and what to do."""
    folder = path.parent
    if error.errno == errno.ENOSPC:
        return f"the disk holding {folder} is full ({_free(folder)} free); free space or choose another output folder"
    if error.errno == errno.EFBIG:
        return "the file-size limit of this process (ulimit -f) stopped the write; raise the limit or write smaller files"
    if error.errno in (errno.EACCES, errno.EPERM):
        return f"no permission to write in {folder}; choose a folder you can write to"
    if error.errno == errno.EROFS:
        return f"{folder} is on a read-only file system; choose another output folder"
    if error.errno == errno.EISDIR:
        return f"{path} is a folder; give a file name"
    if error.errno == errno.ENOTDIR:
        return f"a part of {folder} is a file, not a folder; choose another output path"
    if error.errno == errno.ENAMETOOLONG:
        return f"the name is longer than the file system takes ({NAME_MAX} bytes a name); choose a shorter one"
    return f"{error.strerror or error} ({folder})"


def _free(folder: Path) -> str:
    with contextlib.suppress(OSError):
        free = shutil.disk_usage(folder).free
        for unit in ("bytes", "KB", "MB", "GB", "TB"):
            if free < 1024 or unit == "TB":
                return f"{free:.0f} {unit}" if unit == "bytes" else f"{free:.1f} {unit}"
            free /= 1024
    return "unknown space"


def _short_write_reason(path: Path) -> str:
    """Why a library may have written a file short without raising."""
    reasons = []
    with contextlib.suppress(OSError):
        if shutil.disk_usage(path.parent).free < 64 * 2**20:
            reasons.append(f"the disk holding {path.parent} is full or nearly ({_free(path.parent)} free)")
    with contextlib.suppress(ImportError, OSError, ValueError):
        import resource

        limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
        if limit != resource.RLIM_INFINITY:
            reasons.append(f"this process may write files of at most {limit} bytes (ulimit -f)")
    return "; ".join(reasons) or "the disk or the file system refused part of the write"


def prepare_folder(folder: Path, role: str = "output folder") -> Path:
    """Create ``folder`` (and parents) or raise a clear error naming why it cannot be used."""
    folder = Path(folder)
    check_utf8_name(folder, role)
    if folder.exists() and not folder.is_dir():
        raise MedSynthInputError(f"The {role} {folder} is a file, not a folder; give a folder path.")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise MedSynthOutputError(f"Cannot create the {role} {folder}: {explain_os_error(error, folder / '_')}.") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise MedSynthOutputError(f"Cannot write into the {role} {folder}: no permission (or read-only); choose another folder.")
    return folder


def claim_folder(folder: str | os.PathLike, role: str, owned: Callable[[Path], bool] | None = None,
                 inputs: dict[str, str | os.PathLike | None] | None = None, create: bool = True) -> Path:
    """Create ``folder`` for a run's outputs, or take it when it is empty or ``owned(folder)``
    says an earlier run of the same kind wrote it (a model folder to resume, a report to
    replace).  Refused: a folder holding someone else's files (nothing in it is touched), and a
    folder that is, holds or lies inside one of ``inputs`` (named as the user knows them).
    ``create=False`` checks a folder that the run writes later (nothing is created now)."""
    folder = Path(folder)
    for name, path in (inputs or {}).items():
        if path is None:
            continue
        if is_inside(folder, path) or (Path(path).is_dir() and is_inside(path, folder)):
            where = "the same folder as" if is_inside(folder, path) and is_inside(path, folder) else \
                ("inside" if is_inside(folder, path) else "around")
            raise MedSynthInputError(f"The {role} {folder} is {where} {name} ({path}); outputs are never written among "
                                     "inputs: choose a folder outside it.")
    if not create and not folder.exists():
        check_utf8_name(folder, role)
        return folder
    prepare_folder(folder, role)
    foreign = sorted(entry.name for entry in folder.iterdir()
                     if entry.name != FolderLock.NAME and not is_partial(entry))
    if foreign and not (owned is not None and owned(folder)):
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise MedSynthInputError(f"The {role} {folder} already holds files that are not a MedSynth {role} ({shown}); "
                                 "nothing in it was changed. Choose a new or empty folder.")
    return folder


def _fsync_folder(folder: Path) -> None:
    if os.name != "posix":
        return
    with contextlib.suppress(OSError):
        handle = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(handle)
        finally:
            os.close(handle)


def _stage(path: Path, write: Callable[[Path], None], verify: Callable[[Path], None] | None) -> Path:
    """Write and check a partial file for ``path`` (fsynced, not yet renamed); returns its path."""
    check_utf8_name(path, "output")
    if path.is_dir():
        raise MedSynthInputError(f"The output {path} is a folder; give a file name (e.g. {path / 'out.nii.gz'}).")
    prepare_folder(path.parent)
    sweep_partials(path.parent, path.name)
    partial = partial_path(path)
    try:
        os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))  # mode from the umask, like any tool
        with contextlib.suppress(FileNotFoundError):  # a file replaced keeps its permissions (a private 0600 stays so)
            os.chmod(partial, stat.S_IMODE(os.stat(path).st_mode))
        with captured_stderr() as captured:
            write(partial)
        if _STDERR_FAILURE.search(captured.text):
            message = captured.text.strip().splitlines()[-1].strip()
            raise MedSynthOutputError(f"Could not write {path}: the writer reported '{message}' "
                                      f"({_short_write_reason(path)}). Nothing was written.")
        if verify is not None:
            try:
                verify(partial)
            except (MedSynthError, RuntimeError) as error:
                detail = getattr(error, "detail", None) or str(error).strip().splitlines()[-1]
                raise MedSynthOutputError(f"Could not write {path}: what reached the disk is not whole ({detail}); "
                                          f"{_short_write_reason(path)}. Nothing was written.") from None
        with open(partial, "rb+") as handle:
            os.fsync(handle.fileno())
        return partial
    except BaseException as error:
        with contextlib.suppress(OSError):
            partial.unlink()
        if isinstance(error, OSError):
            raise MedSynthOutputError(f"Could not write {path}: {explain_os_error(error, path)}. Nothing was written.") from None
        if isinstance(error, RuntimeError):  # SimpleITK raises RuntimeError for what ITK refuses
            detail = str(error).strip().splitlines()[-1] if str(error).strip() else "unknown error"
            raise MedSynthOutputError(f"Could not write {path}: {detail} ({_short_write_reason(path)}).") from None
        raise


def _promote(partial: Path, path: Path) -> None:
    try:
        os.replace(partial, path)
    except OSError as error:
        with contextlib.suppress(OSError):
            partial.unlink()
        raise MedSynthOutputError(f"Could not write {path}: {explain_os_error(error, path)}.") from None
    _fsync_folder(path.parent)


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None],
                 verify: Callable[[Path], None] | None = None) -> Path:
    """Write ``path`` whole or not at all.

    ``write(partial)`` writes the content to the partial file it is given; ``verify(partial)``
    raises (``MedSynthError``, ``OSError`` or ``RuntimeError``) if what landed on disk is not
    whole.  The partial file is then fsynced and renamed over ``path``; on any failure it is
    removed and a ``MedSynthOutputError`` names the cause (full disk, file-size limit, permissions).
    """
    path = Path(path)
    _promote(_stage(path, write, verify), path)
    return path


class OutputInTheWay(MedSynthInputError):
    """A destination holds a file with other content that is not ours to replace."""


def _same_bytes(a: Path, b: Path) -> bool:
    import filecmp

    try:
        return filecmp.cmp(a, b, shallow=False)
    except OSError:
        return False


class OutputSet:
    """Files that belong together (an image, its label map, the record that describes them).

    Each is written and checked as a partial file (``add``); ``commit`` first removes the
    previous version of the last file (the record), then renames the others into place and the
    last one after them.  So a record on disk always describes the files beside it: after an
    interruption there is either the old set, or new files without a record.  Used as a context
    manager, partial files are removed when anything fails before the commit.
    """

    def __init__(self, keep_different: bool = False) -> None:
        """``keep_different``: a file already at a destination is replaced only when its bytes
        equal the new ones (for deterministic outputs: an interrupted run's own file); any other
        file there is someone else's, and ``commit`` raises ``OutputInTheWay`` leaving it as it is."""
        self._staged: list[tuple[Path, Path]] = []
        self.keep_different = keep_different

    def add(self, path: str | os.PathLike, write: Callable[[Path], None],
            verify: Callable[[Path], None] | None = None) -> Path:
        """Stage ``path``; returns the checked partial file (e.g. to hash what will be committed)."""
        path = Path(path)
        partial = _stage(path, write, verify)
        self._staged.append((partial, path))
        return partial

    def commit(self) -> None:
        if not self._staged:
            return
        if self.keep_different:
            for partial, path in self._staged:
                if path.exists() and not _same_bytes(partial, path):
                    self.discard()
                    raise OutputInTheWay(f"{path} is in the way: a file with other content is already there (changed "
                                         "by hand, or not made by this run); it was kept as it is. Move it away to let "
                                         "this output be made.")
        with contextlib.suppress(FileNotFoundError):
            self._staged[-1][1].unlink()  # the old commit marker goes first
        for partial, path in self._staged:
            _promote(partial, path)
        self._staged = []

    def discard(self) -> None:
        for partial, _ in self._staged:
            with contextlib.suppress(OSError):
                partial.unlink()
        self._staged = []

    def __enter__(self) -> "OutputSet":
        return self

    def __exit__(self, kind, *exc) -> None:
        self.discard()


def content_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes; of a folder (a DICOM series): of its files' names and bytes, in order."""
    import hashlib

    path = Path(path)
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(str(file.relative_to(path)).encode() + b"\0")
        with open(file, "rb") as handle:
            while chunk := handle.read(2**22):
                digest.update(chunk)
    return digest.hexdigest()


def bytes_writer(data: bytes):
    """``(write, verify)`` for ``atomic_write``/``OutputSet``: the bytes on disk are read back and compared."""

    def verify(partial: Path) -> None:
        if partial.read_bytes() != data:
            raise MedSynthOutputError(f"{partial.stat().st_size} of {len(data)} bytes read back")

    return (lambda partial: partial.write_bytes(data)), verify


def json_bytes(data, what: str = "record") -> bytes:
    """Strict JSON (NaN/Infinity are refused rather than written as invalid JSON)."""
    import json

    try:
        return (json.dumps(data, indent=2, allow_nan=False) + "\n").encode("utf-8")
    except ValueError:
        raise MedSynthInputError(f"Refusing to write the {what}: a value is NaN or infinite "
                                 "(a non-finite input or option?).") from None


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` whole or not at all."""
    return atomic_write(path, *bytes_writer(data))


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | os.PathLike, data) -> Path:
    """Strict JSON, whole or not at all."""
    return write_bytes_atomic(path, json_bytes(data, Path(path).name))


class FolderLock:
    """An exclusive lock on an output folder for the lifetime of a run (``with FolderLock(f):``).

    The lock is held by the operating system (``flock``/``msvcrt.locking``), so it is released
    when the process ends in any way, kill -9 included."""

    NAME = ".medsynth.lock"

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self._handle = None

    def __enter__(self) -> "FolderLock":
        prepare_folder(self.folder)
        path = self.folder / self.NAME
        try:
            handle = open(path, "a+")
        except OSError as error:
            raise MedSynthOutputError(f"Cannot lock {self.folder}: {explain_os_error(error, path)}.") from None
        try:
            _lock(handle)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise MedSynthInputError(
                f"Another MedSynth run (process {holder}) is writing into {self.folder}; wait for it to end, "
                "or choose another output folder.") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._handle = handle
        return self

    def __exit__(self, *exc) -> None:
        if self._handle is not None:
            with contextlib.suppress(OSError):
                self._handle.seek(0)
                self._handle.truncate()
            self._handle.close()
            self._handle = None


def _lock(handle) -> None:
    if os.name == "nt":
        import msvcrt

        handle.seek(0)
        msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
    else:
        import fcntl

        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
