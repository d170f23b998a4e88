"""The engine on numpy arrays: determinism, sizes, placement, intensities, locality, geometry."""

from __future__ import annotations

import numpy as np
import pytest

from SynthLesionLib import SIZE_CLASSES, LesionConfig, ShapeTemplate, regenerate, synthesize_lesions


def _insert(phantom, organ="liver", seed=0, **options):
    return synthesize_lesions(phantom.image, phantom.organ_mask(organ), phantom.geometry, LesionConfig(**options), seed)


def test_same_seed_gives_byte_identical_outputs_and_other_seed_differs(ct_phantom):
    a = _insert(ct_phantom, seed=11, count=2)
    b = _insert(ct_phantom, seed=11, count=2)
    c = _insert(ct_phantom, seed=12, count=2)
    assert a.image.tobytes() == b.image.tobytes()
    assert a.lesion_labels.tobytes() == b.lesion_labels.tobytes()
    assert a.organ_mask.tobytes() == b.organ_mask.tobytes()
    assert a.case_record == b.case_record
    assert a.image.tobytes() != c.image.tobytes()


def test_record_regenerates_the_case(ct_phantom):
    first = _insert(ct_phantom, seed=5, size_class="mix", count=3, lesion_type="mixed")
    again = regenerate(ct_phantom.image, ct_phantom.organ_mask("liver"), ct_phantom.geometry, first.case_record)
    assert np.array_equal(first.image, again.image)
    assert np.array_equal(first.lesion_labels, again.lesion_labels)


def test_inputs_are_not_modified(ct_phantom):
    image, mask = ct_phantom.image.copy(), ct_phantom.organs.copy()
    result = synthesize_lesions(ct_phantom.image, ct_phantom.organs, ct_phantom.geometry,
                                LesionConfig(count=2, mass_effect=80), seed=1, organ_label=1)
    assert np.array_equal(image, ct_phantom.image) and np.array_equal(mask, ct_phantom.organs)
    assert not np.shares_memory(result.image, ct_phantom.image)
    assert result.image.dtype == ct_phantom.image.dtype


@pytest.mark.parametrize("size_class", ["tiny", "small", "medium"])
def test_each_size_class_gives_lesions_of_that_size(ct_phantom, size_class):
    low, high = SIZE_CLASSES[size_class]
    for seed in range(4):
        record = _insert(ct_phantom, seed=seed, size_class=size_class).records[0]
        assert low <= record.target_diameter_mm <= high
        # measured on the voxel grid, after deformation and clipping to the organ
        assert 0.8 * low <= record.equivalent_diameter_mm <= 1.15 * high, record
        assert all(0.75 * record.target_diameter_mm / 2 - 1e-6 <= a <= 1.25 * record.target_diameter_mm / 2 + 1e-6
                   for a in record.semi_axes_mm)


def test_large_lesions_fit_a_realistic_liver():
    from SynthLesionLib import make_ct_phantom

    big = make_ct_phantom(shape=(64, 192, 192), spacing=(1.5, 1.5, 3.0), seed=0)
    record = synthesize_lesions(big.image, big.organ_mask("liver"), big.geometry,
                                LesionConfig(size_class="large"), seed=2).records[0]
    assert 40 * 0.8 <= record.equivalent_diameter_mm <= 80 * 1.1


def test_labels_are_exact_lesions_inside_organ_and_numbered(ct_phantom):
    result = _insert(ct_phantom, seed=3, count=3, size_class="small")
    labels = result.lesion_labels
    assert set(np.unique(labels)) == {0, 1, 2, 3}
    assert np.all(result.organ_mask[labels > 0] == 1)
    for record in result.records:
        volume_ml = (labels == record.index).sum() * ct_phantom.geometry.voxel_volume_mm3 / 1000
        assert volume_ml == pytest.approx(record.volume_ml, rel=1e-6)
    label_map = result.label_map()
    assert set(np.unique(label_map)) == {0, 1, 2}
    assert np.array_equal(label_map == 2, labels > 0)


@pytest.mark.parametrize("lesion_type,sign", [("hypo", -1), ("hyper", 1)])
def test_contrast_follows_lesion_type(ct_phantom, lesion_type, sign):
    record = _insert(ct_phantom, seed=4, lesion_type=lesion_type, size_class="medium", capsule=False).records[0]
    assert sign * record.contrast_target > 0 and sign * record.contrast_measured > 0
    # measured contrast is close to what was drawn (texture and noise average out)
    assert record.contrast_measured == pytest.approx(record.contrast_target, abs=12.0)


def test_only_the_lesion_neighbourhood_changes(ct_phantom):
    result = _insert(ct_phantom, seed=6, size_class="small", mass_effect=50)
    changed = np.argwhere(result.image != ct_phantom.image)
    lesion = np.argwhere(result.lesion_labels > 0)
    spacing = ct_phantom.geometry.spacing_kji
    extent_mm = (changed.max(axis=0) - changed.min(axis=0) + 1) * spacing
    assert np.all(extent_mm <= 2.5 * 20.0)  # a small lesion is at most 20 mm across
    centre = lesion.mean(axis=0)
    assert np.all(np.abs(changed.mean(axis=0) - centre) * spacing < 10.0)


@pytest.mark.parametrize("dtype", [np.float64, np.int32, np.float32, np.uint16])
def test_untouched_voxels_stay_bit_identical_in_any_dtype(ct_phantom, dtype):
    from scipy import ndimage

    if dtype == np.float64:
        image, preset = ct_phantom.image + 0.123456789, "ct-liver"  # not representable in float32
    elif dtype == np.int32:
        image, preset = (ct_phantom.image.astype(np.int32) + 1024) * 4099, "mr-liver"  # beyond float32's integers
    else:
        image, preset = (ct_phantom.image.astype(dtype) + (1024 if dtype == np.uint16 else 0)), \
            ("mr-liver" if dtype == np.uint16 else "ct-liver")
    result = synthesize_lesions(image, ct_phantom.organ_mask("liver"), ct_phantom.geometry,
                                LesionConfig(size_class="small", mass_effect=0, preset=preset, capsule=False), seed=1)
    assert result.image.dtype == image.dtype
    changed = result.image != image
    # every changed voxel lies within the Gaussian edge kernel's support (SciPy: int(4 sigma + 0.5) voxels)
    distance = ndimage.distance_transform_edt(result.lesion_labels == 0, sampling=ct_phantom.geometry.spacing_kji)
    reach = 4.0 * result.records[0].edge_blur_mm + 1.5 * ct_phantom.geometry.spacing.max()
    assert changed.any() and distance[changed].max() <= reach


def test_mass_effect_moves_the_organ_boundary_only_when_asked(ct_phantom):
    none = _insert(ct_phantom, seed=8, size_class="medium", mass_effect=0)
    strong = _insert(ct_phantom, seed=8, size_class="medium", mass_effect=100)
    liver = ct_phantom.organ_mask("liver")
    assert np.array_equal(none.organ_mask.astype(bool), liver)
    assert strong.records[0].mass_effect_max_push_mm > 1.0
    # the lesion is where it would be without mass effect: the same draws
    assert strong.records[0].centre_ras == none.records[0].centre_ras


def test_centre_in_ras_maps_to_the_lesion(ct_phantom):
    result = _insert(ct_phantom, seed=9, size_class="small")
    record = result.records[0]
    kji = np.round(ct_phantom.geometry.ras_to_kji(record.centre_ras)).astype(int)
    assert result.lesion_labels[tuple(kji)] == 1
    assert list(kji[::-1]) == record.centre_ijk


def test_lesions_can_be_placed_at_given_points(ct_phantom):
    liver = np.argwhere(ct_phantom.organ_mask("liver"))
    target = liver[len(liver) // 2]
    ras = ct_phantom.geometry.kji_to_ras(target).tolist()
    result = _insert(ct_phantom, seed=1, size_class="tiny", centres_ras=[ras])
    assert result.lesion_labels[tuple(target)] == 1
    assert result.records[0].placement_attempts == 0


def test_vessel_avoidance_keeps_vessels_out_of_lesions(ct_phantom):
    def vessel_voxels(avoid):
        total = 0
        for seed in range(8):
            result = _insert(ct_phantom, seed=seed, size_class="medium", avoid_vessels=avoid, mass_effect=0)
            total += int(np.sum(ct_phantom.vessels & (result.lesion_labels > 0)))
        return total

    avoided, ignored = vessel_voxels(True), vessel_voxels(False)
    assert ignored > 0
    assert avoided < 0.2 * ignored


def test_several_lesions_do_not_overlap(ct_phantom):
    result = _insert(ct_phantom, seed=2, size_class="small", count=6)
    sizes = [int(np.sum(result.lesion_labels == r.index)) for r in result.records]
    assert all(size > 0 for size in sizes)


def test_mr_brain_preset_uses_organ_sd_units(mr_phantom):
    result = synthesize_lesions(mr_phantom.image, mr_phantom.organ_mask("brain"), mr_phantom.geometry,
                                LesionConfig(preset="mr-brain", size_class="small", lesion_type="hypo"), seed=3)
    record = result.records[0]
    sd = result.case_record["organ"]["robust_sd"]
    assert record.contrast_measured < -1.0 * sd
    assert result.image.dtype == np.uint16


@pytest.mark.parametrize("preset,organ,size", [("ct-kidney", "right kidney", "tiny"), ("ct-pancreas", "pancreas", "tiny")])
def test_organ_presets_work_on_their_organ(ct_phantom, preset, organ, size):
    result = _insert(ct_phantom, organ=organ, seed=1, preset=preset, size_class=size)
    assert result.records[0].volume_ml > 0
    assert organ.split()[-1] in result.finding


def test_shape_template_from_a_mask_is_used_at_the_requested_size(ct_phantom):
    z, y, x = np.mgrid[-10:11, -10:11, -10:11]
    crescent = ((x**2 + y**2 + z**2) <= 100) & (((x - 5) ** 2 + y**2 + z**2) > 49)
    template = ShapeTemplate.from_mask(crescent, (1.0, 1.0, 1.0), name="crescent")
    result = synthesize_lesions(ct_phantom.image, ct_phantom.organ_mask("liver"), ct_phantom.geometry,
                                LesionConfig(size_class="medium"), seed=4, shape_templates=[template])
    record = result.records[0]
    assert record.shape_template == "crescent"
    assert 0.7 * 20 <= record.equivalent_diameter_mm <= 1.15 * 40


def test_finding_text_describes_the_case(ct_phantom):
    result = _insert(ct_phantom, seed=7, count=2, size_class="small", lesion_type="hypo")
    text = result.finding
    assert text.startswith("Two synthetic hypodense lesions in the liver.")
    assert "Lesion 1" in text and "Lesion 2" in text and " mm " in text


@pytest.mark.parametrize("axes", list(__import__("itertools").permutations(range(3))))
def test_standard_order_keeps_every_voxel_where_it_was(axes):
    """Any storage order (axes permuted, each flipped or not, slightly oblique) comes back with
    i, j, k toward left, posterior, superior, every value at the same RAS position; nothing is
    resampled, and a volume already in that order stays as it is."""
    import itertools

    from scipy.spatial.transform import Rotation

    from MedSynthCommonLib.geometry import STANDARD_AXES_RAS, Geometry, standard_order

    rng = np.random.default_rng(sum(axes))
    tilt = Rotation.from_euler("xyz", [6, -4, 9], degrees=True).as_matrix()
    volume = rng.normal(size=(4, 5, 6))
    for signs in itertools.product((1.0, -1.0), repeat=3):
        columns = np.zeros((3, 3))
        for axis, (world, sign) in enumerate(zip(axes, signs)):
            columns[world, axis] = sign
        given = Geometry(rng.normal(size=3) * 40, [0.7, 0.9, 2.5], tilt @ columns)
        stored, geometry = standard_order(volume, given)
        assert np.all(np.sign(np.diag(geometry.direction)) == np.diag(STANDARD_AXES_RAS))
        assert sorted(stored.shape) == sorted(volume.shape) and np.shares_memory(stored, volume)
        for index in itertools.product(*(range(n) for n in stored.shape)):
            source = np.rint(given.ras_to_kji(geometry.kji_to_ras(np.array(index)))).astype(int)
            assert stored[index] == volume[tuple(source)]
        again, same = standard_order(stored, geometry)
        assert np.array_equal(again, stored) and same.is_close(geometry)
