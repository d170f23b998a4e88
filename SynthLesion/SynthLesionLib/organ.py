"""Organ statistics from random voxel samples.

Scanning a whole 512x512x150 volume costs as much as copying it, so nothing here does: the
organ's parenchyma level, its spread and a pool of candidate lesion centres all come from a
few hundred thousand random voxel look-ups.  Only when the organ is too small to be hit by
random draws is the mask scanned exactly (which also proves that an organ is empty).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from MedSynthCommonLib.errors import MedSynthInputError
from MedSynthCommonLib.geometry import Geometry
from MedSynthCommonLib.kept import KeptResults
from .errors import PresetMismatchError
from .presets import Preset

#: a CT has air (-1000 HU) or fat (-100 HU): at least 1% of its voxels at or below this
CT_EVIDENCE_HU = -100.0
MAD_TO_SD = 1.4826  # robust std of a normal distribution from its median absolute deviation
_WANTED_SAMPLES = 2000
_DRAW_BATCH = 65_536
_MAX_DRAWS = 2_000_000


@dataclass(frozen=True)
class OrganStatistics:
    """Parenchyma statistics and candidate centres of one organ.

    Attributes:
        median: median intensity of the organ (image units: HU for CT).
        robust_sd: 1.4826 x median absolute deviation of the organ's intensities.
        volume_ml: organ volume (mL), estimated from the hit rate of random draws.
        candidates_kji: (N, 3) int array of random voxel indices inside the organ.
        centroid_ras: mean RAS position (mm) of the candidates.
        image_low_percentile: 1st percentile of the whole image (random draws), used to
            recognise CT (air and fat below -100 HU) against MR.
    """

    median: float
    robust_sd: float
    volume_ml: float
    candidates_kji: np.ndarray
    centroid_ras: np.ndarray
    spread_ras: np.ndarray
    image_low_percentile: float
    #: correlation length (mm) of the parenchyma's noise, measured on a few patches; None if
    #: no patch fits inside the organ
    noise_grain_mm: float | None = None
    #: what placement derives from the organ once and reuses (its coarse distance map)
    cache: dict = field(default_factory=dict, compare=False, repr=False)

    def to_dict(self) -> dict:
        return {
            "median": self.median,
            "robust_sd": self.robust_sd,
            "volume_ml_estimate": self.volume_ml,
            "centroid_ras_mm": self.centroid_ras.tolist(),
            "spread_ras_mm": self.spread_ras.tolist(),
            "image_p1": self.image_low_percentile,
            "noise_grain_mm": self.noise_grain_mm,
        }


#: seed of the organ's random samples: fixed, so that the statistics of an organ do not depend
#: on the lesion seed and can be measured once and reused for every lesion, call and variant
ORGAN_SAMPLE_SEED = 20231


#: organs whose measurement is kept, with the values it read (see ``measure_organ``)
KEPT_MEASUREMENTS = 4
#: a measurement that drew more random voxels than this is not kept (a small organ's search)
_KEEP_UP_TO_DRAWS = 4 * _DRAW_BATCH
_kept: KeptResults[OrganStatistics] = KeptResults(KEPT_MEASUREMENTS)


class _Reads:
    """Every voxel value one measurement read: flat indices and values of the organ and of the
    image, and the boxes the noise grain was measured on."""

    def __init__(self):
        self.keep = True  # False when the measurement is not to be kept
        self.organ_index, self.organ_values = [], []
        self.image_index, self.image_values = [], []
        self.boxes: list[tuple[tuple[slice, ...], np.ndarray, np.ndarray]] = []

    def done(self) -> None:
        self.organ_index, self.organ_values, self.image_index, self.image_values = (
            np.concatenate(parts) for parts in (self.organ_index, self.organ_values, self.image_index,
                                                self.image_values))

    def hold(self, image: np.ndarray, organ: np.ndarray) -> bool:
        """Whether ``image`` and ``organ`` hold the same values, bit for bit (-0.0 is not 0.0),
        where this measurement read."""
        return (_same_bits(organ.reshape(-1)[self.organ_index], self.organ_values)
                and _same_bits(image.reshape(-1)[self.image_index], self.image_values)
                and all(_same_bits(image[box], image_box) and _same_bits(organ[box], organ_box)
                        for box, image_box, organ_box in self.boxes))


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    """Same type, shape and bytes (blocks of a Fortran-ordered or strided volume included)."""
    return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(
        np.ascontiguousarray(a).view(np.uint8), np.ascontiguousarray(b).view(np.uint8))


def measure_organ(image: np.ndarray, organ: np.ndarray, geometry: Geometry,
                  rng: np.random.Generator | None = None) -> OrganStatistics:
    """Sample the organ (``organ`` is a boolean volume on the image grid).  ``rng`` defaults to a
    generator seeded ``ORGAN_SAMPLE_SEED``: the same image and organ give the same statistics.

    With that default, the measurement is kept (the last ``KEPT_MEASUREMENTS`` organs) with
    every voxel value it read, and a later call whose image and organ hold the same values there
    gets it again without measuring: the statistics are a function of those values alone, so
    this is exact whatever else changed (0.4 against 2-3 ms for the liver on a 1 mm CT).  The
    returned statistics never share their ``cache`` (placement's distance map, which reads the
    whole organ) with another call's."""
    if rng is not None:
        return _measure(image, organ, geometry, rng, None)
    key = (image.shape, image.dtype.str, organ.dtype.str, np.asarray(geometry.origin, float).tobytes(),
           np.asarray(geometry.spacing, float).tobytes(), np.asarray(geometry.direction, float).tobytes())
    kept = _kept.find(key, lambda reads: reads.hold(image, organ))
    if kept is not None:
        return replace(kept, cache={})
    reads = _Reads()
    stats = _measure(image, organ, geometry, np.random.default_rng(ORGAN_SAMPLE_SEED), reads)
    if reads.keep:
        _kept.keep(key, reads, replace(stats, cache={}))
    return stats


def _measure(image: np.ndarray, organ: np.ndarray, geometry: Geometry, rng: np.random.Generator,
             reads: _Reads | None) -> OrganStatistics:
    """``measure_organ``'s measurement; ``reads``, when given, is told every value read."""
    flat_organ = organ.reshape(-1)
    flat_image = image.reshape(-1)
    drawn = 0
    hits = []
    n_hits = 0
    while n_hits < _WANTED_SAMPLES and drawn < _MAX_DRAWS:
        idx = rng.integers(0, flat_organ.size, _DRAW_BATCH)
        if drawn == 0:
            image_draws = flat_image[idx[:10000]]
            if reads is not None:
                reads.image_index.append(idx[:10000])
                reads.image_values.append(image_draws)
        drawn += idx.size
        in_organ = flat_organ[idx]
        inside = idx[in_organ]
        if reads is not None:
            reads.organ_index.append(idx)
            reads.organ_values.append(in_organ)
        hits.append(inside)
        n_hits += inside.size
    flat_hits = np.concatenate(hits)
    fraction = n_hits / drawn
    if n_hits < 50:
        # Too small for random draws to find it reliably: scan it (exact, and proves emptiness).
        flat_hits = np.flatnonzero(flat_organ)
        if flat_hits.size == 0:
            raise MedSynthInputError(
                "The organ mask is empty: it has no voxel inside the image. Check that the "
                "right segment or label value was chosen and that the mask covers this image."
            )
        fraction = flat_hits.size / flat_organ.size
        if flat_hits.size > _WANTED_SAMPLES:
            flat_hits = rng.choice(flat_hits, _WANTED_SAMPLES, replace=False)
    values = flat_image[flat_hits]
    if reads is not None:
        reads.image_index.append(flat_hits)
        reads.image_values.append(values)
    values = values.astype(np.float64)
    if not np.all(np.isfinite(values)) or not np.all(np.isfinite(image_draws.astype(np.float64))):
        raise MedSynthInputError(
            "The image contains NaN or infinite values; replace them (e.g. with the background "
            "value) before synthesis."
        )
    median = float(np.median(values))
    robust_sd = float(MAD_TO_SD * np.median(np.abs(values - median)))
    if robust_sd == 0.0:
        robust_sd = float(np.std(values))
    kji = np.stack(np.unravel_index(flat_hits, organ.shape), axis=1)
    ras = geometry.kji_to_ras(kji)
    grain = _noise_grain_mm(image, organ, geometry.spacing_kji, kji, rng, reads)
    if reads is not None:
        reads.keep = n_hits >= 50 and drawn <= _KEEP_UP_TO_DRAWS  # a scan read every voxel; a long search, many
        if reads.keep:
            reads.done()
    return OrganStatistics(
        median=median,
        robust_sd=robust_sd,
        volume_ml=fraction * organ.size * geometry.voxel_volume_mm3 / 1000.0,
        candidates_kji=kji,
        centroid_ras=ras.mean(axis=0),
        spread_ras=ras.std(axis=0),
        image_low_percentile=float(np.percentile(image_draws, 1)),
        noise_grain_mm=grain,
    )


#: patches (voxels per side) and how many, for the noise correlation length
_PATCH = 9
_PATCHES = 4


def _noise_grain_mm(image: np.ndarray, organ: np.ndarray, spacing_kji: np.ndarray, candidates: np.ndarray,
                    rng: np.random.Generator, reads: _Reads | None = None) -> float | None:
    """Correlation length (mm) of the organ's noise: on small patches inside the organ, the
    image minus its local mean (Gaussian, 2 voxels) is correlated with itself (see
    ``features``); the median over patches.  A few thousand voxels are read, not the volume."""
    from .features import correlation_length_mm

    from scipy import ndimage

    half = _PATCH // 2
    lengths = []
    for index in rng.permutation(len(candidates))[: _PATCHES * 4]:
        centre = candidates[index]
        box = tuple(slice(c - half, c + half + 1) for c in centre)
        if any(c - half < 0 or c + half + 1 > n for c, n in zip(centre, image.shape)):
            continue
        inside, values = organ[box], image[box]
        if reads is not None:
            reads.boxes.append((box, values.copy(), inside.copy()))
        if inside.mean() < 0.9:
            continue
        patch = values.astype(np.float64)
        residual = patch - ndimage.gaussian_filter(patch, 2.0, mode="nearest")
        length = correlation_length_mm(residual, inside.astype(bool), spacing_kji)
        if length is not None:
            lengths.append(length)
        if len(lengths) >= _PATCHES:
            break
    return float(np.median(lengths)) if lengths else None


def check_preset_fits(stats: OrganStatistics, preset: Preset) -> None:
    """Refuse a preset whose modality or organ intensity does not match the image."""
    low, high = preset.organ_median_range
    if preset.modality == "CT":
        if not low <= stats.median <= high:
            raise PresetMismatchError(
                f"Preset {preset.name!r} expects a CT {preset.organ} with median {low:g} to "
                f"{high:g} HU, but the organ's median is {stats.median:.1f}. If this is MR, "
                "use an MR preset (mr-liver, mr-brain, mr-generic); if it is CT stored without "
                "rescale (water = 1024), apply the rescale slope/intercept first."
            )
        if stats.image_low_percentile > CT_EVIDENCE_HU:
            raise PresetMismatchError(
                f"Preset {preset.name!r} is for CT in HU, but this image does not look like CT: its 1st percentile "
                f"is {stats.image_low_percentile:.0f}, while in a CT at least 1% of the voxels are air (-1000 HU) "
                "or fat (-100 HU). "
                "If this is MR, use an MR preset (mr-liver, mr-brain, mr-generic); if it is CT stored without "
                "rescale (water = 1024), apply the rescale slope/intercept first."
            )
    else:
        if stats.image_low_percentile < -500.0:
            raise PresetMismatchError(
                f"Preset {preset.name!r} is for MR, but 1% of the image is below -500 "
                "(air in HU), which suggests CT. Use a CT preset (ct-liver, ct-kidney, "
                "ct-pancreas, ct-generic)."
            )
        if stats.robust_sd <= 0.0:
            raise PresetMismatchError(
                "The organ has no intensity variation, but MR presets measure contrast in "
                "units of the organ's spread. Use a CT preset (HU) or a real image."
            )
