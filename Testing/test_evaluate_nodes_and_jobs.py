"""SynthEvaluate on MRML nodes, and background jobs with progress and cancel."""

from __future__ import annotations

import sys
import time

import numpy as np
import pytest

from MedSynthCommonLib.background import BackgroundJob
from SynthEvaluateLib.logic import segmentation_metrics_on_nodes
from SynthLesionLib import Geometry, MedSynthInputError
from MedSynthCommonLib.mrml import fill_segmentation, output_volume


def test_segmentation_metrics_on_nodes(scene):
    geometry = Geometry(origin=(10, -5, 30), spacing=(1.0, 1.0, 2.0))
    volume = output_volume(scene, np.zeros((20, 40, 40), np.int16), geometry, "ref")
    reference = np.zeros((20, 40, 40), bool)
    reference[5:10, 10:20, 10:20] = True
    predicted = np.roll(reference, 2, axis=2)  # shifted by 2 mm along i
    seg_ref = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "truth")
    fill_segmentation(seg_ref, [("lesion", reference, (1, 0, 0))], geometry, volume)
    seg_pred = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "model")
    fill_segmentation(seg_pred, [("lesion", predicted, (0, 1, 0))], geometry, volume)
    table, metrics = segmentation_metrics_on_nodes(seg_ref, "lesion", seg_pred, "lesion", volume, tolerance_mm=2.0)
    assert metrics["dice"] == pytest.approx(0.8)
    assert metrics["hd95_mm"] == pytest.approx(2.0)
    assert metrics["nsd_2mm"] == 1.0 and metrics["lesions_detected"] == 1
    assert table.GetNumberOfRows() == 1
    with pytest.raises(MedSynthInputError, match="no segment 'tumour'"):
        segmentation_metrics_on_nodes(seg_ref, "tumour", seg_pred, "lesion", volume)


def test_background_job_streams_output_and_finishes():
    job = BackgroundJob([sys.executable, "-c", "import time\nfor i in range(3):\n    print('step', i)\n"]).start()
    assert job.wait(30) == 0
    time.sleep(0.2)
    assert job.poll() == ["step 0", "step 1", "step 2"]


def test_background_job_can_be_cancelled():
    job = BackgroundJob([sys.executable, "-c", "import time\nprint('started', flush=True)\ntime.sleep(60)"]).start()
    deadline = time.time() + 20
    while not job.poll() and time.time() < deadline:
        time.sleep(0.05)
    job.cancel()
    assert not job.running and job.cancelled and job.returncode != 0


def test_cancel_ends_the_whole_process_tree(tmp_path):
    """PythonSlicer is a launcher that starts a child: Cancel must end the child too."""
    import os

    pid_file = tmp_path / "child.pid"
    (tmp_path / "child.py").write_text(f"import os, time\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))\n"
                                       "time.sleep(60)\n")
    launcher = f"import subprocess, sys\nsubprocess.Popen([sys.executable, {str(tmp_path / 'child.py')!r}]).wait()\n"
    job = BackgroundJob([sys.executable, "-c", launcher]).start()
    deadline = time.time() + 20
    while not (pid_file.exists() and pid_file.read_text()) and time.time() < deadline:
        time.sleep(0.05)
    child = int(pid_file.read_text())
    job.cancel(timeout=5)
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        pytest.fail("the launcher's child survived Cancel")


def test_background_medsynth_job_runs_the_cli(tmp_path):
    for name in ("a.nii.gz", "b.nii.gz"):
        (tmp_path / name).write_bytes(b"x")
    job = BackgroundJob.medsynth("evaluate", "reader-study", "create", "--study", str(tmp_path / "s"),
                                 "--real", str(tmp_path / "a.nii.gz"), "--synthetic", str(tmp_path / "b.nii.gz"),
                                 commands=("SynthEvaluateLib.cli.commands:register",)).start()
    assert job.wait(120) == 0
    assert (tmp_path / "s" / "study.json").exists()
