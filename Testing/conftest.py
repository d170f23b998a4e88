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
