"""Is an image file whole?  Checked on every input read and every output written.

ITK reads a ``.nii.gz`` cut in half, or a ``.nii`` cut short, as a valid image with zeros for the
missing part, and its NIfTI writer reports a short write only on stderr.  No library that Slicer
ships says so, hence this small check by hand: from the header, the number of data bytes the
file must hold, compared with what it holds (the compressed stream is decompressed to its end,
which also checks gzip's CRC).  PNG and JPEG must end with their end markers.  Other formats
are only checked to be non-empty.  MetaImage (``.mha``/``.mhd``) is checked like NRRD.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

from .errors import MedSynthInputError
from .geometry import count_nonfinite

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


def _content_chunks(path: Path, compressed: bool):
    """The file's (decompressed) content in chunks."""
    if compressed:
        yield from _gzip_stream(path)
        return
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            yield chunk


#: NIfTI datatype codes of floating-point data -> numpy type of one value
_NIFTI_FLOATS = {16: "f4", 64: "f8", 32: "f4", 1792: "f8"}  # float32, float64, complex64, complex128


def _nifti_layout(header: bytes, path: Path) -> tuple[int, int, str | None]:
    """(bytes a single-file NIfTI-1/2 must hold, data offset, numpy type of its float values or
    None for integer data), from its header."""
    for endian in "<>":
        if len(header) >= 348 and struct.unpack(endian + "i", header[:4])[0] == 348:
            dims = struct.unpack(endian + "8h", header[40:56])
            datatype, bitpix = struct.unpack(endian + "2h", header[70:74])
            offset = struct.unpack(endian + "f", header[108:112])[0]
            break
        if len(header) >= 540 and struct.unpack(endian + "i", header[:4])[0] == 540:
            datatype, bitpix = struct.unpack(endian + "2h", header[12:16])
            dims = struct.unpack(endian + "8q", header[16:80])
            offset = struct.unpack(endian + "q", header[168:176])[0]
            break
    else:
        raise _damaged(path, "no NIfTI header")
    count = 1
    for n in range(1, min(max(int(dims[0]), 0), 7) + 1):
        count *= max(int(dims[n]), 1)
    floats = endian + _NIFTI_FLOATS[datatype] if datatype in _NIFTI_FLOATS else None
    return int(offset) + count * max(int(bitpix), 8) // 8, int(offset), floats


class NonFiniteError(MedSynthInputError):
    """The image file holds NaN or infinite values (which some readers turn into 0 silently)."""


def nonfinite_error(path, count: int) -> NonFiniteError:
    return NonFiniteError(f"{path} holds {count} NaN or infinite value(s); replace them (e.g. with the background "
                          "value) and save the image again.")


def _check_nifti(path: Path, compressed: bool, finite: bool) -> None:
    """One pass over a NIfTI's content: its length against its header and, with ``finite``, its
    float values (ITK's reader returns 0 for NaN and infinity, so the file itself is read)."""
    import numpy as np

    expected = offset = length = bad = 0
    floats, header, rest = None, b"", b""
    for chunk in _content_chunks(path, compressed):
        if not length and len(header) < 540:
            header += chunk[:540]
            if len(header) >= 348:
                expected, offset, floats = _nifti_layout(header, path)
        start = max(offset - length, 0)
        length += len(chunk)
        if finite and floats is not None and start < len(chunk):
            data = rest + chunk[start:]
            whole = len(data) - len(data) % np.dtype(floats).itemsize
            bad += count_nonfinite(np.frombuffer(data[:whole], floats))
            rest = data[whole:]
    if not header:
        raise _damaged(path, "the file is empty")
    if len(header) < 348:
        _nifti_layout(header, path)  # raises: no NIfTI header
    if length < expected:
        raise _damaged(path, f"holds {length} of the {expected} bytes its header announces")
    if bad:
        raise nonfinite_error(path, bad)


def _inflated_length(path: Path, data: Path, start: int, window_bits: int) -> int:
    """Bytes the zlib/gzip stream in ``data`` from ``start`` inflates to, streamed (``path``: the
    image file named in messages); a corrupt or cut stream raises ``DamagedFileError``."""
    held, decompressor = 0, zlib.decompressobj(window_bits)
    with open(data, "rb") as handle:
        handle.seek(start)
        try:
            while chunk := handle.read(_CHUNK):
                held += len(decompressor.decompress(chunk))
            held += len(decompressor.flush())
        except zlib.error as error:
            raise _damaged(path, f"compressed data: {error}") from None
    if not decompressor.eof:
        raise _damaged(path, "compressed data ends early")
    return held


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
        held = _inflated_length(path, path, end + 2, 16 + zlib.MAX_WBITS)
    else:
        return  # ascii/hex/bzip2: left to the reader
    if held < expected:
        raise _damaged(path, f"holds {held} of the {expected} data bytes its header announces")


_META_BYTES = {"MET_CHAR": 1, "MET_UCHAR": 1, "MET_SHORT": 2, "MET_USHORT": 2, "MET_INT": 4, "MET_UINT": 4,
               "MET_LONG": 4, "MET_ULONG": 4, "MET_LONG_LONG": 8, "MET_ULONG_LONG": 8, "MET_FLOAT": 4,
               "MET_DOUBLE": 8}


def _check_meta(path: Path) -> None:
    """MetaImage (``.mha`` with its data inside, ``.mhd`` naming a data file): the data must hold
    what ``DimSize`` x ``ElementType`` x channels announce."""
    with open(path, "rb") as handle:
        raw = handle.read(_CHUNK)
    fields, offset = {}, 0
    for line in raw.split(b"\n"):
        offset += len(line) + 1
        key, _, value = line.decode("latin-1").partition("=")
        fields[key.strip().lower()] = value.strip()
        if key.strip().lower() == "elementdatafile":
            break
    else:
        raise _damaged(path, "no complete MetaImage header (no ElementDataFile line)")
    try:
        count = 1
        for size in fields.get("dimsize", "0").split():
            count *= int(size)
        expected = count * _META_BYTES.get(fields.get("elementtype", "").upper(), 1) * \
            int(fields.get("elementnumberofchannels", "1") or 1)
    except ValueError:
        raise _damaged(path, "an unreadable DimSize or ElementNumberOfChannels") from None
    data_file = fields["elementdatafile"]
    compressed = fields.get("compresseddata", "false").lower() == "true"
    if data_file.upper() == "LOCAL":
        data, start = path, offset
    elif data_file.upper() == "LIST" or "%" in data_file:
        return  # a list of slice files: each is read (and checked) by the reader
    else:
        data, start = path.parent / data_file, 0
        if not data.is_file():
            raise _damaged(path, f"its data file {data_file} is missing")
    if not compressed:
        held = data.stat().st_size - start
    else:
        held = _inflated_length(path, data, start, zlib.MAX_WBITS)
    if held < expected:
        raise _damaged(path, f"holds {max(held, 0)} of the {expected} data bytes its header announces")


def check_image_file(path: str | Path, finite: bool = False) -> None:
    """Raise ``DamagedFileError`` when the image file at ``path`` is cut short or corrupt; with
    ``finite``, ``NonFiniteError`` when a NIfTI file holds NaN or infinite values (other formats
    keep them through the reader, which ``imageio.read_image`` checks)."""
    path = Path(path)
    if path.is_dir():
        return  # DICOM series folder: each file is checked by GDCM
    name = path.name.lower()
    size = path.stat().st_size
    if size == 0:
        raise _damaged(path, "the file is empty")
    if name.endswith((".nii", ".nii.gz")):
        _check_nifti(path, name.endswith(".gz"), finite)
    elif name.endswith((".nrrd",)):
        _check_nrrd(path)
    elif name.endswith((".mha", ".mhd")):
        _check_meta(path)
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
