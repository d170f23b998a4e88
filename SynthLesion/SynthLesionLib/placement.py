"""Where a lesion goes: an organ voxel whose surroundings are organ and vessel-free.

Equivalent to drawing the centre from the organ eroded by the lesion radius (Hu et al. 2023),
then rejecting centres with vessels inside the lesion, without eroding or filtering the whole
volume: each candidate is checked on a local box, so the cost follows the lesion size.

Candidates are random organ voxels first.  When those keep missing (a large lesion in an organ
that holds few places for it), the organ's distance map on a coarse grid (about 8 mm, computed
once per organ and kept with its statistics) narrows them to the places where a lesion of that
radius can fit, and says at once when it fits nowhere.  For lesions wider than that grid the map
is made before the first try (1.0 ms for the real liver at 1 mm): its exact edge test then rejects
most random tries without the full check on the lesion's box.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from functools import cached_property, partial
from typing import Callable, Sequence

import numpy as np
from scipy import ndimage

from MedSynthCommonLib.geometry import bounding_slices
from MedSynthCommonLib.kept import KeptResults

from .errors import PlacementError
from .organ import OrganStatistics
from .patch import PatchedMask, box_around, box_slices
from .resample import apply_separable, filter_matrix


@dataclass(frozen=True)
class VesselCriterion:
    """Vessels are voxels whose smoothed intensity exceeds ``threshold`` (image units)."""

    threshold: float
    smoothing_mm: float


@dataclass(frozen=True)
class Placement:
    centre_kji: np.ndarray
    attempts: int
    rejections: dict


#: random organ voxels tried before the distance map narrows the candidates
RANDOM_TRIES = 8
#: spacing (mm) of the coarse grid of the organ's distance map
DISTANCE_GRID_MM = 8.0


def find_centre(image: np.ndarray, organ: np.ndarray, lesions: np.ndarray | None,
                spacing_kji: np.ndarray, stats: OrganStatistics, radius_mm: float,
                vessels: VesselCriterion | None, avoid: np.ndarray | None,
                rng: np.random.Generator, max_attempts: int, clearance_mm: float | None = None,
                lesion_cores: Sequence[tuple[np.ndarray, float]] = ()) -> Placement:
    """Draw a centre whose ball of ``radius_mm`` lies in the organ, free of vessels, and whose
    ball of ``clearance_mm`` (the lesion's whole reach, deformation included; default
    ``radius_mm``) holds no earlier lesion (``lesions``: their labels, None before the first),
    so lesions never overlap.  ``lesion_cores``: balls (centre kji, radius mm) known to lie
    inside earlier lesions, which rule out the places too close to them.  Raises
    ``PlacementError`` (saying which check failed) after ``max_attempts`` draws, or at once
    when the organ's distance map shows that no place is deep enough, or that earlier lesions
    hold every place that is."""
    rejections: Counter = Counter()
    clearance_mm = radius_mm if clearance_mm is None else max(clearance_mm, radius_mm)
    ball = Ball(radius_mm, spacing_kji)
    if radius_mm >= DISTANCE_GRID_MM:  # the map's quick edge test (exact) spares most full checks
        coarse_distance_map(organ, spacing_kji, stats)

    def first_accepted(tries: np.ndarray, before: int, keep_draws: Callable[[int], None] | None = None
                       ) -> Placement | None:
        """The first of ``tries`` (N, 3) that passes every check, with the generator given back
        the draws of those after it (``keep_draws``, when they were drawn at once); None (every
        try rejected, counted) if none passes.  ``before``: tries made before these."""
        near_edge = _near_edge_by_map(spacing_kji, stats, tries, radius_mm)
        for index, centre in enumerate(tries):
            if near_edge[index] and _unchanged_around(organ, spacing_kji, centre, radius_mm):
                reason = "organ edge"
            else:
                reason = _rejection_reason(image, organ, lesions, spacing_kji, centre, radius_mm, vessels, avoid,
                                           clearance_mm, ball)
            if reason is None:
                if keep_draws is not None:
                    keep_draws(index + 1)
                return Placement(centre.astype(float), before + index + 1, dict(rejections))
            rejections[reason] += 1
        return None

    placement = None
    for attempt in range(min(RANDOM_TRIES, max_attempts)):  # random organ voxels first, drawn one by one
        centre = stats.candidates_kji[rng.integers(len(stats.candidates_kji))]  # (most searches end here)
        placement = first_accepted(centre[np.newaxis], attempt)
        if placement is not None:
            return placement
    if max_attempts > RANDOM_TRIES:  # then voxels of the places deep enough, drawn at once
        places = deep_places(organ, spacing_kji, stats, radius_mm)
        if places.size == 0:
            raise PlacementError(_nowhere_deep_enough(radius_mm, stats, organ, spacing_kji))
        places = _clear_of_lesions(places, spacing_kji, stats, clearance_mm, lesion_cores)
        if places.size == 0:
            raise PlacementError(
                f"Earlier lesions hold every place deep enough for a {2 * radius_mm:.0f} mm lesion (known from "
                "the organ's distance map without trying them). Ask for fewer or smaller lesions.")
        tries, keep_draws = _jittered_tries(places, stats.cache["distance_stride"], organ.shape,
                                            max_attempts - RANDOM_TRIES, rng)
        placement = first_accepted(tries, RANDOM_TRIES, keep_draws)
    if placement is None:
        raise PlacementError(_explain_failure(rejections, radius_mm, stats, max_attempts,
                                              beside_lesions=lesions is not None))
    return placement


def coarse_distance_map(organ: np.ndarray, spacing_kji: np.ndarray, stats: OrganStatistics) -> np.ndarray:
    """Distance (mm) from each point of a coarse grid (every ``DISTANCE_GRID_MM``) to the nearest
    grid point outside the organ or the volume; computed once per organ (kept in ``stats.cache``).

    A grid point within h (half a grid cell's diagonal) of a voxel whose ball of radius r lies
    in the organ is at least r - h from every sampled outside point, so the grid points with
    distance >= r - h cover every place a lesion of radius r fits (and rarely many more)."""
    if "distance" not in stats.cache:
        stride = np.maximum(np.round(DISTANCE_GRID_MM / np.asarray(spacing_kji, float)), 1).astype(int)
        # the input organ (the mass effect of earlier lesions moves its border by a few mm, within
        # the grid's margin; every candidate is then checked on the organ as it is)
        base = organ.base if isinstance(organ, PatchedMask) else organ
        sample = base[::stride[0], ::stride[1], ::stride[2]] != 0
        # the map is a function of the sample alone: kept, and given again to calls on an organ
        # with the same sample (every call of a loop over one case)
        key = (base.shape, tuple(int(n) for n in stride), np.asarray(spacing_kji, float).tobytes())
        distance = _kept_maps.find(key, lambda kept_sample: np.array_equal(kept_sample, sample))
        if distance is None:
            distance = _distance_map(sample, stride * np.asarray(spacing_kji, float))
            _kept_maps.keep(key, sample, distance)
        stats.cache["distance"] = distance
        stats.cache["distance_stride"] = stride
        stats.cache["distance_margin_mm"] = 0.5 * float(np.linalg.norm(stride * np.asarray(spacing_kji, float)))
    return stats.cache["distance"]


def _distance_map(sample: np.ndarray, step_mm: np.ndarray) -> np.ndarray:
    """Distance (mm, float32, read-only) from each grid point of ``sample`` (True: in the organ;
    points ``step_mm`` apart) to the nearest point outside the organ or the grid."""
    coarse = np.pad(sample, 1, constant_values=False)
    distance = np.zeros(coarse.shape, dtype=np.float32)
    # exact on the organ's box grown by one grid point each way (all outside: ``coarse`` is
    # False on its faces): for a point in the box, clamping any outside point beyond the box
    # onto the box's outer layer brings it closer along every axis.  The organ fills a small
    # part of the grid: 0.7 ms on the real liver's box at 1 mm against 4.9 ms on the grid
    hull = bounding_slices(coarse, np.ones(3, int))
    if hull is not None:
        distance[hull] = ndimage.distance_transform_edt(coarse[hull], sampling=step_mm)
    distance = distance[1:-1, 1:-1, 1:-1]
    distance.flags.writeable = False  # shared by the calls that are given it
    return distance


#: coarse distance maps kept with the organ's sample they were made from
_kept_maps: KeptResults[np.ndarray] = KeptResults(4)


def deep_places(organ: np.ndarray, spacing_kji: np.ndarray, stats: OrganStatistics, radius_mm: float) -> np.ndarray:
    """Voxel indices (N, 3) of the coarse grid points deep enough for a lesion of ``radius_mm``."""
    distance = coarse_distance_map(organ, spacing_kji, stats)
    points = np.argwhere(distance >= radius_mm - stats.cache["distance_margin_mm"])
    return points * stats.cache["distance_stride"]


def pushed_cores(cores: Sequence[tuple[np.ndarray, float]], push_mm: float,
                 spacing_kji: np.ndarray) -> list[tuple[np.ndarray, float]]:
    """``cores`` (balls inside earlier lesions, see ``_clear_of_lesions``) after a later lesion's
    mass effect moved their voxels by up to ``push_mm`` (as recorded, rounded to 1 um) and
    nearest-voxel rounding: every voxel within rho - push - d of a centre still took its label
    from one within rho, so the ball that stays sure shrinks by that much."""
    if push_mm <= 0:
        return list(cores)
    shrink = push_mm + 1e-3 + 0.5 * float(np.linalg.norm(np.asarray(spacing_kji, float)))
    return [(centre, rho - shrink) for centre, rho in cores]


def _clear_of_lesions(places: np.ndarray, spacing_kji: np.ndarray, stats: OrganStatistics, clearance_mm: float,
                      lesion_cores: Sequence[tuple[np.ndarray, float]]) -> np.ndarray:
    """The coarse ``places`` whose cells may hold a centre clear of earlier lesions.

    Every voxel within rho of a core's centre c is a lesion voxel.  For rho > d (half a voxel's
    diagonal), a centre x with |x - c| <= clearance + rho - 2d has one within ``clearance``: the
    voxel nearest the point at rho - d from c towards x.  A cell reaches h (half the grid cell's
    diagonal) from its place, so a place within clearance + rho - 2d - h of c holds no centre the
    full check would accept (1 um to spare for its float32 distances): left out, exactly."""
    if not lesion_cores or places.size == 0:
        return places
    spacing = np.asarray(spacing_kji, float)
    voxel_half_diagonal = 0.5 * float(np.linalg.norm(spacing))
    slack = 2.0 * voxel_half_diagonal + stats.cache["distance_margin_mm"] + 1e-3
    keep = np.ones(len(places), dtype=bool)
    for centre, rho in lesion_cores:
        if rho > voxel_half_diagonal:
            keep &= np.linalg.norm((places - centre) * spacing, axis=1) > clearance_mm + rho - slack
    return places[keep]


def _near_edge_by_map(spacing_kji, stats: OrganStatistics, centres: np.ndarray, radius_mm: float) -> np.ndarray:
    """(N,) bool: True where the coarse distance map proves that a voxel outside the input organ
    (or the volume) lies within ``radius_mm`` of the centre (``centres``: (N, 3) voxel indices),
    so the full check on that organ would say "organ edge": a grid point g at map distance d(g)
    from an outside point puts one within d(g) + |centre - g|.  All False where the map has not
    been made (``prepare_organ`` makes it, and so does a search that needs it).

    Exact, not a guess, with 1 um to spare for the map's float32 rounding; a box that earlier
    lesions' mass effect changed is left to the full check (``_unchanged_around``).  It spares
    the ball test on a box of up to a million voxels for most random tries of a large lesion.
    All of a search's tries are tested in one pass (float64 throughout, the node rounded half to
    even: the bits a test of one try at a time in plain Python gave)."""
    if "distance" not in stats.cache:
        return np.zeros(len(centres), dtype=bool)
    distance, stride = stats.cache["distance"], stats.cache["distance_stride"]
    nodes = np.clip(np.rint(centres / stride), 0, np.asarray(distance.shape) - 1).astype(np.intp)
    offsets_mm = (centres - nodes * stride) * np.asarray(spacing_kji, dtype=np.float64)
    reach = distance[tuple(nodes.T)].astype(np.float64) + np.sqrt(np.sum(offsets_mm ** 2, axis=1))
    return reach < radius_mm - 1e-3


def _unchanged_around(organ, spacing_kji, centre: np.ndarray, radius_mm: float) -> bool:
    """Whether the organ within ``radius_mm`` of ``centre`` is the input organ (no earlier
    lesion's mass effect moved it), where the distance map describes it."""
    return not (isinstance(organ, PatchedMask) and organ.changed(box_slices(centre, radius_mm, spacing_kji,
                                                                            organ.shape)[0]))


def _jittered_tries(places: np.ndarray, stride: np.ndarray, shape, count: int, rng: np.random.Generator
                    ) -> tuple[np.ndarray, Callable[[int], None]]:
    """``count`` tries (N, 3): each a random voxel of a random place's coarse cell, clipped to the
    volume (per try, ``rng`` draws the place and then its offsets along k, j, i), drawn at once;
    and ``keep_draws`` (see ``_drawn_at_once``)."""
    low, high = -(stride // 2), stride - stride // 2
    draws, keep_draws = _drawn_at_once(rng, np.broadcast_to(np.concatenate([[0], low]), (count, 4)),
                                       np.broadcast_to(np.concatenate([[len(places)], high]), (count, 4)))
    return np.minimum(np.maximum(places[draws[:, 0]] + draws[:, 1:], 0), np.asarray(shape) - 1), keep_draws


def _drawn_at_once(rng: np.random.Generator, lows: np.ndarray, highs: np.ndarray
                   ) -> tuple[np.ndarray, Callable[[int], None]]:
    """Integers in [lows, highs) (arrays of one shape: a row per try) drawn in one call, and
    ``keep_draws(n)``, which leaves ``rng`` as if only the first n rows had been drawn, one by
    one: a search that ends early has used what it tried and no more, so a seed's later draws
    are those of a search that drew each try as it made it (NumPy draws the elements of an array
    of bounds in order, each as one draw with its bounds would).  One call and one pass over
    the tries instead of a few NumPy calls a try: a search beside earlier lesions makes hundreds."""
    before = rng.bit_generator.state
    draws = rng.integers(lows, highs)

    def keep_draws(n: int) -> None:
        rng.bit_generator.state = before
        rng.integers(lows[:n], highs[:n])

    return draws, keep_draws


def _nowhere_deep_enough(radius_mm: float, stats: OrganStatistics, organ, spacing_kji) -> str:
    deepest = float(coarse_distance_map(organ, spacing_kji, stats).max())
    return (f"The organ is too small for this lesion size: its deepest point lies about {deepest:.0f} mm from its edge, "
            f"and a {2 * radius_mm:.0f} mm lesion needs {radius_mm:.0f} mm (organ about {stats.volume_ml:.0f} mL). "
            "Choose a smaller size class, or check that the organ mask is complete.")


#: voxels just inside a ball's sphere tested first, spread over it (``Ball.probe``)
PROBE_VOXELS = 256


class Ball:
    """The voxels of a ball of ``radius_mm`` around a voxel centre, on its box of ``shape``:
    ``box_around``'s box and squared distances for any unclipped voxel centre (the same bits).
    The same for every voxel centre of one radius and spacing, so it is made once per search.

    ``probe``: about ``PROBE_VOXELS`` voxels of the ball just inside its sphere, spread over it
    (index arrays), made at once; one outside voxel among them decides most rejections.
    ``inside`` (all its voxels) and ``shell`` (those with a face-neighbour outside the ball) are
    made when first asked (0.6 ms for a 25 mm ball at 1 mm, 1.1 ms inside a search): a search that
    ends on probes alone, as most searches for a large lesion beside earlier ones do, never makes
    them.
    """

    def __init__(self, radius_mm: float, spacing_kji):
        self.radius_mm = float(radius_mm)
        spacing = np.asarray(spacing_kji, float)
        self.half = np.ceil(self.radius_mm / spacing).astype(int)
        self.shape = tuple(int(n) for n in 2 * self.half + 1)
        self._box = box_around(self.half.astype(float), self.radius_mm, spacing, self.shape)
        # directions on a Fibonacci sphere, taken half a voxel diagonal inside the sphere and
        # rounded to voxels (which moves them by at most that much); kept only if in the ball
        step = np.arange(PROBE_VOXELS) + 0.5
        axial = 1.0 - 2.0 * step / PROBE_VOXELS
        turn = np.pi * (1.0 + np.sqrt(5.0)) * step
        ring = np.sqrt(1.0 - axial * axial)
        directions = np.stack([axial, ring * np.cos(turn), ring * np.sin(turn)])
        reach = max(self.radius_mm - 0.5 * float(np.linalg.norm(spacing)), 0.0)
        points = np.rint(directions * reach / spacing[:, None]).astype(int) + self.half[:, None]  # (repeats are harmless)
        dk, dj, di = (offsets.reshape(-1)[p] for offsets, p in zip(self._box.offsets_mm, points))
        self.probe = tuple(points[:, dk * dk + dj * dj + di * di <= self.radius_mm * self.radius_mm])

    @cached_property
    def inside(self) -> np.ndarray:
        """Boolean (``shape``): the ball's voxels."""
        return self._box.squared_distance_mm2() <= self.radius_mm * self.radius_mm

    @cached_property
    def shell(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Index arrays of the ball's voxels with a face-neighbour outside it."""
        inside = self.inside
        # the ball eroded by a cross, as ndimage.binary_erosion gives it (tested equal) but with six
        # slice ANDs: 0.45 ms for the whole ball of 30 mm at 1 mm against 1.39 ms for the erosion alone
        interior = np.zeros_like(inside)
        core = interior[1:-1, 1:-1, 1:-1]
        core[...] = inside[1:-1, 1:-1, 1:-1]
        for axis in range(3):
            for start in (0, 2):
                core &= inside[tuple(slice(start, start + n - 2) if a == axis else slice(1, n - 1)
                                     for a, n in enumerate(inside.shape))]
        return np.nonzero(inside & ~interior)


def _rejection_reason(image, organ, lesions, spacing_kji, centre, radius_mm, vessels, avoid, clearance_mm,
                      ball: Ball | None = None) -> str | None:
    """Why a lesion of ``radius_mm`` cannot be centred at ``centre``, or None when it can.
    ``ball``: the ``Ball`` of this radius, reused across tries (centres on voxels only)."""
    if ball is not None and (centre.dtype.kind in "iu" or np.array_equal(centre, np.floor(centre))):
        slices, clipped = box_slices(centre, radius_mm, spacing_kji, organ.shape)  # the ball's box
        if clipped:
            return "organ edge"
        low = [s.start for s in slices]
        # the probe near the sphere first, read where it lies (no box read, which may copy the
        # patches of earlier lesions together): one outside voxel there is the answer (most
        # rejections of a large lesion looking for room beside earlier ones on the real CT)
        probe = tuple(p + a for p, a in zip(ball.probe, low))
        if not organ.at(probe, slices).all():
            return "organ edge"
        in_organ = organ.read(slices)
        # then the shell: where the organ's edge cuts the ball, it cuts the shell too (an outside
        # voxel in the ball reaches the box's outside through the shell unless it is a hole, which
        # the whole ball's test then finds); a tenth of the voxels for most other rejections
        if not in_organ[ball.shell].all():
            return "organ edge"
        in_ball = ball.inside
    else:  # a centre off the voxel grid: its own ball
        box = box_around(centre, radius_mm, spacing_kji, organ.shape)
        if box.clipped:
            return "organ edge"
        slices, in_organ = box.slices, organ.read(box.slices)
        in_ball = box.squared_distance_mm2() <= radius_mm * radius_mm
    if not in_organ[in_ball].all():
        return "organ edge"
    if lesions is not None:  # None: no lesion placed yet, nothing to keep clear of
        reach = box_around(centre, clearance_mm, spacing_kji, organ.shape)
        if lesions[reach.slices][reach.squared_distance_mm2() <= clearance_mm * clearance_mm].any():
            return "other lesion"
    if avoid is not None and avoid[slices][in_ball].any():
        return "vessel"
    if vessels is not None and _has_vessel(image, organ, spacing_kji, centre, radius_mm, vessels):
        return "vessel"
    return None


def _has_vessel(image, organ, spacing_kji, centre, radius_mm, vessels: VesselCriterion) -> bool:
    """True when the smoothed image exceeds the vessel threshold at an organ voxel of the ball.

    The image is smoothed as ``ndimage.gaussian_filter`` smooths it (``mode="nearest"``) on the
    ball's box grown by 3 sigma, one matrix per axis (``resample.filter_matrix``) whose rows are
    the ball's box only: the values are the same up to float32 rounding, and the rows cut away,
    which a filter along an axis computes and drops, are never made."""
    margin = 3.0 * vessels.smoothing_mm
    grown = box_around(centre, radius_mm + margin, spacing_kji, image.shape)
    box = box_around(centre, radius_mm, spacing_kji, image.shape)
    matrices = []
    for axis, sigma in enumerate(vessels.smoothing_mm / spacing_kji):
        start = box.slices[axis].start - grown.slices[axis].start
        smooth = partial(ndimage.gaussian_filter1d, sigma=float(sigma), mode="nearest")
        matrices.append(filter_matrix(grown.shape[axis], smooth, slice(start, start + box.shape[axis])))
    smoothed = apply_separable(image[grown.slices], matrices, band_from=None)
    ball = box.squared_distance_mm2() <= radius_mm * radius_mm
    return bool(np.any((smoothed > vessels.threshold) & ball & (organ.read(box.slices) != 0)))


def _explain_failure(rejections: Counter, radius_mm: float, stats: OrganStatistics, attempts: int,
                     beside_lesions: bool = False) -> str:
    reason, _ = rejections.most_common(1)[0]
    counts = ", ".join(f"{k}: {v}" for k, v in rejections.most_common())
    if reason == "organ edge" and beside_lesions:  # the room may be taken: not proof of a small organ
        return (
            f"In {attempts} random tries no position was found where a {2 * radius_mm:.0f} mm lesion fits inside "
            f"the organ beside the earlier lesions (organ about {stats.volume_ml:.0f} mL; rejections: {counts}): "
            "they may hold the room it needs. Ask for fewer or smaller lesions, or a smaller size class."
        )
    if reason == "organ edge":
        return (
            f"The organ is too small for this lesion size: in {attempts} random tries no position "
            f"was found where a {2 * radius_mm:.0f} mm lesion fits inside the organ "
            f"(organ about {stats.volume_ml:.0f} mL; rejections: {counts}). Choose a smaller "
            "size class, or check that the organ mask is complete."
        )
    if reason == "vessel":
        return (
            f"No vessel-free position was found for a {2 * radius_mm:.0f} mm lesion in "
            f"{attempts} random tries (rejections: {counts}). Raise the vessel threshold "
            "(vessel_threshold_sd), turn vessel avoidance off, choose a smaller size, or place "
            "the lesion at given points."
        )
    return (
        f"No free position was found for a {2 * radius_mm:.0f} mm lesion in {attempts} tries: "
        f"earlier lesions fill the organ (rejections: {counts}). Ask for fewer or smaller lesions."
    )
