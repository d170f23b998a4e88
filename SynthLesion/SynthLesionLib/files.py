"""File-level lesion synthesis: read image and mask, synthesize, write the case's files as one set.

Outputs never collide with each other or with an input; each is written whole and checked;
the record is written last and describes the files beside it (their names and SHA-256), so a
case interrupted half-way has no record.  Records name their inputs by file name and content
hash (paths in hospitals often carry patient names); full paths only when asked.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from MedSynthCommonLib.errors import MedSynthInputError
from MedSynthCommonLib.imageio import read_volume, volume_extension_check, volume_writer
from MedSynthCommonLib.storage import OutputSet, bytes_writer, content_sha256, json_bytes
from MedSynthCommonLib.paths import check_distinct_paths
from MedSynthCommonLib.options import read_json

from .config import LesionConfig
from .presets import get_preset
from .preview import lesion_preview, window_for
from .records import check_regenerated
from .synthesizer import SynthesisResult, synthesize_lesions


@dataclass
class FileOutputs:
    image: Path
    label: Path
    record: Path | None
    preview: Path | None


@dataclass(frozen=True)
class InputVolume:
    """A volume read from disk (read-only array), with what a record says about it."""

    array: object
    geometry: object
    path: Path
    sha256: str

    def describe(self, full_path: bool = False) -> dict:
        described = {"file": self.path.name, "sha256": self.sha256}
        if full_path:
            described["path"] = str(self.path.resolve())
        return described


def read_input(path: Path) -> InputVolume:
    """``read_volume`` that keeps the last few volumes: ``build-db`` makes many variants of
    one case in a row, and should not read the same CT from disk for each.  The arrays are
    read-only (the engine never writes to its inputs); a changed file is read again."""
    path = Path(path)
    if not path.exists():
        raise MedSynthInputError(f"File not found: {path}")
    stat = path.stat()
    return _read_version(str(path.resolve()), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=4)
def _read_version(path: str, mtime_ns: int, size: int) -> InputVolume:
    array, geometry = read_volume(path)
    array.setflags(write=False)
    return InputVolume(array, geometry, Path(path), content_sha256(path))


#: organ statistics of the last few (image, mask, label) contents
_ORGAN_STATS: dict = {}


def _organ_stats(image: InputVolume, mask: InputVolume, organ_label: int | None):
    """The organ's statistics, measured once per image, mask and label, by content (build-db
    makes many variants of one case in a row).  None when the inputs cannot be used together
    (``synthesize_lesions`` then says why)."""
    from MedSynthCommonLib.geometry import check_same_grid

    from .synthesizer import prepare_organ

    key = (image.sha256, mask.sha256, organ_label)
    if key not in _ORGAN_STATS:
        try:
            check_same_grid(image.array, image.geometry, mask.array, mask.geometry)
            stats = prepare_organ(image.array, mask.array, image.geometry, organ_label)
        except MedSynthInputError:
            return None
        while len(_ORGAN_STATS) >= 4:
            _ORGAN_STATS.pop(next(iter(_ORGAN_STATS)))
        _ORGAN_STATS[key] = stats
    return _ORGAN_STATS[key]


def check_output_paths(inputs: dict[str, Path | None], out_image: Path, out_label: Path,
                       record_path: Path | None, preview_path: Path | None) -> None:
    """Refuse before any work: outputs with the wrong kind of extension, or outputs that name
    one file (each other or an input, through links or ``..``)."""
    volume_extension_check(out_image, "output image")
    volume_extension_check(out_label, "output label map")
    if record_path is not None and Path(record_path).suffix.lower() != ".json":
        raise MedSynthInputError(f"The record {record_path} must be a .json file.")
    if preview_path is not None and Path(preview_path).suffix.lower() != ".png":
        raise MedSynthInputError(f"The preview {preview_path} must be a .png file.")
    check_distinct_paths({"--out-image": out_image, "--out-label": out_label, "--record": record_path,
                          "--preview": preview_path}, inputs)


def read_record(path: Path) -> dict:
    """A case record written by MedSynth (plain JSON; nothing in it is executed)."""
    path = Path(path)
    from . import __version__

    record = read_json(path, "case record")
    if not isinstance(record, dict) or not {"config", "seed"} <= set(record) or not isinstance(record["config"], dict):
        raise MedSynthInputError(f"{path} is not a MedSynth case record (it has no 'config' and 'seed').")
    seed, organ_label = record["seed"], record.get("organ_label")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0 or \
            not (organ_label is None or isinstance(organ_label, int) and not isinstance(organ_label, bool)):
        raise MedSynthInputError(f"{path}: 'seed' must be a whole number >= 0 and 'organ_label' a whole number or null.")
    if record.get("engine") != "MedSynth SynthLesion" or record.get("version") != __version__:
        raise MedSynthInputError(
            f"{path} was made by {record.get('engine') or 'an unknown engine'} {record.get('version') or '(no version)'}; "
            f"this is MedSynth SynthLesion {__version__}, which makes other cases for the same seed (docs/changes.md says "
            "what changed). Make it again with the version that made it, or make this version's case for the same "
            "options and seed without --from-record.")
    inputs = record.get("inputs")
    if not isinstance(inputs, dict) or not all(isinstance(inputs.get(role), dict) and isinstance(
            inputs[role].get("sha256"), str) for role in ("image", "organ_mask")):
        raise MedSynthInputError(f"{path} names no SHA-256 of its image and organ mask, so the inputs cannot be checked "
                                 "to be the ones it was made from; regenerate from a record that MedSynth wrote.")
    return record


def check_inputs_match_record(record: dict, inputs: dict[str, InputVolume]) -> None:
    """Refuse to regenerate a case from inputs other than the ones its record was made from."""
    for role, volume in inputs.items():
        recorded = record["inputs"][role]  # read_record made sure each input has its SHA-256
        if recorded["sha256"] != volume.sha256:
            raise MedSynthInputError(
                f"The {role.replace('_', ' ')} {volume.path.name} is not the file the record was made from "
                f"({recorded.get('file')}, SHA-256 {recorded['sha256'][:12]}...); the same seed would give another case.")


def synthesize_files(image_path: Path, mask_path: Path, out_image: Path, out_label: Path,
                     config: LesionConfig, seed: int, organ_label: int | None = None,
                     record_path: Path | None = None, preview_path: Path | None = None,
                     shape_masks: list[Path] | None = None, record_full_paths: bool = False,
                     from_record: dict | None = None, progress=None,
                     keep_different: bool = False) -> tuple[SynthesisResult, FileOutputs]:
    """Synthesize lesions for one image/mask pair on disk.

    The label map written holds 0 background, 1 organ, 2 lesion on exactly the input grid.
    With ``from_record`` the inputs must be the files the record names (by content hash).
    ``progress(done, asked)`` is called after each lesion.  ``keep_different``: see ``write_case``.
    """
    image_path, mask_path = Path(image_path), Path(mask_path)
    out_image, out_label = Path(out_image), Path(out_label)
    record_path = Path(record_path) if record_path is not None else None
    preview_path = Path(preview_path) if preview_path is not None else None
    shape_masks = [Path(p) for p in shape_masks or []]
    inputs = {"--image": image_path, "--organ-mask": mask_path,
              **{f"--shape-mask {n + 1}": p for n, p in enumerate(shape_masks)}}
    check_output_paths(inputs, out_image, out_label, record_path, preview_path)
    image, mask = read_input(image_path), read_input(mask_path)
    if from_record is not None:
        check_inputs_match_record(from_record, {"image": image, "organ_mask": mask})
    templates = None
    if shape_masks:
        from .shape import ShapeTemplate

        templates = []
        for path in shape_masks:
            shape = read_input(path)
            templates.append(ShapeTemplate.from_mask(shape.array, shape.geometry.spacing_kji, name=path.name))
    result = synthesize_lesions(image.array, mask.array, image.geometry, config, seed, organ_label=organ_label,
                                mask_geometry=mask.geometry, shape_templates=templates, progress=progress,
                                organ_stats=_organ_stats(image, mask, organ_label))
    # before anything is written; its digest of the changed block, when made, is the record's too
    changed_block = check_regenerated(result, from_record) if from_record is not None else None
    result.case_record["inputs"] = {"image": image.describe(record_full_paths),
                                    "organ_mask": mask.describe(record_full_paths)}
    write_case(result, image.geometry, out_image, out_label, record_path, keep_different, changed_block)
    if preview_path is not None:
        preset = get_preset(config.preset)
        window = window_for(preset.modality, result.case_record["organ"]["median"])
        lesion_preview(preview_path, result.image, result.organ_mask, result.lesion_labels, image.geometry,
                       result.records, window, preset.units, before=image.array,
                       organ_sd=result.case_record["organ"]["robust_sd"])
    return result, FileOutputs(out_image, out_label, record_path, preview_path)


def write_case(result: SynthesisResult, geometry, out_image: Path, out_label: Path, record_path: Path | None,
               keep_different: bool = False, changed_block: dict | None = None) -> dict:
    """Image, label map and record as one set (record last, naming the others' SHA-256);
    returns the outputs' descriptions ``{role: {"file", "sha256", "bytes"}}``.  With
    ``keep_different`` a file already at a destination with other bytes is kept and the set
    is refused (``OutputInTheWay``).  ``changed_block``: ``result.changed_digest()`` when the
    caller has it already."""
    with OutputSet(keep_different) as outputs:
        staged = {"image": (outputs.add(out_image, *volume_writer(result.image, geometry)), out_image),
                  "label": (outputs.add(out_label, *volume_writer(result.label_map(), geometry)), out_label)}
        written = {role: {"file": final.name, "sha256": content_sha256(partial), "bytes": partial.stat().st_size}
                   for role, (partial, final) in staged.items()}
        result.case_record["outputs"] = {role: {"file": d["file"], "sha256": d["sha256"]} for role, d in written.items()}
        # proves a case made again the same
        result.case_record["changed_block"] = changed_block or result.changed_digest()
        if record_path is not None:
            outputs.add(record_path, *bytes_writer(json_bytes(result.case_record)))
        outputs.commit()
    return written
