"""CSV tables that users write by hand or in a spreadsheet: case lists and image label tables.

One reader for all of them, so every table gets the same treatment: UTF-8 with or without a
byte-order mark (Excel writes one), blank lines skipped, and every problem reported with the
table's path and the row's line number.  One writer for the tables MedSynth writes
(``csv_text``), which keeps text from being read as a spreadsheet formula.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from .errors import MedSynthInputError

#: default column names of a labelled image table (``medsynth translate``/``evaluate``, Python API)
FILE_COLUMN = "path"
LABEL_COLUMN = "label"


def read_table(path: str | Path, required: tuple[str, ...], what: str = "table") -> list[tuple[int, dict[str, str]]]:
    """Rows of a CSV as ``(line number, {column: text})`` with surrounding spaces stripped.

    Raises a clear ``MedSynthInputError`` for a missing file, a file that is not UTF-8 text,
    missing ``required`` columns, rows with too few or too many values, or no rows at all."""
    path = Path(path)
    if not path.is_file():
        kind = " is a folder" if path.is_dir() else (" is not a regular file (a pipe, socket or device)"
                                                     if path.exists() else " does not exist")
        raise MedSynthInputError(f"The {what} {path}{kind}; give a CSV file.")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise MedSynthInputError(f"The {what} {path} is not UTF-8 text (byte {error.start}); save it as CSV (UTF-8).") from None
    except OSError as error:
        raise MedSynthInputError(f"Cannot read the {what} {path}: {error.strerror or error}.") from None
    if "\x00" in text:
        raise MedSynthInputError(f"The {what} {path} holds binary data (NUL bytes), not CSV text; save it as CSV (UTF-8).")
    reader = csv.reader(text.splitlines())
    try:
        lines = [(reader.line_num, row) for row in reader]
    except csv.Error as error:
        raise MedSynthInputError(f"The {what} {path} is not valid CSV (line {reader.line_num}: {error}).") from None
    lines = [(number, row) for number, row in lines if any(cell.strip() for cell in row)]
    if not lines:
        raise MedSynthInputError(f"The {what} {path} is empty; it needs a header with the columns {', '.join(required)}.")
    header_line, header = lines[0]
    header = [cell.strip() for cell in header]
    repeated = sorted({column for column in header if header.count(column) > 1})
    if repeated:
        raise MedSynthInputError(f"The {what} {path} names the column(s) {', '.join(repeated) or '(empty)'} more than once "
                                 f"(line {header_line}); give each column once.")
    missing = [column for column in required if column not in header]
    if missing:
        raise MedSynthInputError(f"The {what} {path} lacks the column(s) {', '.join(missing)}; its header (line {header_line}) "
                                 f"has {', '.join(header) or 'nothing'}.")
    rows = []
    for number, row in lines[1:]:
        if len(row) != len(header):
            raise MedSynthInputError(f"Line {number} of {path} has {len(row)} value(s) but the header has {len(header)} "
                                     f"columns ({', '.join(header)}); fix that row.")
        rows.append((number, {column: cell.strip() for column, cell in zip(header, row)}))
    if not rows:
        raise MedSynthInputError(f"The {what} {path} has a header but no rows.")
    return rows


def table_file(table: Path, row: dict[str, str], column: str, number: int, required: bool = True) -> Path | None:
    """The file a table's ``column`` names on line ``number`` (relative to the table's folder),
    checked to exist; None when the cell is empty and the column is optional."""
    if not (row.get(column) or "").strip():
        if required:
            raise MedSynthInputError(f"Line {number} of {table}: the {column} column is empty.")
        return None
    from .paths import check_utf8_name

    file = Path(table).parent / row[column].strip()
    check_utf8_name(file, f"file on line {number} of {table}")
    file = file.resolve()
    if not file.exists():
        raise MedSynthInputError(f"Line {number} of {table}: file not found: {file}")
    return file


def parse_int(text: str, column: str, number: int, path: Path) -> int | None:
    """An integer cell (empty: None), or a clear error naming the row."""
    if text == "":
        return None
    try:
        return int(text)
    except ValueError:
        raise MedSynthInputError(f"Line {number} of {path}: {column} must be a whole number, got {text!r}.") from None


def read_label_table(folder: str | Path, labels_csv: str | Path | None = None, file_column: str = FILE_COLUMN,
                     label_column: str = LABEL_COLUMN, class_names: list[str] | None = None,
                     keep_only: bool = False):
    """The images of a folder listed in a CSV (``file_column`` relative to ``folder`` or to
    ``folder/images``, ``label_column``): returns (paths, label indices, class names, ids).

    ``class_names`` fixes the classes and their order (default: the labels found, sorted).
    With ``keep_only`` the rows whose label is not among ``class_names`` are left out (a subset
    of the domains); otherwise such a label is an error.  Missing files are errors naming the row.
    """
    folder = Path(folder)
    labels_csv = _folder_table(folder, labels_csv, "label table", f"columns '{file_column}' and '{label_column}'")
    rows = read_table(labels_csv, (file_column, label_column), "label table")
    names = list(class_names) if class_names else sorted({row[label_column] for _, row in rows})
    paths, labels, ids = [], [], []
    for number, row in rows:
        if row[label_column] not in names:
            if keep_only:
                continue
            raise MedSynthInputError(f"Line {number} of {labels_csv}: label {row[label_column]!r} of {row[file_column]} "
                                     f"is not one of {names}.")
        paths.append(_listed_image(folder, row[file_column], labels_csv, number))
        labels.append(names.index(row[label_column]))
        ids.append(row[file_column])
    if not paths:
        raise MedSynthInputError(f"{labels_csv} lists no image of the classes {names}.")
    return paths, np.array(labels), names, ids


def read_findings_table(folder: str | Path, findings: list[str], labels_csv: str | Path | None = None,
                        file_column: str = FILE_COLUMN):
    """The images of a folder listed in a CSV with one 0/1 column per finding (``findings``, the
    column names; an image may have none, one or several): returns (paths, (n, findings) 0/1
    matrix, ids).  Files are found as ``read_label_table`` finds them."""
    folder = Path(folder)
    labels_csv = _folder_table(folder, labels_csv, "findings table",
                               f"the column '{file_column}' and a 0/1 column per finding ({', '.join(findings)})")
    if len(set(findings)) != len(findings) or not findings:
        raise MedSynthInputError(f"Name each finding column once; got {findings}.")
    paths, matrix, ids = [], [], []
    for number, row in read_table(labels_csv, (file_column, *findings), "findings table"):
        values = [row[f].strip() for f in findings]
        wrong = [f for f, v in zip(findings, values) if v not in ("0", "1")]
        if wrong:
            raise MedSynthInputError(f"Line {number} of {labels_csv}: the finding column(s) {', '.join(wrong)} hold "
                                     f"{', '.join(repr(row[f]) for f in wrong)}; write 1 (present) or 0 (absent).")
        paths.append(_listed_image(folder, row[file_column], labels_csv, number))
        matrix.append([int(v) for v in values])
        ids.append(row[file_column])
    if not paths:
        raise MedSynthInputError(f"{labels_csv} lists no image.")
    return paths, np.array(matrix, np.int64), ids


def _folder_table(folder: Path, table: str | Path | None, what: str, columns: str) -> Path:
    """The CSV listing a folder's images (``table``, default ``folder/labels.csv``); a missing one
    is an error saying which ``columns`` it needs."""
    path = Path(table) if table is not None else folder / "labels.csv"
    if not path.exists():
        raise MedSynthInputError(f"No {what} at {path}; give a CSV with {columns}.")
    return path


def _listed_image(folder: Path, relative: str, table: Path, number: int) -> Path:
    """The image a table's row names: ``folder/relative`` or ``folder/images/relative``, never
    outside ``folder``; a missing file is an error naming the row."""
    path = _inside(folder, relative, table, number)
    if not path.exists():
        path = _inside(folder / "images", relative, table, number)
    if not path.exists():
        raise MedSynthInputError(f"Line {number} of {table}: image {relative} is not in {folder}.")
    return path


def _inside(folder: Path, relative: str, table: Path, number: int) -> Path:
    """``folder / relative``, refusing names that point outside ``folder``."""
    path = (folder / relative)
    try:
        path.resolve().relative_to(folder.resolve())
    except ValueError:
        raise MedSynthInputError(f"Line {number} of {table}: {relative!r} points outside {folder}; list files inside it.") from None
    return path


def read_numeric_columns(table: Path, file_column: str, columns: list[str], ids: list[str]) -> np.ndarray:
    """(len(ids), len(columns)) float32: the numeric ``columns`` of the rows of ``table`` whose
    ``file_column`` is each id (e.g. a patient's age per image); missing or non-numeric values
    are refused naming the line."""
    import math

    if not columns:
        return np.zeros((len(ids), 0), np.float32)
    rows = {row[file_column]: (number, row) for number, row in read_table(table, (file_column, *columns), "label table")}
    values = np.zeros((len(ids), len(columns)), np.float32)
    for i, name in enumerate(ids):
        number, row = rows[name]
        for j, column in enumerate(columns):
            try:
                value = float(row[column])
            except (TypeError, ValueError):
                value = math.nan
            if not math.isfinite(value):
                raise MedSynthInputError(f"Line {number} of {table}: {column} = {row[column]!r} is not a number; "
                                         f"every image needs a numeric {column}.")
            values[i, j] = value
    return values


def _not_a_formula(value):
    """Text that a spreadsheet would run as a formula (``=HYPERLINK(...)``, ``+cmd``, ``@SUM``)
    gets a leading apostrophe, as OWASP advises for CSV exports; numbers stay numbers."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        try:
            float(value)
        except ValueError:
            return "'" + value
    return value


def csv_text(rows: list[dict], columns: list[str]) -> str:
    """Rows (dicts; missing keys left blank) as CSV text with a header, safe to open in a spreadsheet."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows({key: _not_a_formula(value) for key, value in row.items()} for row in rows)
    return buffer.getvalue()

