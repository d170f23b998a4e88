"""Is an image file whole?  Checked on every input read and every output written.

ITK reads a ``.nii.gz`` cut in half, or a ``.nii`` cut short, as a valid image with zeros for the
missing part, and its NIfTI writer reports a short write only on stderr.  No library that Slicer
ships says so, hence this small check by hand: from the header, the number of data bytes the
file must hold, compared with what it holds (the compressed stream is decompressed to its end,
which also checks gzip's CRC).  PNG and JPEG must end with their end markers.  Other formats
are only checked to be non-empty.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

from .errors import MedSynthInputError

_CHUNK = 4 * 2**20


class DamagedFileError(MedSynthInputError):
    """The file is cut short or its compressed data is corrupt; ``detail`` says how."""

    def __init__(self, message: str, detail: str):
        super().__init__(message)
        self.detail = detail


def _damaged(path: Path, detail: str) -> DamagedFileError:
    return DamagedFileError(f"{path} is damaged ({detail}); it was probably cut short by an interrupted copy or "
                            "download, or a full disk. Copy or export it again.", detail)


def _gzip_stream(path: Path):
    """Decompressed bytes of a gzip file in chunks; raises ``DamagedFileError`` when cut short or corrupt."""
    try:
        with gzip.open(path, "rb") as handle:
            while True:
                chunk = handle.read(_CHUNK)
                if not chunk:
                    return
                yield chunk
    except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as error:
        raise _damaged(path, f"compressed data: {error}") from None


def _head_and_length(path: Path, compressed: bool, head_bytes: int) -> tuple[bytes, int]:
    """The first ``head_bytes`` of the (decompressed) content and its whole length."""
    if not compressed:
        with open(path, "rb") as handle:
            return handle.read(head_bytes), path.stat().st_size
    head, length = b"", 0
    for chunk in _gzip_stream(path):
        if len(head) < head_bytes:
            head += chunk[: head_bytes - len(head)]
        length += len(chunk)
    return head, length


def _nifti_expected(header: bytes, path: Path) -> int | None:
    """Bytes a single-file NIfTI-1/2 must hold (offset + voxels x bytes), from its header."""
    for endian in "<>":
        if len(header) >= 348 and struct.unpack(endian + "i", header[:4])[0] == 348:
            dims = struct.unpack(endian + "8h", header[40:56])
            bitpix = struct.unpack(endian + "h", header[72:74])[0]
            offset = struct.unpack(endian + "f", header[108:112])[0]
            break
        if len(header) >= 540 and struct.unpack(endian + "i", header[:4])[0] == 540:
            dims = struct.unpack(endian + "8q", header[16:80])
            bitpix = struct.unpack(endian + "h", header[14:16])[0]
            offset = struct.unpack(endian + "q", header[168:176])[0]
            break
    else:
        raise _damaged(path, "no NIfTI header")
    count = 1
    for n in range(1, min(max(int(dims[0]), 0), 7) + 1):
        count *= max(int(dims[n]), 1)
    return int(offset) + count * max(int(bitpix), 8) // 8


_NRRD_BYTES = {"int8": 1, "uint8": 1, "signed char": 1, "uchar": 1, "unsigned char": 1, "short": 2, "int16": 2,
               "ushort": 2, "uint16": 2, "unsigned short": 2, "short int": 2, "signed short": 2,
               "int": 4, "int32": 4, "uint": 4, "uint32": 4, "unsigned int": 4, "signed int": 4,
               "longlong": 8, "int64": 8, "ulonglong": 8, "uint64": 8, "float": 4, "double": 8}


def _check_nrrd(path: Path) -> None:
    with open(path, "rb") as handle:
        raw = handle.read(_CHUNK)
    end = raw.find(b"\n\n")
    if not raw.startswith(b"NRRD") or end < 0:
        raise _damaged(path, "no complete NRRD header")
    fields = {}
    for line in raw[:end].decode("latin-1").splitlines()[1:]:
        if ":" in line and not line.startswith("#"):
            key, _, value = line.partition(":")
            fields[key.strip().lower()] = value.lstrip("=").strip()
    if "data file" in fields or "datafile" in fields:
        return  # detached data: checked by the reader
    sizes = [int(v) for v in fields.get("sizes", "0").split()]
    count = 1
    for size in sizes:
        count *= size
    expected = count * _NRRD_BYTES.get(fields.get("type", "").lower(), 1)
    encoding = fields.get("encoding", "raw").lower()
    if encoding in ("raw",):
        held = path.stat().st_size - (end + 2)
    elif encoding in ("gzip", "gz"):
        held = 0
        decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
        with open(path, "rb") as handle:
            handle.seek(end + 2)
            try:
                while chunk := handle.read(_CHUNK):
                    held += len(decompressor.decompress(chunk))
                held += len(decompressor.flush())
            except zlib.error as error:
                raise _damaged(path, f"compressed data: {error}") from None
        if not decompressor.eof:
            raise _damaged(path, "compressed data ends early")
    else:
        return  # ascii/hex/bzip2: left to the reader
    if held < expected:
        raise _damaged(path, f"holds {held} of the {expected} data bytes its header announces")


def check_image_file(path: str | Path) -> None:
    """Raise ``DamagedFileError`` when the image file at ``path`` is cut short or corrupt."""
    path = Path(path)
    if path.is_dir():
        return  # DICOM series folder: each file is checked by GDCM
    name = path.name.lower()
    size = path.stat().st_size
    if size == 0:
        raise _damaged(path, "the file is empty")
    if name.endswith((".nii", ".nii.gz")):
        compressed = name.endswith(".gz")
        head, length = _head_and_length(path, compressed, 540)
        expected = _nifti_expected(head, path)
        if length < expected:
            raise _damaged(path, f"holds {length} of the {expected} bytes its header announces")
    elif name.endswith((".nrrd",)):
        _check_nrrd(path)
    elif name.endswith(".gz"):
        for _ in _gzip_stream(path):
            pass
    elif name.endswith(".png"):
        with open(path, "rb") as handle:
            handle.seek(max(size - 12, 0))
            if handle.read(12)[4:8] != b"IEND":
                raise _damaged(path, "the PNG has no end chunk")
    elif name.endswith((".jpg", ".jpeg")):
        with open(path, "rb") as handle:
            handle.seek(max(size - 1024, 0))
            if b"\xff\xd9" not in handle.read():  # some writers pad after the end marker
                raise _damaged(path, "the JPEG has no end marker")
