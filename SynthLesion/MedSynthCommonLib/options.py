"""Option records (configs, model cards, presets, records) read back from JSON written by another
version or program, or by a hostile one: ``read_json`` is the one way user JSON is read."""

from __future__ import annotations

import json
import os
from dataclasses import fields
from pathlib import Path

from .errors import MedSynthInputError


def check_known_options(dataclass_type, data, what: str) -> None:
    """Raise unless ``data`` is a JSON object whose keys are all fields of ``dataclass_type``."""
    if not isinstance(data, dict):
        raise MedSynthInputError(f"The {what} must be a JSON object of options, got {type(data).__name__}.")
    unknown = set(data) - {f.name for f in fields(dataclass_type)}
    if unknown:
        raise MedSynthInputError(f"Unknown {what}: {', '.join(sorted(unknown))} (written by another program or version?).")


def chosen_path(value) -> Path | None:
    """A path chosen in the GUI, or None when the field is empty.  (Slicer's parameter node stores
    an empty path field as ``Path(".")``, which is truthy: test with this, not with ``bool``.)"""
    if value is None or str(value).strip() in ("", "."):
        return None
    return Path(value)


#: the largest JSON file MedSynth reads (records, cards, presets are kilobytes)
MAX_JSON_BYTES = 64 * 2**20


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def parse_json(text: str | bytes, what: str):
    """JSON text as Python values; anything that is not strict JSON (NaN, Infinity, numbers of
    thousands of digits, nesting deeper than Python's stack) raises ``MedSynthInputError``."""
    try:
        if isinstance(text, bytes):
            text = text.decode("utf-8-sig")  # JSON files are UTF-8 (RFC 8259); a byte-order mark is tolerated
        return json.loads(text, parse_constant=_no_constant)
    except UnicodeDecodeError:
        raise MedSynthInputError(f"The {what} is not UTF-8 text.") from None
    except RecursionError:
        raise MedSynthInputError(f"The {what} is nested too deeply to be a MedSynth file.") from None
    except ValueError as error:  # JSONDecodeError, NaN/Infinity, integers beyond Python's digit limit
        detail = "a number has thousands of digits" if "digits" in str(error) else str(error).splitlines()[0][:120]
        raise MedSynthInputError(f"The {what} is not valid JSON ({detail}).") from None


def read_json(path: str | os.PathLike, what: str):
    """The JSON file at ``path`` (``what`` names it in messages: "preset file", "model card"),
    refused clearly when missing, unreadable or not strict JSON."""
    path = Path(path)
    try:
        if path.exists() and not path.is_dir() and not path.is_file():
            raise MedSynthInputError(f"The {what} {path} is not a regular file (a pipe, socket or device); give a "
                                     ".json file.")
        if path.is_file() and path.stat().st_size > MAX_JSON_BYTES:
            raise MedSynthInputError(f"The {what} {path} is {path.stat().st_size / 2**20:.0f} MB; MedSynth's JSON files "
                                     f"are far smaller (at most {MAX_JSON_BYTES // 2**20} MB): is it the right file?")
        data = path.read_bytes()
    except FileNotFoundError:
        raise MedSynthInputError(f"The {what} {path} was not found.") from None
    except IsADirectoryError:
        raise MedSynthInputError(f"The {what} {path} is a folder; give a .json file.") from None
    except OSError as error:
        raise MedSynthInputError(f"The {what} {path} cannot be read ({error.strerror or error}).") from None
    return parse_json(data, f"{what} {path}")

