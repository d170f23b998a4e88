"""Memory an image may take, checked from its header before it is decoded.

A 3.5 MB PNG can declare 60000 x 60000 pixels and a small ``.nii.gz`` a grid of billions of
voxels; decoding them takes the machine down.  ``check_declared_size`` compares what a header
declares with the memory this process can still get (the lower of the system's available
memory and the headroom of its cgroup), and refuses 2-D images larger than Pillow's own
decompression-bomb limit.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import MedSynthInputError

#: 2-D images above this many pixels are refused (Pillow raises ``DecompressionBombError``
#: above twice its 89,478,485-pixel warning limit; radiographs are under 20 megapixels)
MAX_PIXELS_2D = 2 * 89_478_485
#: bytes per voxel that processing may hold at once (a 64-bit float copy of the data)
WORKING_BYTES_PER_VALUE = 8


def _cgroup_headroom() -> int | None:
    """Bytes the cgroup (v2, else v1) still lets this process take; None without a limit."""
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            limit = Path(limit_file).read_text().strip()
            if limit == "max" or int(limit) >= 2**60:
                return None
            return max(int(limit) - int(Path(usage_file).read_text().strip()), 0)
        except (OSError, ValueError):
            continue
    return None


def available_bytes() -> int | None:
    """Memory this process can still get, in bytes (None when the platform cannot tell)."""
    found = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found = int(line.split()[1]) * 1024
                break
    except (OSError, ValueError, IndexError):
        pass
    if found is None:
        try:
            found = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            found = None
    headroom = _cgroup_headroom()
    if headroom is not None:
        found = headroom if found is None else min(found, headroom)
    return found


def _human(count: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if count < 1024 or unit == "TB":
            return f"{count:.0f} {unit}" if unit == "bytes" else f"{count:.1f} {unit}"
        count /= 1024
    return ""


def check_declared_size(path: str | os.PathLike, size: tuple[int, ...], components: int = 1) -> None:
    """Refuse an image whose header declares ``size`` (x, y[, z]) x ``components`` values that
    would not fit in memory (or a 2-D image over ``MAX_PIXELS_2D``), before it is decoded."""
    voxels = 1
    for extent in size:
        voxels *= max(int(extent), 1)
    shown = " x ".join(str(int(v)) for v in size)
    try:
        file_size = f" (the file holds {_human(os.path.getsize(path))})"
    except OSError:
        file_size = ""
    spatial = sum(1 for extent in size if extent > 1)
    if spatial <= 2 and voxels > MAX_PIXELS_2D:
        raise MedSynthInputError(
            f"{path} declares a {shown}-pixel image{file_size}, more than the {MAX_PIXELS_2D:,} pixels MedSynth "
            "decodes (a decompression bomb, or a whole-slide scan): reduce it to a radiograph's size first.")
    needed = voxels * components * WORKING_BYTES_PER_VALUE
    free = available_bytes()
    if free is not None and needed > free:
        raise MedSynthInputError(
            f"{path} declares a {shown} grid{f' of {components} values' if components > 1 else ''}{file_size}: "
            f"processing it takes about {_human(needed)} of memory and {_human(free)} is free. If the file is much "
            "smaller than that, its header is damaged or crafted; otherwise crop or resample it, or use a machine "
            "with more memory.")
