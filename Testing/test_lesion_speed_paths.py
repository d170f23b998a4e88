"""The faster paths of the lesion engine give what the plain ones give: organ statistics
measured once and reused, placement from the organ's distance map (and at once "nowhere"),
the organ's changes kept in patches (the input never written), and BLAS on one thread inside
the lesion work (the separable matrices: ``test_separable_maps.py``)."""

from __future__ import annotations

import os

import numpy as np
import pytest

from SynthLesionLib import LesionConfig, PlacementError, make_ct_phantom, prepare_organ, synthesize_lesions
from SynthLesionLib.patch import PatchedMask


@pytest.fixture(scope="module")
def phantom():
    return make_ct_phantom(shape=(40, 128, 128), spacing=(2.0, 2.0, 3.0), seed=1)


def test_reused_organ_statistics_give_the_same_case(phantom):
    organ = phantom.organ_mask("liver")
    stats = prepare_organ(phantom.image, organ, phantom.geometry)
    for seed in (0, 5):
        config = LesionConfig(size_class="mix", count=3, mass_effect=40.0)
        plain = synthesize_lesions(phantom.image, organ, phantom.geometry, config, seed)
        reused = synthesize_lesions(phantom.image, organ, phantom.geometry, config, seed, organ_stats=stats)
        assert np.array_equal(plain.image, reused.image) and np.array_equal(plain.label_map(), reused.label_map())
    other = make_ct_phantom(shape=(40, 120, 128), spacing=(2.0, 2.0, 3.0), seed=2)
    with pytest.raises(Exception, match="another grid"):
        synthesize_lesions(other.image, other.organ_mask("liver"), other.geometry, LesionConfig(), 0, organ_stats=stats)


def test_a_lesion_that_fits_nowhere_is_known_at_once(phantom):
    organ, image = _slab(phantom)  # 1.4 L, but 30 mm thick: no 40-80 mm lesion fits anywhere
    with pytest.raises(PlacementError, match="deepest point lies about"):
        synthesize_lesions(image, organ, phantom.geometry, LesionConfig(size_class="large", allow_fewer=False), 0)


def _slab(phantom):
    organ = np.zeros(phantom.image.shape, bool)
    organ[15:25, 10:118, 10:118] = True
    noise = np.random.default_rng(0).normal(0, 12, phantom.image.shape)
    return organ, np.where(organ, 60 + noise, phantom.image).astype(phantom.image.dtype)


def test_large_lesions_find_a_place_in_few_tries(phantom):
    organ = phantom.organ_mask("liver")
    stats = prepare_organ(phantom.image, organ, phantom.geometry)
    attempts = [synthesize_lesions(phantom.image, organ, phantom.geometry, LesionConfig(size_class="large"), seed,
                                   organ_stats=stats).records[0].placement_attempts for seed in range(8)]
    assert max(attempts) <= 40  # before the distance map: median 112, up to 632 random tries in a real liver


def test_the_input_mask_is_never_written_and_the_organ_moves(phantom):
    organ, image = _slab(phantom)  # thin: the push of a medium lesion reaches the border
    organ.flags.writeable = False  # a write into the input would raise
    before = organ.copy()
    result = synthesize_lesions(image, organ, phantom.geometry, LesionConfig(size_class="medium", mass_effect=100.0), 3)
    assert np.array_equal(organ, before)
    assert not np.array_equal(result.organ_mask.astype(bool), before)  # the border was pushed


def test_patched_mask_matches_a_dense_copy():
    rng = np.random.default_rng(0)
    base = (rng.random((30, 40, 50)) > 0.5).astype(np.uint8)
    patched, dense = PatchedMask(base.copy()), base.copy()
    original = base.copy()
    for _ in range(40):  # overlapping, nested and disjoint boxes
        start = rng.integers(0, (25, 35, 45))
        stop = start + rng.integers(1, 12, 3)
        box = tuple(slice(int(a), int(min(b, n))) for a, b, n in zip(start, stop, base.shape))
        value = rng.integers(0, 2, [s.stop - s.start for s in box]).astype(np.uint8)
        patched.writable(box)[...] = value
        dense[box] = value
        probe = tuple(slice(int(a), int(a) + 5) for a in rng.integers(0, (25, 35, 45)))
        patches = list(patched._patches)
        assert np.array_equal(patched.read(probe), dense[probe])
        points = tuple(rng.integers(0, n, 200) for n in base.shape)
        assert np.array_equal(patched.at(points), dense[points])
        assert patched._patches == patches  # reads leave the patches as they are
    assert np.array_equal(patched.base, original)  # the base was never written
    assert np.array_equal(patched.full(), dense)


def test_lesion_work_runs_blas_on_one_thread():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    from MedSynthCommonLib.threads import one_blas_thread

    with one_blas_thread():
        inside = [lib["num_threads"] for lib in threadpoolctl.threadpool_info() if lib["user_api"] == "blas"]
    assert inside and all(n == 1 for n in inside)


def test_the_quick_edge_test_rejects_only_what_the_full_check_rejects(phantom):
    from SynthLesionLib.placement import _near_edge_by_map, _rejection_reason

    organ = phantom.organ_mask("liver")
    stats = prepare_organ(phantom.image, organ, phantom.geometry)  # makes the coarse distance map
    spacing, mask = phantom.geometry.spacing_kji, PatchedMask(organ.view(np.uint8))
    lesions = np.zeros(organ.shape, np.uint8)
    rng = np.random.default_rng(3)
    quick = 0
    for _ in range(300):
        centre = stats.candidates_kji[rng.integers(len(stats.candidates_kji))] + rng.integers(-4, 5, 3)
        centre = np.clip(centre, 0, np.array(organ.shape) - 1)
        radius = float(rng.uniform(3.0, 40.0))
        if _near_edge_by_map(spacing, stats, centre[np.newaxis], radius)[0]:
            quick += 1
            assert _rejection_reason(phantom.image, mask, lesions, spacing, centre, radius, None, None,
                                     radius) == "organ edge"
    assert quick > 30  # the quick test did fire


def test_a_search_draws_its_tries_at_once_as_it_would_one_by_one():
    """A search draws its tries in one call and gives back what it did not use: the tries, and
    the generator after any number of them, are those of drawing each try as it is made (the
    place, then its offsets along k, j, i)."""
    from SynthLesionLib.placement import _jittered_tries

    shape, stride = (60, 70, 80), np.array([3, 8, 5])
    places = np.random.default_rng(0).integers(0, 60, (37, 3)) * stride
    low, high = -(stride // 2), stride - stride // 2
    for seed, used in ((1, 1), (2, 17), (3, 40), (4, 5)):
        one_by_one, at_once = np.random.default_rng(seed), np.random.default_rng(seed)
        expected = [np.minimum(np.maximum(places[one_by_one.integers(len(places))] + one_by_one.integers(low, high), 0),
                               np.array(shape) - 1) for _ in range(used)]
        tries, keep_draws = _jittered_tries(places, stride, shape, 40, at_once)
        assert np.array_equal(tries[:used], expected)
        keep_draws(used)
        assert one_by_one.random() == at_once.random()  # the seed's later draws are the same


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="reads CPU time from /proc (Linux)")
def test_the_benchmark_load_is_spinning_before_timing_starts():
    import multiprocessing
    import time

    from SynthLesionLib.benchmark import busy_cores

    with busy_cores(1) as count:
        spinners = multiprocessing.active_children()
        assert count == 1 and len(spinners) == 1 and spinners[0].is_alive()
        pid = spinners[0].pid
        with open(f"/proc/{pid}/stat") as stat:
            before = int(stat.read().split(")")[1].split()[11])  # utime, clock ticks
        time.sleep(0.3)
        with open(f"/proc/{pid}/stat") as stat:
            after = int(stat.read().split(")")[1].split()[11])
        assert after > before  # alive and using a core
    assert not multiprocessing.active_children()


def test_the_output_copied_in_the_background_is_the_case_copied_at_once(phantom, monkeypatch):
    """The output volume copied in slabs by a helper thread (and the caller, when it needs the
    copy) while the first lesion is made from the input (read-only here: a write into it would
    raise) is, bit for bit, the one copied beforehand."""
    from MedSynthCommonLib import threads

    organ = phantom.organ_mask("liver")
    image = phantom.image.copy()
    image.flags.writeable = False
    config = LesionConfig(size_class="mix", count=3, mass_effect=60.0, allow_fewer=True)
    cases = {}
    for mode, threshold in (("at once", 2**62), ("background", 0)):
        monkeypatch.setattr(threads, "BACKGROUND_COPY_FROM_BYTES", threshold)
        monkeypatch.setattr(threads, "usable_cores", lambda: 2)
        monkeypatch.setattr(threads, "SLAB_BYTES", 40_000)  # many slabs: the helper's and the caller's meet
        cases[mode] = synthesize_lesions(image, organ, phantom.geometry, config, 4)
    assert np.array_equal(image, phantom.image)
    assert np.array_equal(cases["at once"].image, cases["background"].image)
    assert np.array_equal(cases["at once"].label_map(), cases["background"].label_map())
    assert cases["background"].image.flags.writeable and len(cases["background"].records) >= 1


def test_the_shell_first_ball_test_decides_as_the_whole_ball(phantom):
    """Reusing one ball per radius and testing a probe of its shell, then its shell first, gives
    the whole ball's answer, also where the organ has a hole that the shell does not touch and
    where the ball's box leaves the volume."""
    from SynthLesionLib.placement import Ball, _rejection_reason

    organ = phantom.organ_mask("liver").copy()
    stats = prepare_organ(phantom.image, organ, phantom.geometry)
    spacing = phantom.geometry.spacing_kji
    rng = np.random.default_rng(5)
    holes = stats.candidates_kji[rng.integers(len(stats.candidates_kji), size=40)]
    organ[tuple(holes.T)] = False  # one-voxel holes inside the organ
    mask = PatchedMask(organ.view(np.uint8))
    reasons = []
    for _ in range(300):
        radius = float(rng.uniform(2.0, 30.0))
        draw = rng.random()
        if draw < 0.4:
            centre = holes[rng.integers(len(holes))] + rng.integers(-3, 4, 3)
        elif draw < 0.8:
            centre = stats.candidates_kji[rng.integers(len(stats.candidates_kji))]
        else:  # anywhere, the volume's faces included (a ball's box that leaves the volume)
            centre = rng.integers(0, organ.shape) * (rng.random(3) < 0.8) + \
                (np.array(organ.shape) - 1) * (rng.random(3) < 0.1)
        centre = np.clip(centre, 0, np.array(organ.shape) - 1)
        whole = _rejection_reason(phantom.image, mask, None, spacing, centre, radius, None, None, radius)
        shell_first = _rejection_reason(phantom.image, mask, None, spacing, centre, radius, None, None, radius,
                                        Ball(radius, spacing))
        assert whole == shell_first
        reasons.append(whole)
    assert reasons.count(None) > 10 and reasons.count("organ edge") > 10


def test_a_place_ruled_out_by_an_earlier_lesion_holds_no_acceptable_centre(phantom):
    """A centre within clearance + rho - 2d of a lesion's core (rho: its inscribed radius, d: half
    a voxel's diagonal) has a lesion voxel within its clearance ball, also after a later lesion's
    mass effect moved the first one's voxels (rho then less the push and rounding)."""
    from SynthLesionLib.patch import box_around
    from SynthLesionLib.placement import pushed_cores
    from SynthLesionLib.synthesizer import _inscribed_radius_mm

    organ, geometry = phantom.organ_mask("liver"), phantom.geometry
    spacing = geometry.spacing_kji
    half_diagonal = 0.5 * float(np.linalg.norm(spacing))
    config = dict(size_class="small", mass_effect=100.0)
    one = synthesize_lesions(phantom.image, organ, geometry, LesionConfig(count=1, **config), 11)
    two = synthesize_lesions(phantom.image, organ, geometry, LesionConfig(count=2, **config), 11)
    assert np.array_equal(one.records[0].centre_ijk, two.records[0].centre_ijk)
    centre = np.array(one.records[0].centre_ijk[::-1], dtype=float)
    box = box_around(centre, 40.0, spacing, organ.shape)
    rho = _inscribed_radius_mm(box, one.lesion_labels[box.slices] == 1, spacing)
    assert rho > half_diagonal
    assert _inscribed_radius_mm(box, np.zeros(box.shape, bool), spacing) == 0.0  # the centre is not the lesion's
    off_grid = box_around(centre + 0.5, 40.0, spacing, organ.shape)  # no voxel at the centre: nothing known
    assert _inscribed_radius_mm(off_grid, one.lesion_labels[off_grid.slices] == 1, spacing) == 0.0
    [(_, pushed)] = pushed_cores([(centre, rho)], two.records[1].mass_effect_max_push_mm, spacing)
    assert two.records[1].mass_effect_max_push_mm > 0 and pushed < rho
    rng = np.random.default_rng(0)
    checked = 0
    for labels, core in ((one.lesion_labels, rho), (two.lesion_labels == 1, pushed)):
        if core <= half_diagonal:
            continue
        for _ in range(300):
            clearance = float(rng.uniform(2.0, 15.0))
            reach = clearance + core - 2 * half_diagonal - 1e-3
            direction = rng.normal(size=3)
            # the hard cases: centres just inside the reach (rounded to a voxel, then checked)
            x = np.round(centre + direction / np.linalg.norm(direction) * rng.uniform(0.85, 1.0) * reach / spacing)
            if np.linalg.norm((x - centre) * spacing) > reach or np.any(x < 0) or np.any(x >= organ.shape):
                continue
            ball = box_around(x, clearance, spacing, organ.shape)
            assert labels[ball.slices][ball.squared_distance_mm2() <= clearance * clearance].any()
            checked += 1
    assert checked > 100


def test_an_output_buffer_or_the_image_itself_gives_the_same_case(phantom):
    """``out`` (a reused buffer, or the image itself: in place) gives the values a new image
    gets, and ``result.image`` is ``out``; the input is changed only when it is ``out``."""
    organ = phantom.organ_mask("liver")
    config = LesionConfig(size_class="mix", count=3, mass_effect=60.0, allow_fewer=True)
    buffer = np.full_like(phantom.image, 7)
    for seed in (2, 3):
        plain = synthesize_lesions(phantom.image, organ, phantom.geometry, config, seed)
        into = synthesize_lesions(phantom.image, organ, phantom.geometry, config, seed, out=buffer)
        assert into.image is buffer and np.array_equal(into.image, plain.image)
        assert np.array_equal(into.label_map(), plain.label_map())
        image = phantom.image.copy()
        in_place = synthesize_lesions(image, organ, phantom.geometry, config, seed, out=image)
        assert in_place.image is image and np.array_equal(image, plain.image)
        assert in_place.case_record["lesions"] == plain.case_record["lesions"]


def test_a_bad_output_buffer_is_refused_and_a_failed_call_leaves_no_lesion(phantom):
    from SynthLesionLib import MedSynthInputError

    organ = phantom.organ_mask("liver")
    image = phantom.image.copy()
    read_only = image.copy()
    read_only.flags.writeable = False
    for out, words in ((np.empty(image.shape, np.float32), "dtype"), (np.empty((3, 3, 3), image.dtype), "shape"),
                       (read_only, "read-only"), (image[:, :, ::-1], "shares memory"), ([1, 2], "NumPy array")):
        with pytest.raises(MedSynthInputError, match=words):
            synthesize_lesions(image, organ, phantom.geometry, LesionConfig(), 0, out=out)
    assert np.array_equal(image, phantom.image)
    # in place, a call whose later lesion fits nowhere fails: the earlier lesion is taken out again
    cube = np.zeros(image.shape, bool)
    cube[8:20, 40:58, 40:58] = True  # 36 mm across: room for one medium lesion, not two
    cube_image = np.where(cube, 60 + np.random.default_rng(0).normal(0, 12, image.shape), image).astype(image.dtype)
    given = cube_image.copy()
    config = LesionConfig(size_class="medium", count=2, allow_fewer=False, mass_effect=50.0)
    with pytest.raises(PlacementError, match="beside the earlier lesions|Earlier lesions hold") as failure:
        synthesize_lesions(cube_image, cube, phantom.geometry, config, 1, out=cube_image)
    assert "mask is complete" not in str(failure.value)  # the room is taken: the mask is not to blame
    assert np.array_equal(cube_image, given)
    one = synthesize_lesions(given, cube, phantom.geometry, config.__class__(size_class="medium"), 1)
    assert not np.array_equal(one.image, given)  # the first lesion fits: it had been written, then taken out


def test_bounding_slices_is_the_box_of_the_nonzero_voxels():
    """The one-pass box (first axis from the whole mask, the others from its slices that hold
    voxels) is the box of ``np.argwhere``, for bool and integer masks, contiguous or not."""
    from MedSynthCommonLib.geometry import bounding_slices

    rng = np.random.default_rng(7)
    for trial in range(300):
        shape = tuple(int(n) for n in rng.integers(1, 12, 3))
        mask = rng.random(shape) < rng.choice([0.0, 0.002, 0.03, 0.4])
        if trial % 3 == 1:
            mask = mask.astype(np.int16) * int(rng.integers(-3, 4))
        elif trial % 3 == 2:
            mask = np.asfortranarray(mask)[::-1, :, ::2]
        margin = rng.integers(0, 3, 3)
        nonzero = np.argwhere(mask)
        expected = None if nonzero.size == 0 else tuple(
            slice(max(int(lo) - int(m), 0), min(int(hi) + int(m) + 1, n))
            for lo, hi, m, n in zip(nonzero.min(axis=0), nonzero.max(axis=0), margin, mask.shape))
        assert bounding_slices(mask, margin) == expected, trial


def test_nothing_differs_from_the_input_outside_the_changed_block(phantom):
    """``result.changed`` holds every change: outside it the image is the input image, the organ
    the input organ and the labels 0 (several lesions, mass effect pushing earlier ones)."""
    organ = phantom.organ_mask("liver")
    moved = []
    for seed, config in enumerate([LesionConfig(size_class="medium", count=3, mass_effect=80.0),
                                   LesionConfig(size_class="mix", count=3, mass_effect=80.0)]):
        result = synthesize_lesions(phantom.image, organ, phantom.geometry, config, seed)
        outside = np.ones(organ.shape, bool)
        outside[result.changed] = False
        assert outside.any() and len(result.records) >= 2
        assert np.array_equal(result.image[outside], phantom.image[outside])
        assert np.array_equal(result.organ_mask[outside] > 0, organ[outside])
        assert not result.lesion_labels[outside].any()
        moved.append(not np.array_equal(result.organ_mask[result.changed] > 0, organ[result.changed]))
    assert any(moved)  # the organ's border moved within the block


def test_a_kept_organ_measurement_is_what_measuring_again_gives(phantom, monkeypatch):
    """measure_organ keeps its measurement with the values it read: whatever changes in the image
    or the organ (where it read, or elsewhere), a call gives what a fresh measurement gives, and
    measures again only when a value it read changed."""
    from SynthLesionLib import organ as organ_module

    measured = []
    real_measure = organ_module._measure
    monkeypatch.setattr(organ_module, "_measure", lambda *args: measured.append(1) or real_measure(*args))
    monkeypatch.setattr(organ_module, "_kept", organ_module.KeptResults(organ_module.KEPT_MEASUREMENTS))

    def same(a, b):
        return a.to_dict() == b.to_dict() and np.array_equal(a.candidates_kji, b.candidates_kji)

    def fresh(image, organ):
        return real_measure(image, organ, phantom.geometry, np.random.default_rng(organ_module.ORGAN_SAMPLE_SEED), None)

    rng = np.random.default_rng(3)
    for trial in range(24):
        image, organ = phantom.image.copy(), phantom.organ_mask("liver").copy()
        organ_module._kept.clear()
        organ_module.measure_organ(image, organ, phantom.geometry)
        reads = organ_module._kept.witnesses()[-1]
        in_organ = trial % 3 == 0  # else the image is changed
        read = np.zeros(image.shape, bool)  # the voxels of that volume the measurement read
        read.reshape(-1)[reads.organ_index if in_organ else reads.image_index] = True
        for box, _, _ in reads.boxes:
            read[box] = True
        changes_read = bool(trial % 2)
        where = int(rng.choice(np.flatnonzero(read if changes_read else ~read)))
        if in_organ:
            organ.reshape(-1)[where] = ~organ.reshape(-1)[where]
        else:
            image.reshape(-1)[where] += np.int16(rng.integers(1, 400))
        measured.clear()
        kept = organ_module.measure_organ(image, organ, phantom.geometry)
        assert same(kept, fresh(image, organ)), trial
        assert (len(measured) == 1) == changes_read, trial  # measured again exactly when a value it read changed
    # a kept measurement is handed out with a cache of its own: what one call's placement puts in
    # it (the distance map of its organ) never reaches the next call
    organ_module._kept.clear()
    measured.clear()
    organ_module.measure_organ(image, organ, phantom.geometry)
    one = organ_module.measure_organ(image, organ, phantom.geometry)
    one.cache["distance"] = "the first call's"
    assert organ_module.measure_organ(image, organ, phantom.geometry).cache == {} and len(measured) == 1


def test_a_kept_distance_map_is_the_map_of_the_organ_given(phantom, monkeypatch):
    """The organ's coarse distance map is kept with the grid sample it was made from: an organ
    changed off the grid gets the kept map (the same values), one changed on it a new map."""
    from SynthLesionLib import placement
    from SynthLesionLib.organ import measure_organ

    monkeypatch.setattr(placement, "_kept_maps", placement.KeptResults(4))
    spacing = phantom.geometry.spacing_kji
    organ = phantom.organ_mask("liver").copy()
    stats = measure_organ(phantom.image, organ, phantom.geometry)
    first = placement.coarse_distance_map(organ, spacing, stats)
    stride = stats.cache["distance_stride"]
    inside = np.argwhere(organ)
    on_grid = inside[np.all(inside % stride == 0, axis=1)]
    off_grid = inside[np.any(inside % stride != 0, axis=1)]
    for points, kept in ((off_grid, True), (on_grid, False)):
        changed = organ.copy()
        changed[tuple(points[len(points) // 2])] = False
        stats = measure_organ(phantom.image, changed, phantom.geometry)
        again = placement.coarse_distance_map(changed, spacing, stats)
        fresh = placement._distance_map(changed[::stride[0], ::stride[1], ::stride[2]], stride * spacing)
        assert np.array_equal(again, fresh) and (again is first) == kept
        assert not again.flags.writeable


def test_a_kept_organ_measurement_is_checked_bit_for_bit(phantom):
    """-0.0 equals 0.0 but is another value to keep statistics of: a float image changed from one
    to the other where the measurement read is measured again."""
    from SynthLesionLib import organ as organ_module

    image, organ = phantom.image.astype(np.float32), phantom.organ_mask("liver")
    organ_module.measure_organ(image, organ, phantom.geometry)
    reads = organ_module._kept.witnesses()[-1]
    image.reshape(-1)[reads.image_index[0]] = 0.0
    organ_module.measure_organ(image, organ, phantom.geometry)
    with_zero = organ_module._kept.witnesses()[-1]
    image.reshape(-1)[reads.image_index[0]] = -0.0
    assert not with_zero.hold(image, organ)
    organ_module.measure_organ(image, organ, phantom.geometry)
    assert organ_module._kept.witnesses()[-1] is not with_zero  # measured again, and kept


def test_repeated_calls_on_fortran_ordered_or_strided_volumes_give_the_c_ordered_cases(phantom):
    """Volumes as nibabel gives them (Fortran order) or as views (strided) are read the same way
    on every call, the organ's kept measurement included."""
    organ = phantom.organ_mask("liver")
    layouts = {"fortran": (np.asfortranarray(phantom.image), np.asfortranarray(organ)),
               "strided": (np.repeat(phantom.image, 2, axis=2)[:, :, ::2], np.repeat(organ, 2, axis=2)[:, :, ::2])}
    for seed in range(3):
        plain = synthesize_lesions(phantom.image, organ, phantom.geometry, LesionConfig(size_class="small"), seed)
        for name, (image, mask) in layouts.items():
            again = synthesize_lesions(image, mask, phantom.geometry, LesionConfig(size_class="small"), seed)
            assert np.array_equal(again.image, plain.image) and np.array_equal(again.label_map(), plain.label_map()), name
