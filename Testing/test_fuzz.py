"""Property-based fuzzing (bounded time): the engine and the command line either do their job
or refuse with a clear MedSynth error; they never crash, never modify their inputs, and what
they return keeps the input's grid, type and labels."""

from __future__ import annotations

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from MedSynthCommonLib.errors import MedSynthError  # noqa: E402
from MedSynthCommonLib.geometry import Geometry  # noqa: E402
from SynthLesionLib import LesionConfig, make_ct_phantom, synthesize_lesions  # noqa: E402
from SynthLesionLib.presets import PRESETS  # noqa: E402
from SynthLesionLib.sizes import MIX, SIZE_CLASSES  # noqa: E402

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)

_PHANTOM = make_ct_phantom(shape=(20, 48, 48), spacing=(4.0, 4.0, 5.0), seed=11)


@st.composite
def _inputs(draw):
    spacing = tuple(draw(st.sampled_from([4.0, 0.5, 1.0, 2.5, 7.0, 12.0])) for _ in range(3))
    dtype = draw(st.sampled_from([np.int16, np.uint16, np.float32, np.float64, np.int32]))
    image = _PHANTOM.image.astype(np.float64)
    if dtype in (np.uint16,):
        image = image + 1024
    image = image.astype(dtype)
    mask_kind = draw(st.sampled_from(["liver"] * 6 + ["all", "empty", "one voxel", "multi"]))
    mask = {"liver": _PHANTOM.organ_mask("liver"), "all": np.ones(image.shape, bool), "empty": np.zeros(image.shape, bool),
            "multi": _PHANTOM.organs.astype(np.uint8)}.get(mask_kind)
    if mask is None:
        mask = np.zeros(image.shape, bool)
        mask[10, 24, 24] = True
    config = LesionConfig(
        preset=draw(st.sampled_from(["ct-liver"] * 4 + list(PRESETS))),
        size_class=draw(st.sampled_from([*SIZE_CLASSES, MIX])),
        count=draw(st.integers(1, 3)),
        lesion_type=draw(st.sampled_from([None, "hypo", "iso", "hyper", "mixed"])),
        contrast=draw(st.one_of(st.none(), st.floats(-300, 300))),
        mass_effect=draw(st.one_of(st.none(), st.floats(0, 100))),
        capsule=draw(st.sampled_from([None, True, False])),
        avoid_vessels=draw(st.booleans()),
    )
    return image, mask, Geometry(_PHANTOM.geometry.origin, spacing, _PHANTOM.geometry.direction), config, \
        draw(st.integers(0, 2**32 - 1))


@FUZZ
@given(_inputs())
def test_engine_succeeds_or_refuses_clearly(case):
    image, mask, geometry, config, seed = case
    image_before, mask_before = image.copy(), mask.copy()
    try:
        result = synthesize_lesions(image, mask, geometry, config, seed)
    except MedSynthError as error:
        assert str(error) and "\n" not in str(error).strip()
        return
    finally:
        assert np.array_equal(image, image_before) and np.array_equal(mask, mask_before)
    assert result.image.shape == image.shape and result.image.dtype == image.dtype
    labels = result.label_map()
    assert set(np.unique(labels).tolist()) <= {0, 1, 2}
    lesion = result.lesion_labels > 0
    assert lesion.any() and not np.any(lesion & (result.organ_mask == 0))  # lesions lie in the (moved) organ
    if not config.mass_effect and PRESETS[config.preset].mass_effect == 0:
        assert np.array_equal(result.image[~lesion & (result.organ_mask == 0)], image[~lesion & (result.organ_mask == 0)])


_VALUES = ["0", "1", "-1", "2", "nan", "inf", "1e9", "abc", "", "small", "mix", "ct-liver", "mr-brain", "hypo", "../x",
           "/dev/null", "out.nii.gz", "out.png", "x.json"]
_OPTIONS = ["--size", "--count", "--preset", "--lesion-type", "--contrast", "--mass-effect", "--capsule", "--seed",
            "--organ-label", "--vessel-threshold-sd", "--record", "--preview", "--variants", "--workers",
            "--image-size", "--test-fraction", "--iterations", "--model", "--target-domain", "--window"]
_COMMANDS = [["lesion"], ["build-db"], ["translate", "train"], ["translate", "apply"], ["evaluate", "images"],
             ["evaluate", "gan-train-test"], ["evaluate", "reader-study", "results"], ["bench", "lesion"], ["demo"]]


@FUZZ
@given(st.sampled_from(_COMMANDS),
       st.lists(st.tuples(st.sampled_from(_OPTIONS), st.sampled_from(_VALUES)), max_size=6))
def test_command_line_never_crashes(tmp_path_factory, command, options):
    """Random option soups: argparse refuses (exit 2), or the command refuses clearly (exit 2),
    never an internal error.  Inputs point at files that do not exist, so nothing runs long."""
    from MedSynthCommonLib.cli import main

    folder = tmp_path_factory.mktemp("fuzz")
    required = {"lesion": ["--image", str(folder / "no.nii.gz"), "--organ-mask", str(folder / "no2.nii.gz"),
                           "--out-image", str(folder / "o.nii.gz"), "--out-label", str(folder / "l.nii.gz")],
                "build-db": ["--cases", str(folder / "none.csv"), "--out", str(folder / "db")]}
    arguments = [*command, *required.get(command[0], []), *[part for pair in options for part in pair]]
    if command == ["demo"] or command == ["bench", "lesion"]:
        arguments = [*command, "--help"]  # these run real work on valid input: only the parser is fuzzed
    try:
        code = main(arguments)
    except SystemExit as stop:
        code = stop.code
    assert code in (0, 1, 2), arguments
