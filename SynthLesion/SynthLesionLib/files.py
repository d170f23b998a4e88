"""File-level lesion synthesis: read image and mask, synthesize, write outputs atomically."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from .config import LesionConfig
from .errors import MedSynthInputError
from .imageio import read_volume, write_json_atomic, write_volume
from .presets import get_preset
from .preview import lesion_preview, window_for
from .synthesizer import SynthesisResult, synthesize_lesions


@dataclass
class FileOutputs:
    image: Path
    label: Path
    record: Path | None
    preview: Path | None


def _refuse_overwriting_inputs(inputs: list[Path], outputs: list[Path | None]) -> None:
    resolved = {p.resolve() for p in inputs}
    for out in outputs:
        if out is not None and out.resolve() in resolved:
            raise MedSynthInputError(f"Output {out} is also an input; choose another output path (inputs are never overwritten).")


def _read_cached(path: Path):
    """``read_volume`` that keeps the last few volumes: ``build-db`` makes many variants of
    one case in a row, and should not read the same CT from disk for each.  The arrays are
    read-only (the engine never writes to its inputs); a changed file is read again."""
    if not path.exists():
        raise MedSynthInputError(f"File not found: {path}")
    stat = path.stat()
    return _read_volume_version(str(path.resolve()), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=4)
def _read_volume_version(path: str, mtime_ns: int, size: int):
    array, geometry = read_volume(path)
    array.setflags(write=False)
    return array, geometry


def synthesize_files(image_path: Path, mask_path: Path, out_image: Path, out_label: Path,
                     config: LesionConfig, seed: int, organ_label: int | None = None,
                     record_path: Path | None = None, preview_path: Path | None = None,
                     shape_masks: list[Path] | None = None) -> tuple[SynthesisResult, FileOutputs]:
    """Synthesize lesions for one image/mask pair on disk.

    The label map written holds 0 background, 1 organ, 2 lesion on exactly the input grid.
    """
    image_path, mask_path = Path(image_path), Path(mask_path)
    out_image, out_label = Path(out_image), Path(out_label)
    _refuse_overwriting_inputs([image_path, mask_path], [out_image, out_label, record_path, preview_path])
    (image, geometry), (mask, mask_geometry) = _read_cached(image_path), _read_cached(mask_path)
    templates = None
    if shape_masks:
        from .shape import ShapeTemplate

        templates = []
        for path in shape_masks:
            array, shape_geometry = read_volume(path)
            templates.append(ShapeTemplate.from_mask(array, shape_geometry.spacing_kji, name=Path(path).name))
    result = synthesize_lesions(image, mask, geometry, config, seed, organ_label=organ_label,
                                mask_geometry=mask_geometry, shape_templates=templates)
    result.case_record["inputs"] = {"image": str(image_path), "organ_mask": str(mask_path)}
    write_volume(out_image, result.image, geometry)
    write_volume(out_label, result.label_map(), geometry)
    if record_path is not None:
        write_json_atomic(record_path, result.case_record)
    if preview_path is not None:
        window = window_for(get_preset(config.preset).modality, result.case_record["organ"]["median"])
        lesion_preview(preview_path, result.image, result.organ_mask, result.lesion_labels, geometry,
                       result.records, window)
    return result, FileOutputs(out_image, out_label, record_path, preview_path)

