"""A findings model that reads its organs only (``FindingsRecipe.organs_only_mm``): nothing
outside the organs and their margin reaches the network, in training and when it reads a scan."""

import numpy as np
import pytest

from MedSynthCommonLib.errors import MedSynthInputError


def _scan(ct_phantom):
    from SynthEvaluateLib.findings.scans import HealthyScan
    from SynthLesionLib.phantom import ORGAN_LABELS

    names = {value: name for name, value in ORGAN_LABELS.items()}
    return HealthyScan(ct_phantom.image.astype(np.float32), ct_phantom.organs, names, ct_phantom.geometry)


def test_only_the_organs_and_their_margin_are_kept(ct_phantom):
    """Voxels within the margin (mm, by the scan's spacing) of the organs keep their values, all
    others read as the given value; past a cut scan's end (no organ there) too; the organ map and
    the input stay as they were."""
    from scipy import ndimage

    from SynthEvaluateLib.findings.scans import organ_region, organs_only
    from SynthLesionLib.phantom import ORGAN_LABELS

    scan = _scan(ct_phantom)
    before = scan.image.copy()
    kept = organs_only(scan, ["liver"], 6.0, -150.0)
    assert np.array_equal(scan.image, before) and np.array_equal(kept.organs, scan.organs)
    liver = scan.organs == ORGAN_LABELS["liver"]
    distance = ndimage.distance_transform_edt(~liver, sampling=scan.geometry.spacing_kji)
    near = distance <= 6.0
    assert np.array_equal(kept.image[near], scan.image[near])
    assert np.all(kept.image[~near] == -150.0)
    # the margin is in mm: below the liver's lowest voxel, the slices within 6 mm are kept
    spacing = scan.geometry.spacing_kji
    k0, j, i = min(map(tuple, np.argwhere(liver)))
    for n in range(1, 12):  # every liver voxel lies at k0 or above: the nearest is n slices away
        assert (kept.image[k0 - n, j, i] == scan.image[k0 - n, j, i]) == (n * spacing[0] <= 6.0)
    # a view past the scan's top: no organ there, so nothing of the edge-repeated slices is read
    shape = scan.image.shape
    cut = scan.cut((slice(0, shape[0] + 8), slice(0, shape[1]), slice(0, shape[2])))
    assert np.all(organs_only(cut, ["liver", "spleen"], 6.0, -150.0).image[shape[0]:] == -150.0)
    # the spleen's region is not the liver's: reading only the liver blanks the spleen
    spleen = scan.organs == ORGAN_LABELS["spleen"]
    assert np.all(kept.image[spleen & ~near] == -150.0)
    assert organ_region(scan, ["liver"], 15.0).image.size < scan.image.size


def test_a_model_reading_its_organs_only_is_given_them_only(ct_phantom):
    """``model_view`` of such a model (triage, calibration, the evidence on the scan) keeps the
    organs and their margin only; the recipe survives its card, a card without it reads the whole
    box, and reading organs only without the box around them is refused."""
    from types import SimpleNamespace

    from SynthEvaluateLib.findings.scans import model_view
    from SynthEvaluateLib.recipes.findings_model import FindingsRecipe

    scan = _scan(ct_phantom)
    recipe = FindingsRecipe(organs_only_mm=10.0)
    model = SimpleNamespace(organs=["liver", "spleen"], recipe=FindingsRecipe.from_dict(recipe.to_dict()),
                            view_mm=None)
    assert model.recipe.organs_only_mm == 10.0
    box_only = SimpleNamespace(organs=model.organs, recipe=FindingsRecipe(), view_mm=None)
    masked, whole_box = model_view(model, scan), model_view(box_only, scan)
    assert masked.image.shape == whole_box.image.shape
    changed = masked.image != whole_box.image
    assert changed.mean() > 0.2 and np.all(masked.image[changed] == recipe.window[0])
    assert not np.any(changed & np.isin(masked.organs, [scan.organ_labels()[o] for o in model.organs]))
    card = recipe.to_dict()
    del card["organs_only_mm"]
    assert FindingsRecipe.from_dict(card).organs_only_mm is None  # cards written before it: the whole box
    for wrong in ({"organ_margin_mm": None}, {"organs_only_mm": -1.0}, {"organs_only_mm": float("nan")},
                  {"organs_only_mm": float("inf")}):
        with pytest.raises(MedSynthInputError, match="organs only"):
            FindingsRecipe(**{"organs_only_mm": 10.0, **wrong})


def test_the_ct_findings_command_passes_organs_only():
    pytest.importorskip("torch")  # the command resolves its device with torch
    from MedSynthCommonLib.cli import build_parser
    from SynthEvaluateLib.cli.ct_findings_commands import _recipe

    base = ["evaluate", "ct-findings", "--healthy", "h.csv", "--organ-names", "1=liver", "--out", "r"]
    parser = build_parser()
    assert _recipe(parser.parse_args(base)).organs_only_mm is None
    assert _recipe(parser.parse_args(base + ["--organs-only-mm", "8"])).organs_only_mm == 8.0
    for wrong in ("-1", "nan", "inf"):
        with pytest.raises(SystemExit):
            parser.parse_args(base + ["--organs-only-mm", wrong])
