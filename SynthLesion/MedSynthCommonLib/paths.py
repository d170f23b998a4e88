"""Paths a user gives or MedSynth makes, checked before anything is written: names that the
image libraries and file systems take (UTF-8, at most ``NAME_MAX`` bytes), outputs that are
not one file with each other or with an input (through symlinks, hard links, ``./``, ``../``),
and names that cannot leave an output folder."""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

from .errors import MedSynthInputError

#: longest file name (bytes) that Linux, macOS and Windows file systems take
NAME_MAX = 255


def check_utf8_name(path: str | os.PathLike, what: str = "file") -> None:
    """Refuse a path that is not valid UTF-8 (e.g. a byte 0xff from another system's encoding):
    ITK aborts the whole process on such names instead of raising; and a path with a name
    longer than file systems take (which would otherwise read as "not found")."""
    try:
        os.fsencode(path).decode("utf-8")
    except UnicodeDecodeError:
        shown = os.fsencode(path).decode("utf-8", "backslashreplace")
        raise MedSynthInputError(f"The {what} name {shown} is not valid UTF-8 text; the image libraries MedSynth uses "
                                 "need UTF-8 file and folder names. Rename it (e.g. convmv -f latin1 -t utf8).") from None
    for part in Path(path).parts:
        if len(os.fsencode(part)) > NAME_MAX:
            raise MedSynthInputError(f"The {what} name {part[:40]}... is {len(os.fsencode(part))} bytes long; file "
                                     f"systems take at most {NAME_MAX}. Choose a shorter name.")


def is_inside(path: Path, folder: Path) -> bool:
    path, folder = Path(os.path.realpath(path)), Path(os.path.realpath(folder))
    return path == folder or folder in path.parents


def file_identity(path: Path) -> tuple:
    """What makes two paths the same file: the inode when it exists (hard links), else the
    resolved path (symlinks, ``./``, ``../``)."""
    path = Path(path)
    with contextlib.suppress(OSError):
        stat = path.stat()
        return ("inode", stat.st_dev, stat.st_ino)
    return ("path", os.path.normcase(os.path.realpath(path)))


def check_distinct_paths(outputs: dict[str, str | os.PathLike | None], inputs: dict[str, str | os.PathLike | None] | None = None) -> None:
    """Refuse when two outputs, or an output and an input, are one file.  Keys are the names
    the user knows them by (e.g. ``--out-image``)."""
    seen: dict[tuple, str] = {}
    for role, path in (inputs or {}).items():
        if path is not None:
            seen.setdefault(file_identity(Path(path)), role)
    input_ids = set(seen)
    for role, path in outputs.items():
        if path is None:
            continue
        identities = {file_identity(Path(path)), ("path", os.path.normcase(os.path.realpath(path)))}
        for identity in identities:
            if identity in seen:
                other = seen[identity]
                if identity in input_ids:
                    raise MedSynthInputError(f"{role} ({path}) is the same file as the input {other}; inputs are never "
                                             "overwritten: choose another output path.")
                raise MedSynthInputError(f"{role} and {other} both name {path}; give each output its own file.")
        for identity in identities:
            seen[identity] = role


_SAFE_STEM = re.compile(r"^[\w][\w .+=,@-]{0,119}$")


def safe_file_stem(name: str, what: str) -> str:
    """``name`` if it can be used as a file name inside an output folder, else a clear error
    (no separators, no ``..``, no leading dot or space, at most 120 characters)."""
    if not isinstance(name, str) or not _SAFE_STEM.match(name) or name.endswith((" ", ".")) or ".." in name:
        raise MedSynthInputError(
            f"{what} {name!r} cannot be used as a file name: use letters, digits and - _ . (no slashes, no '..', "
            "not starting with a dot, at most 120 characters).")
    return name
