"""pix2pixHD end to end: trained from a 16-bit volume and its label map, applied to a 2-D label
map, the output in the image's units (not the label map's 8 bits)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from MedSynthCommonLib.cli import main  # noqa: E402
from MedSynthCommonLib.geometry import Geometry  # noqa: E402
from MedSynthCommonLib.imageio import read_image_array, write_image_2d, write_volume  # noqa: E402


def _discs(count: int, size: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:size, :size]
    labels = np.zeros((count, size, size), np.uint8)
    for n in range(count):
        for _ in range(2):
            cy, cx, r = rng.uniform(20, size - 20, 2).tolist() + [rng.uniform(8, 16)]
            labels[n][((y - cy) ** 2 + (x - cx) ** 2) <= r * r] = 1
    return labels


def test_pix2pixhd_learns_label_to_16_bit_image_and_keeps_the_units(tmp_path, capsys):
    labels = _discs(24, 128, 0)
    rng = np.random.default_rng(1)
    image = (1000 + 2000 * labels.astype(np.float64) + rng.normal(0, 40, labels.shape)).astype(np.uint16)  # 16-bit, above 255
    write_volume(tmp_path / "image.nii.gz", image, Geometry())
    write_volume(tmp_path / "labels.nii.gz", labels, Geometry())
    assert main(["translate", "train", "--model", "pix2pixhd", "--image", str(tmp_path / "image.nii.gz"),
                 "--condition", str(tmp_path / "labels.nii.gz"), "--image-size", "128", "--features", "4",
                 "--batch-size", "4", "--iterations", "60", "--window", "0", "4000", "--out", str(tmp_path / "model")]) == 0
    test_labels = _discs(1, 128, 7)[0]
    write_image_2d(tmp_path / "labels.png", test_labels)
    assert main(["translate", "apply", "--model-dir", str(tmp_path / "model"), "--condition", str(tmp_path / "labels.png"),
                 "--out", str(tmp_path / "out.png")]) == 0
    out = read_image_array(tmp_path / "out.png")
    assert out.dtype == np.uint16 and out.shape == (128, 128)
    inside, outside = out[test_labels == 1].mean(), out[test_labels == 0].mean()
    assert inside > outside + 500 and outside > 255, (inside, outside)  # the image's units, learnt contrast
    assert main(["translate", "apply", "--model-dir", str(tmp_path / "model"), "--condition", str(tmp_path / "labels.png"),
                 "--out", str(tmp_path / "out.nii.gz")]) == 0
    assert read_image_array(tmp_path / "out.nii.gz").dtype == np.float32
