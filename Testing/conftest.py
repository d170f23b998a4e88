"""Shared fixtures: a real MRML scene (slicer-core) and phantom volumes.

The segmentation converter rules are registered when this file is imported, before any
test can create a segmentation node (Slicer registers them at start-up; slicer-core does not).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from SynthLesionLib import make_ct_phantom, make_mr_phantom
from MedSynthCommonLib.mrml import register_segmentation_converters

register_segmentation_converters()

#: an oblique, LPS-stored direction: exercises every geometry path
OBLIQUE_DIRECTION = Rotation.from_euler("xyz", [8, -5, 12], degrees=True).as_matrix() @ np.diag([-1.0, -1.0, 1.0])


@pytest.fixture
def scene():
    import slicer

    scene = slicer.vtkMRMLScene()
    yield scene
    scene.Clear(1)


@pytest.fixture(scope="session")
def ct_phantom():
    """Anisotropic (2 x 2 x 3.2 mm), oblique, off-centre CT phantom, int16 HU, 288 mm field of view."""
    return make_ct_phantom(shape=(52, 144, 144), spacing=(2.0, 2.0, 3.2), direction=OBLIQUE_DIRECTION,
                           origin=(12.5, -40.0, 300.0), seed=3)


@pytest.fixture(scope="session")
def mr_phantom():
    """Brain MR phantom, uint16, Rician-like noise."""
    return make_mr_phantom(shape=(56, 96, 80), spacing=(1.2, 1.2, 2.0), seed=4)


@pytest.fixture(scope="session")
def small_ct_files(tmp_path_factory):
    """A small CT phantom (24 x 72 x 72, 3 x 3 x 4 mm) and its organ map as NIfTI files:
    (folder, image path, organ map path, phantom)."""
    from MedSynthCommonLib.imageio import write_volume

    folder = tmp_path_factory.mktemp("small_ct")
    phantom = make_ct_phantom(shape=(24, 72, 72), spacing=(3.0, 3.0, 4.0), seed=2)
    image = write_volume(folder / "ct.nii.gz", phantom.image, phantom.geometry)
    organs = write_volume(folder / "organs.nii.gz", phantom.organs, phantom.geometry)
    return folder, image, organs, phantom


@pytest.fixture(scope="session")
def findings_result():
    """One study at CPU scale (~80 s on 2 cores): 100 synthetic scans from 4 phantoms train the
    'small' network; 24 synthetic scans from 3 other phantoms test it."""
    torch = pytest.importorskip("torch")

    from findings_scans import ORGANS, phantom_scans
    from SynthEvaluateLib.findings.findings_study import findings_study
    from SynthEvaluateLib.recipes.findings_model import FindingsRecipe

    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        test_scans = phantom_scans(range(10, 13))
        result = findings_study(phantom_scans(range(4)), test_scans, ORGANS, train_count=100, test_count=24,
                                recipe=FindingsRecipe(input_shape=(32, 64, 64), epochs=60), seed=0)
    finally:
        torch.set_num_threads(threads)
    return result, test_scans


def write_two_classes(folder, count=200, size=32, seed=0):
    """Class 'top': a bright disc in the upper half; 'bottom': in the lower half (8-bit PNGs);
    the numeric column 'contrast' (60-200) sets how much brighter the disc is."""
    from PIL import Image

    folder.mkdir()
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:size, :size]
    rows = []
    for n in range(count):
        label = ("top", "bottom")[n % 2]
        cy = rng.uniform(8, 12) if label == "top" else rng.uniform(20, 24)
        disc = ((y - cy) ** 2 + (x - rng.uniform(10, 22)) ** 2) <= 25
        contrast = rng.uniform(60, 200)
        image = np.clip(50 + contrast * disc + rng.normal(0, 12, (size, size)), 0, 255).astype(np.uint8)
        Image.fromarray(image).save(folder / f"{n:03d}.png")
        rows.append(f"{n:03d}.png,{label},{contrast:.1f}")
    (folder / "labels.csv").write_text("path,label,contrast\n" + "\n".join(rows) + "\n", encoding="utf-8")
