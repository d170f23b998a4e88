"""Insert synthetic lesions into a volume: the engine's one entry point.

Data flow: image + organ mask + geometry -> organ statistics (sampled) -> for each lesion:
draw parameters -> place -> mass effect -> shape, texture, capsule -> write the box back ->
measure.  Every step touches only a box around the lesion; the only whole-volume work is
copying the input into the outputs, on a helper thread while the organ is measured and the first
lesion is drawn, placed and made from the input (``BackgroundCopy``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from . import __version__
from .config import LesionConfig
from .draw import CAPSULE_MAX_SHARE, DrawnLesion, draw_and_place, draw_lesion
from .inputs import check_inputs, check_out, organ_of
from .effects import capsule_band, mass_effect, mass_effect_support_mm
from MedSynthCommonLib.errors import MedSynthInputError
from MedSynthCommonLib.threads import BackgroundCopy, one_blas_thread

from .errors import PlacementError
from MedSynthCommonLib.geometry import Geometry, bounding_slices
from .organ import OrganStatistics, check_preset_fits, measure_organ
from .patch import Box, PatchedMask, box_around
from .placement import VesselCriterion, coarse_distance_map, pushed_cores
from .presets import Preset, get_preset
from .records import LesionRecord, check_regenerated, finding_text, location_words
from .resample import gaussian_blur
from .shape import ShapeTemplate, shape_level
from .sizes import equivalent_diameter_mm
from .texture import lesion_texture


@dataclass
class SynthesisResult:
    """Outputs of one call; arrays share the input's shape and grid.

    Attributes:
        image: new image, input dtype, lesions inserted.
        organ: the organ as input plus its local changes (``organ_mask``: the uint8 0/1 volume
            after mass effect, made when first asked).
        lesion_labels: instance labels, 0 background and n for lesion n (uint8 or uint16).
        records: one ``LesionRecord`` per lesion.
        changed: (k, j, i) slices of the block outside which ``image`` is the input image,
            ``organ_mask`` the input organ and ``lesion_labels`` 0 (the hull of the boxes the
            lesions were written in, mass effect included), so that work on the changes can
            skip the rest of the volume.
        case_record: everything needed to regenerate the case (seed, config, versions).
        finding: one-paragraph structured description.
    """

    image: np.ndarray
    organ: PatchedMask  # the input organ and its changes; ``organ_mask`` makes the volume when asked
    lesion_labels: np.ndarray
    records: list[LesionRecord]
    changed: tuple[slice, slice, slice]
    case_record: dict = field(default_factory=dict)
    finding: str = ""

    @property
    def organ_mask(self) -> np.ndarray:
        """uint8 0/1 organ after mass effect (made on first use; the input mask is not changed)."""
        return self.organ.full()

    def label_map(self) -> np.ndarray:
        """uint8 label map: 0 background, 1 organ, 2 lesion."""
        label = self.organ_mask.copy()
        label[self.changed][self.lesion_labels[self.changed] > 0] = 2  # (the lesions lie in that block)
        return label

    def changed_digest(self) -> dict:
        """The ``changed`` block's slices and a BLAKE2b digest of its image, organ and lesion
        labels (types, shapes and little-endian bytes): outside the block the outputs are the
        inputs', so with the inputs this fixes every output voxel.  Written into file records,
        so that a case made again from its record is proven the same (``check_regenerated``);
        3 ms (5 at most) for a large lesion's block at 1 mm, against the files' hundreds."""
        import hashlib

        digest = hashlib.blake2b(digest_size=20)
        for block in (self.image[self.changed], self.organ.read(self.changed), self.lesion_labels[self.changed]):
            block = np.ascontiguousarray(block, dtype=block.dtype.newbyteorder("<"))
            digest.update(f"{block.dtype.str}{block.shape};".encode())
            digest.update(memoryview(block).cast("B"))
        return {"kji_slices": [[s.start, s.stop] for s in self.changed], "blake2b": digest.hexdigest()}


def synthesize_lesions(image: np.ndarray, organ_mask: np.ndarray, geometry: Geometry,
                       config: LesionConfig | None = None, seed: int = 0, *,
                       organ_label: int | None = None, mask_geometry: Geometry | None = None,
                       avoid_mask: np.ndarray | None = None,
                       shape_templates: list[ShapeTemplate] | None = None,
                       progress: Callable[[int, int], None] | None = None,
                       organ_stats: OrganStatistics | None = None, out: np.ndarray | None = None) -> SynthesisResult:
    """Insert ``config.count`` lesions into ``image`` inside ``organ_mask``.

    Args:
        image: 3-D scalar volume ``[k, j, i]`` (any numeric dtype; HU for CT).
        organ_mask: same shape; the organ is ``mask == organ_label`` or, without a label,
            ``mask != 0``.
        geometry: the image's grid (spacing in mm, RAS origin and direction).
        config: options (defaults: one small hypodense CT liver lesion).
        seed: the same inputs and seed give byte-identical outputs.
        mask_geometry: the mask's own grid, checked against the image's when given.
        avoid_mask: optional volume of structures (e.g. segmented vessels) lesions must avoid.
        shape_templates: optional lesion shapes; each lesion then takes one at random.
        progress: called as ``progress(lesions_done, lesions_asked)`` after each lesion.
        organ_stats: the organ's statistics from ``prepare_organ`` on the same image and mask,
            reused instead of measured again (many lesions, calls or variants of one case).
        out: where to write the new image instead of a new volume (by default one recycled from
            an earlier result that nothing refers to any more, see ``MedSynthCommonLib.recycling``;
            else a fresh one): an array of the image's
            shape and dtype, reused across calls (the image is copied into it), or ``image``
            itself to insert the lesions in place (no copy at all).  The values are the same
            either way; ``result.image`` is ``out``.  If the call fails, no lesion is left in
            ``out``: in place, the image is as given; a separate ``out`` holds the image's copy.

    Inputs are never modified unless ``out`` is the image.  Raises ``MedSynthInputError`` for bad input.

    Example:
        >>> from SynthLesionLib import make_ct_phantom, synthesize_lesions, LesionConfig
        >>> ph = make_ct_phantom(shape=(40, 96, 96), seed=1)
        >>> result = synthesize_lesions(ph.image, ph.organs == 1, ph.geometry, LesionConfig(size_class="small"), seed=7)
        >>> result.records[0].size_class
        'small'
    """
    config = (config or LesionConfig()).validate()
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise MedSynthInputError(f"The seed must be a whole number >= 0, got {seed!r}.")
    check_inputs(image, organ_mask, geometry, mask_geometry, avoid_mask)
    check_out(out, image, organ_mask, avoid_mask)
    base = organ_of(organ_mask, organ_label)  # read where it is when it can be: its changes go to patches
    preset = get_preset(config.preset).for_phase(config.phase)
    _, *lesion_seeds = np.random.SeedSequence(seed).spawn(1 + config.lesion_count)  # (the first: organ samples, once)
    organ = PatchedMask(base.view(np.uint8))  # same bytes; uint8 so that it can be resampled
    output = BackgroundCopy(image, out)  # the new image, copied while the organ and first lesion are worked out
    undo = [] if out is not None else None  # the boxes a given ``out`` held before each write
    written = []  # the boxes written in
    try:
        if organ_stats is None:
            stats = measure_organ(image, base, geometry)
        elif organ_stats.cache.get("shape") != image.shape:
            raise MedSynthInputError("organ_stats were measured on another grid; measure them on this image "
                                     "(prepare_organ) or leave them out.")
        else:
            stats = organ_stats
        stats.cache["shape"] = image.shape
        check_preset_fits(stats, preset)
        lesions = np.zeros(image.shape, dtype=np.uint8 if config.lesion_count < 255 else np.uint16)
        vessels = _vessel_criterion(config, preset, stats)
        avoid = None if avoid_mask is None else np.asarray(avoid_mask) != 0

        records, warnings, shortfall = [], [], []
        strength = preset.mass_effect if config.mass_effect is None else float(config.mass_effect)
        with one_blas_thread():  # small kernels: parallelism belongs to lesions, cases and workers
            _insert_all(output, organ, lesions, records, warnings, shortfall, lesion_seeds, config, preset, stats,
                        shape_templates, geometry, vessels, avoid, strength, progress, undo, written)
    except BaseException:
        for slices, before in reversed(undo or []):  # a given ``out`` is left as it was
            output.array[slices] = before
        raise
    finally:
        image_out = output.wait()
    if not records:
        raise PlacementError(f"No lesion could be placed: {shortfall[0]}")
    if shortfall:
        warnings.insert(0, f"Placed {len(records)} of the {config.lesion_count} lesions asked for; the others fit "
                           f"nowhere without overlapping ({'; '.join(shortfall)}).")
    case_record = {
        "engine": "MedSynth SynthLesion",
        "version": __version__,
        "seed": int(seed),
        "config": config.to_dict(),
        "preset": preset.to_dict(),
        "organ_label": organ_label,
        "organ": stats.to_dict(),
        "geometry": geometry.to_dict(),
        "shape": list(image.shape),
        "dtype": str(image.dtype),
        "lesions": [r.to_dict() for r in records],
        "lesions_asked": config.lesion_count,
        "lesions_placed": len(records),
        "warnings": warnings,
    }
    finding = finding_text(records, preset.organ, preset.modality, preset.units)
    if shortfall:
        finding += f" ({len(records)} of {config.lesion_count} asked for fitted in the {preset.organ}.)"
    case_record["finding"] = finding
    changed = tuple(slice(min(box[a].start for box in written), max(box[a].stop for box in written))
                    for a in range(3))
    return SynthesisResult(image_out, organ, lesions, records, changed, case_record, finding)


def _insert_all(output, organ, lesions, records, warnings, shortfall, lesion_seeds, config, preset, stats,
                shape_templates, geometry, vessels, avoid, strength, progress, undo, written) -> None:
    """Place and insert every asked lesion in turn (appending to ``records``, ``warnings`` and
    ``shortfall``; to ``written`` the slices of each box written in; and to ``undo``, when not
    None, each box of the output as it was before its write)."""
    cores = []  # (centre kji, radius mm) of a ball inside each lesion placed: rules out places near it
    for asked, lesion_seed in enumerate(lesion_seeds, start=1):
        rng = np.random.default_rng(lesion_seed)
        index = len(records) + 1  # lesions are numbered as placed
        if config.centres_ras is not None:
            drawn = draw_lesion(config, preset, stats, rng, shape_templates, geometry)
            centre, attempts, draws = _given_centre(config.centres_ras[asked - 1], geometry, organ, asked), 0, 1
        else:
            try:
                placed = lesions if records else None  # before the first lesion there is nothing to keep clear of
                drawn, centre, attempts, draws = draw_and_place(config, preset, stats, rng, shape_templates,
                                                                 output.readable(), organ, placed, geometry, vessels,
                                                                 avoid, cores)
            except PlacementError as error:
                if not config.allow_fewer or (not records and asked == config.lesion_count):
                    raise
                shortfall.append(f"lesion {asked} of {config.lesion_count}: {error}")
                if progress is not None:
                    progress(asked, config.lesion_count)
                continue
        record, core_mm, slices = _insert(output, organ, lesions, index, centre, drawn, strength, attempts, draws,
                                          geometry, stats, preset, rng, undo)
        records.append(record)
        written.append(slices)
        cores = pushed_cores(cores, record.mass_effect_max_push_mm, geometry.spacing_kji) + [(centre, core_mm)]
        if records[-1].clipped_voxels:
            info = np.iinfo(output.array.dtype)
            warnings.append(f"Lesion {index}: {records[-1].clipped_voxels} voxel(s) went beyond the image type's range "
                            f"({output.array.dtype}: {info.min} to {info.max}) and were clipped to it.")
        if records[-1].lesion_type != drawn.lesion_type:
            warnings.append(f"Lesion {index} was drawn {drawn.lesion_type} but measures "
                            f"{records[-1].contrast_measured:+.1f} {preset.units} against the organ (its components "
                            f"outweigh it); it is recorded as {records[-1].lesion_type}.")
        coarsest = float(geometry.spacing.max())
        if drawn.diameter_mm < 2.0 * coarsest:
            warnings.append(f"Lesion {index} ({drawn.diameter_mm:.1f} mm drawn) is less than two voxels across on this "
                            f"grid ({coarsest:g} mm along its coarsest axis); its measured size "
                            f"({records[-1].equivalent_diameter_mm:.1f} mm) reflects the voxels more than the lesion.")
        if progress is not None:
            progress(asked, config.lesion_count)


def regenerate(image: np.ndarray, organ_mask: np.ndarray, geometry: Geometry, case_record: dict,
               **kwargs) -> SynthesisResult:
    """Rebuild a case from its record (same inputs give byte-identical outputs).  Raises
    ``MedSynthInputError`` when the case made is not the one the record describes
    (``check_regenerated``): another engine's record, or other inputs."""
    result = synthesize_lesions(image, organ_mask, geometry, LesionConfig.from_dict(case_record["config"]),
                                case_record["seed"], organ_label=case_record.get("organ_label"), **kwargs)
    check_regenerated(result, case_record)
    return result


def prepare_organ(image: np.ndarray, organ_mask: np.ndarray, geometry: Geometry,
                  organ_label: int | None = None) -> OrganStatistics:
    """The statistics of an organ (parenchyma level and spread, candidate places, its distance
    map once a large lesion needs it), to pass as ``organ_stats`` to every ``synthesize_lesions``
    call on this image and mask: measured once instead of once per call."""
    organ = organ_of(organ_mask, organ_label)
    stats = measure_organ(np.asarray(image), organ, geometry)
    stats.cache["shape"] = np.asarray(image).shape
    coarse_distance_map(organ, geometry.spacing_kji, stats)  # placement's quick test (~10 ms for 48 M voxels, once)
    return stats


def _vessel_criterion(config: LesionConfig, preset: Preset, stats: OrganStatistics) -> VesselCriterion | None:
    k = config.vessel_threshold_sd if config.vessel_threshold_sd is not None else preset.vessel_threshold_sd
    if not config.avoid_vessels or k is None or stats.robust_sd <= 0:
        return None
    return VesselCriterion(stats.median + k * stats.robust_sd, preset.vessel_smoothing_mm)


def _given_centre(ras, geometry: Geometry, organ: PatchedMask, index: int) -> np.ndarray:
    kji = np.round(geometry.ras_to_kji(np.asarray(ras, dtype=float))).astype(int)
    if np.any(kji < 0) or np.any(kji >= organ.shape):
        raise MedSynthInputError(f"Lesion point {index} at RAS {list(ras)} mm lies outside the image.")
    if not organ.read(tuple(slice(v, v + 1) for v in kji)).any():
        raise MedSynthInputError(
            f"Lesion point {index} at RAS {list(ras)} mm lies outside the organ; move it inside the organ."
        )
    return kji.astype(float)


def _insert(output: BackgroundCopy, organ: PatchedMask, lesions: np.ndarray, index: int, centre: np.ndarray,
            drawn: DrawnLesion, strength: float, attempts: int, draws: int, geometry: Geometry, stats: OrganStatistics,
            preset: Preset, rng: np.random.Generator, undo: list | None = None
            ) -> tuple[LesionRecord, float, tuple[slice, slice, slice]]:
    """Insert one lesion at ``centre``; returns its record, the radius (mm) of the ball around
    ``centre`` whose voxels are all the lesion's (0 when the centre voxel is not), and the slices
    of the box outside which nothing was written (image, organ, labels)."""
    spacing = geometry.spacing_kji
    mean_radius = drawn.diameter_mm / 2.0
    reach = drawn.shape.bounding_radius_mm + 3.0 * drawn.edge_blur_mm
    if strength > 0:
        reach = max(reach, mass_effect_support_mm(mean_radius))
    box = box_around(centre, reach, spacing, organ.shape)
    source = output.readable()
    region = source[box.slices].astype(_working_dtype(source.dtype))
    # mass effect moves the organ's border: a private patch then; else the organ as it is
    organ_box = organ.writable(box.slices) if strength > 0 else organ.read(box.slices)
    lesion_box = lesions[box.slices]
    level = shape_level(box, spacing, drawn.shape, rng)
    # the core keeps the unwarped tissue: only its noise shows through the lesion
    core = level <= 1.0 - 3.0 * drawn.edge_blur_mm / mean_radius
    push = 0.0
    if strength > 0:
        local = box.local_slices_within(mass_effect_support_mm(mean_radius), spacing)
        push = mass_effect(box.crop(local), spacing, mean_radius, strength, region[local],
                           [organ_box[local], lesion_box[local]], keep=core[local])

    # everything else happens on the block that holds the lesion and its blurred edge
    sigma = drawn.edge_blur_mm / spacing
    shape_mask = level <= 1.0
    local = bounding_slices(shape_mask, np.ceil(3.0 * sigma) + 1)
    in_organ = organ_box.view(bool)
    inside = shape_mask & in_organ
    if local is None or not inside[local].any():
        raise PlacementError(f"Lesion {index} falls entirely outside the organ; place it further inside.")
    if np.any(lesion_box[inside] != 0):  # only given centres can come this close
        other = int(lesion_box[inside][lesion_box[inside] != 0][0])
        raise MedSynthInputError(f"Lesions {other} and {index} would overlap: their centres lie closer than their "
                                 "sizes allow; move the points apart or choose a smaller --size.")
    level, inside, in_organ, part = level[local], inside[local], in_organ[local], region[local]
    alpha = gaussian_blur(inside.astype(np.float32), sigma) * in_organ
    texture = lesion_texture(inside.shape, spacing, drawn.texture_sd, drawn.texture_grain_mm,
                             drawn.texture_blur_mm, rng)
    if drawn.heterogeneity_sd > 0:  # smooth, low-frequency variation across the lesion
        texture += lesion_texture(inside.shape, spacing, drawn.heterogeneity_sd, drawn.heterogeneity_grain_mm,
                                  drawn.heterogeneity_grain_mm / 2.0, rng)
    part += alpha * (np.float32(drawn.contrast) + texture)
    bands = [(drawn.capsule_contrast, drawn.capsule_width_mm)] if drawn.capsule_contrast else []
    if "rim" in drawn.components:
        bands.append((drawn.components["rim"]["contrast"], drawn.components["rim"]["width_mm"]))
    lesion_effect = float(np.mean(alpha[inside])) * drawn.contrast  # the lesion's mean contrast after blurring
    for band_contrast, band_width in bands:
        rim = capsule_band(level, band_width, mean_radius) & in_organ
        rim_alpha = gaussian_blur(rim.astype(np.float32), sigma) * in_organ
        band_effect = float(np.mean(rim_alpha[inside])) * band_contrast
        if band_effect * lesion_effect < 0 and abs(band_effect) > CAPSULE_MAX_SHARE * abs(lesion_effect):
            band_contrast *= CAPSULE_MAX_SHARE * abs(lesion_effect) / abs(band_effect)  # never cancel the lesion
        part += rim_alpha * np.float32(band_contrast)
    _add_components(part, level, inside, alpha, drawn, spacing, mean_radius)
    values, clipped = _cast(region, source.dtype)
    out = output.wait()  # the first write: the copy must be whole
    if undo is not None:
        undo.append((box.slices, out[box.slices].copy()))
    out[box.slices] = values
    lesion_box[local][inside] = index
    core_mm = _inscribed_radius_mm(box.crop(local), inside, spacing)

    centre_ras = geometry.kji_to_ras(centre)
    volume_mm3 = float(inside.sum()) * geometry.voxel_volume_mm3
    mean_intensity = float(out[box.crop(local).slices][inside].astype(np.float64).mean())
    shape = drawn.shape
    return LesionRecord(
        index=index,
        size_class=drawn.size_class,
        lesion_type=measured_type(drawn.lesion_type, mean_intensity - stats.median),
        centre_ras=[round(float(v), 3) for v in centre_ras],
        centre_ijk=[int(v) for v in np.round(centre[::-1])],
        location=location_words(centre_ras, stats.centroid_ras, stats.spread_ras),
        target_diameter_mm=round(drawn.diameter_mm, 3),
        semi_axes_mm=[round(float(a), 3) for a in shape.semi_axes_mm],
        rotation_kji=np.round(shape.rotation, 6).tolist(),
        shape_template=shape.template.name if shape.template is not None else None,
        elastic_magnitude_mm=round(shape.elastic_magnitude_mm, 3),
        elastic_scale_mm=round(shape.elastic_scale_mm, 3),
        edge_blur_mm=round(drawn.edge_blur_mm, 3),
        texture_grain_mm=round(drawn.texture_grain_mm, 3),
        texture_blur_mm=round(drawn.texture_blur_mm, 3),
        texture_sd=round(drawn.texture_sd, 3),
        heterogeneity_sd=round(drawn.heterogeneity_sd, 3),
        heterogeneity_grain_mm=round(drawn.heterogeneity_grain_mm, 3),
        components=drawn.components,
        contrast_target=round(drawn.contrast, 3),
        capsule_contrast=round(drawn.capsule_contrast, 3),
        capsule_width_mm=round(drawn.capsule_width_mm, 3) if drawn.capsule_contrast else 0.0,
        mass_effect=strength,
        mass_effect_max_push_mm=round(push, 3),
        placement_attempts=attempts,
        lesion_draws=draws,
        volume_ml=round(volume_mm3 / 1000.0, 5),
        equivalent_diameter_mm=round(equivalent_diameter_mm(volume_mm3), 3),
        mean_intensity=round(mean_intensity, 3),
        organ_median=round(stats.median, 3),
        contrast_measured=round(mean_intensity - stats.median, 3),
        lesion_type_drawn=drawn.lesion_type,
        clipped_voxels=clipped,
    ), core_mm, box.slices


def _inscribed_radius_mm(block: Box, inside: np.ndarray, spacing: np.ndarray) -> float:
    """Distance (mm) from the block's centre to its nearest voxel outside the lesion (``inside``
    False), or beyond the block: every voxel closer than that is the lesion's.  0 unless the
    centre is a voxel of the block and of the lesion."""
    at_centre = [np.flatnonzero(offsets.reshape(-1) == 0) for offsets in block.offsets_mm]
    if any(hit.size != 1 for hit in at_centre) or not inside[tuple(int(hit[0]) for hit in at_centre)]:
        return 0.0
    outside = block.squared_distance_mm2()[~inside]
    nearest = float(np.sqrt(outside.min())) if outside.size else np.inf
    for axis, offsets in enumerate(block.offsets_mm):
        offsets = offsets.reshape(-1)
        nearest = min(nearest, abs(float(offsets[0]) - spacing[axis]), abs(float(offsets[-1]) + spacing[axis]))
    return nearest


def measured_type(drawn_type: str, contrast_measured: float) -> str:
    """The type a lesion shows: the drawn one, unless its measured contrast has the other sign
    (a hypodense lesion whose calcifications or rim outweigh it measures, and is, hyperdense)."""
    if drawn_type == "hypo" and contrast_measured > 0:
        return "hyper"
    if drawn_type == "hyper" and contrast_measured < 0:
        return "hypo"
    return drawn_type


def _add_components(part: np.ndarray, level: np.ndarray, inside: np.ndarray, alpha: np.ndarray, drawn: DrawnLesion,
                    spacing: np.ndarray, mean_radius: float) -> None:
    """Necrotic core (darker, on the inner part of the radius, with an edge as soft as the
    lesion's) and calcified foci (small bright Gaussian blobs), in place on the lesion's block.
    Each is evaluated where it lives only (the level set for the core, a small box per focus)."""
    necrosis = drawn.components.get("necrosis")
    if necrosis:
        ramp = drawn.edge_blur_mm / max(mean_radius, 1e-6)  # the edge width in level units
        core = np.clip((necrosis["radius_fraction"] - level) / (2.0 * ramp) + 0.5, 0.0, 1.0).astype(np.float32)
        part += core * alpha * np.float32(necrosis["contrast"])
    calcifications = drawn.components.get("calcifications", [])
    if calcifications:
        centre = np.array([np.mean(axis) for axis in np.nonzero(inside)])
        for focus in calcifications:
            sigma_mm = focus["diameter_mm"] / 2.355  # the diameter is the blob's full width at half maximum
            where = centre + np.asarray(focus["position"]) * mean_radius / spacing
            reach = np.ceil(3.0 * sigma_mm / spacing).astype(int)
            low = np.maximum(np.floor(where).astype(int) - reach, 0)
            high = np.minimum(np.floor(where).astype(int) + reach + 1, inside.shape)
            if np.any(high <= low):
                continue
            box = tuple(slice(a, b) for a, b in zip(low, high))
            grid = np.meshgrid(*[np.arange(a, b, dtype=np.float32) for a, b in zip(low, high)], indexing="ij")
            squared = sum(((grid[a] - where[a]) * spacing[a]) ** 2 for a in range(3))
            part[box] += np.exp(-squared / (2.0 * sigma_mm ** 2)).astype(np.float32) * inside[box] * \
                np.float32(focus["contrast"])


def _working_dtype(dtype: np.dtype) -> type:
    """float32 when it holds every value of ``dtype`` exactly (int16, uint16, float32...),
    else float64, so that voxels the lesion does not touch come back bit-identical."""
    return np.float32 if np.can_cast(dtype, np.float32, casting="safe") else np.float64


def _cast(values: np.ndarray, dtype: np.dtype) -> tuple[np.ndarray, int]:
    """Float box back to the image's dtype (rounded and clipped for integer types), and how
    many voxels had to be clipped to the type's range (reported, never silent)."""
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        rounded = np.rint(values)
        clipped = int(np.count_nonzero((rounded < info.min) | (rounded > info.max)))
        return np.clip(rounded, info.min, info.max).astype(dtype), clipped
    return values.astype(dtype), 0
