"""The panel section that runs a job in the background (``MedSynthCommonLib.widgets.JobSection``),
driven with real Qt widgets (PyQt5, offscreen; Slicer's PythonQt widgets have the same methods)
and real processes."""

from __future__ import annotations

import ast
import os
import sys
import time
from pathlib import Path

import pytest

from MedSynthCommonLib.background import BackgroundJob
from MedSynthCommonLib.widgets import JobSection

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def widgets():
    pytest.importorskip("PyQt5")
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PyQt5 import QtWidgets

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    yield lambda: (QtWidgets.QPushButton(), QtWidgets.QPlainTextEdit())
    del app


def _python(code: str):
    return lambda: BackgroundJob([sys.executable, "-u", "-c", code]).start()


def _until_done(section: JobSection, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while section.poll():
        assert time.monotonic() < deadline, "the job did not end"
        time.sleep(0.05)


def test_a_section_runs_its_job_streams_the_log_and_shows_the_result(widgets):
    button, log = widgets()
    ended = []
    section = JobSection(button, log, "Run in background", _python("import time\nprint('step 1')\nprint()\n"
                                                                   "time.sleep(0.5)\nprint('step 2')"), ended.append)
    section.update(ready=False, problem="Choose the report folder.", hint="Runs the protocol.")
    assert button.text() == "Run in background" and not button.isEnabled()
    assert button.toolTip() == "Choose the report folder."
    log.appendPlainText("an earlier run's log")
    assert section.run_or_cancel()
    section.update(ready=False)  # running: the button cancels, whatever the inputs say
    assert button.text() == "Cancel" and button.isEnabled() and section.running
    _until_done(section)
    lines = log.toPlainText().splitlines()
    assert lines == ["step 1", "step 2", "Finished."] and ended == [0]  # every line but blanks, the earlier log cleared
    section.update(ready=True, hint="Runs the protocol.")
    assert button.text() == "Run in background" and button.isEnabled() and button.toolTip() == "Runs the protocol."


def test_a_failing_job_says_so_and_a_cancelled_one_ends_its_process(widgets):
    button, log = widgets()
    ended = []
    failing = JobSection(button, log, "Run", _python("import sys\nprint('bad input')\nsys.exit(2)"), ended.append,
                         tr=lambda text: f"[{text}]")  # the shared texts go through the module's translation
    assert failing.run_or_cancel()
    _until_done(failing)
    assert log.toPlainText().splitlines() == ["bad input", "[Ended with errors (see above).]"] and ended == [2]

    long = JobSection(button, log, "Run", _python("import time\nprint('started', flush=True)\ntime.sleep(60)"),
                      ended.append, cancelled_text="Cancelled; run again to resume.", tr=lambda text: f"[{text}]")
    assert long.run_or_cancel()
    long.update(ready=False)
    assert button.text() == "[Cancel]" and button.isEnabled()
    job = long.job
    assert not long.run_or_cancel()  # the second click cancels
    assert not job.running and job.returncode is not None and not long.running
    assert log.toPlainText().splitlines()[-1] == "Cancelled; run again to resume."
    assert not long.poll() and ended == [2]  # a cancelled job shows no result


def test_a_section_given_a_timer_polls_its_own_job_and_stops_polling_when_it_ends(widgets):
    """The module gives a QTimer and only starts the job: the section streams the log while the
    job runs, stops its timer when the job ends or is cancelled."""
    from PyQt5 import QtCore, QtWidgets

    button, log = widgets()
    ended = []
    timer = QtCore.QTimer()
    section = JobSection(button, log, "Run", _python("import time\nprint('step 1', flush=True)\ntime.sleep(0.4)"),
                         ended.append, timer=timer, interval_ms=50)
    assert timer.interval() == 50 and not timer.isActive()
    assert section.run_or_cancel() and timer.isActive()
    deadline = time.monotonic() + 30
    while not ended:
        assert time.monotonic() < deadline, "the section did not poll its job"
        QtWidgets.QApplication.processEvents()
        time.sleep(0.02)
    assert ended == [0] and not timer.isActive() and log.toPlainText().splitlines() == ["step 1", "Finished."]

    long = JobSection(button, log, "Run", _python("import time\ntime.sleep(60)"), ended.append, timer=timer)
    assert long.run_or_cancel() and timer.isActive()
    assert not long.run_or_cancel() and not timer.isActive()  # cancelled: nothing left to poll


def test_a_job_that_cannot_start_runs_nothing(widgets):
    import contextlib

    button, log = widgets()
    shown = []

    @contextlib.contextmanager
    def guard():  # what slicer.util.tryWithErrorDisplay does: show the error, go on
        try:
            yield
        except Exception as error:  # noqa: BLE001
            shown.append(str(error))

    def start():
        raise ValueError("The model folder is not writable.")

    section = JobSection(button, log, "Run", start, guard=guard)
    assert not section.run_or_cancel() and shown == ["The model folder is not writable."] and not section.running
    assert not JobSection(button, log, "Run", _python("print(1)")).run_or_cancel(lambda: False)  # dependencies refused


@pytest.mark.parametrize("module", ["SynthLesion", "SynthTranslate", "SynthEvaluate"])
def test_every_module_runs_its_background_work_through_job_sections(module):
    """One mechanism: no module widget (or section of its panel) polls, watches or cancels a job itself."""
    tree = ast.parse((ROOT / module / f"{module}.py").read_text())
    panel = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name.endswith(("Widget", "Section"))]
    calls = {n.func.id for c in panel for n in ast.walk(c) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    assert "JobSection" in calls
    attributes = {n.attr for c in panel for n in ast.walk(c) if isinstance(n, ast.Attribute)}
    assert not attributes & {"running", "returncode", "last_output"}, attributes & {"running", "returncode"}
