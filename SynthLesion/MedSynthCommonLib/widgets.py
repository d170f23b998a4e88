"""What every MedSynth panel shares, written once:

- ``ParameterNodeLifecycle``: the module-widget lifecycle of Slicer's ExtensionWizard template (a
  parameter node bound to the GUI while the module is shown, released when it is left or the
  scene closes, and taken up again after);
- ``PanelSection``: what every section of a panel is given (the widgets, the current parameter
  node, the logic, the dependency check) and how it offers its button (enabled, or a tooltip
  saying why not);
- ``JobSection``: a panel section that runs a ``medsynth`` command in a background process, with
  its Run/Cancel button and its log (build-db, training, the evaluation protocols).

Only the three module widgets use these; the engine never does.  All are Qt-free in their
imports: they are given the widgets (PythonQt's in Slicer, PyQt's in the tests) and call only
methods both have.  A widget's ``setup`` calls ``loadPanel`` (its .ui, its logic, the scene) and
implements:

- ``_updateGui(caller=None, event=None)``: called on every change of the parameter node;
- optionally ``_savedSelections(node)`` -> anything, read before the node is bound to the GUI
  (binding resets segment selectors, whose selected segment ids the node keeps), and
  ``_restoreSelections(node, saved)`` after it.
"""

from __future__ import annotations

from typing import Callable, ContextManager


class ParameterNodeLifecycle:
    """Mixin for ``ScriptedLoadableModuleWidget`` + ``VTKObservationMixin`` subclasses."""

    _parameterNode = None
    _parameterNodeGuiTag = None

    def loadPanel(self, uiWidget, logic, scene) -> None:
        """Show ``uiWidget`` (the module's loaded .ui) in the panel as ``self.ui``, bound to ``scene``,
        with ``logic``; the parameter node follows the scene from now on."""
        import slicer

        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(scene)
        self.logic = logic
        self.watchScene(scene)

    def watchScene(self, scene) -> None:
        """Release the parameter node when ``scene`` starts closing; take it up again after."""
        self.addObserver(scene, scene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(scene, scene.EndCloseEvent, self.onSceneEndClose)

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self._stopObserving(self._parameterNode)

    def onSceneStartClose(self, caller, event) -> None:
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())

    def setParameterNode(self, inputParameterNode) -> None:
        import vtk

        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._stopObserving(self._parameterNode)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            saved = self._savedSelections(self._parameterNode)
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateGui)
            self._restoreSelections(self._parameterNode, saved)
            self._updateGui()

    def _stopObserving(self, node) -> None:
        import vtk

        self.removeObserver(node, vtk.vtkCommand.ModifiedEvent, self._updateGui)

    def _savedSelections(self, node):
        return None

    def _restoreSelections(self, node, saved) -> None:
        pass

    def _updateGui(self, caller=None, event=None) -> None:
        raise NotImplementedError


class PanelSection:
    """A section of a module's panel, a class of its own as Slicer's Segment Editor effects are:
    it connects its widgets, says in ``update(p)`` why its button is off, and does its work; the
    module widget assembles the sections.  ``parameterNode`` is a function returning the node
    that is current (the widget binds another when the scene closes)."""

    def __init__(self, ui, parameterNode: Callable[[], object], logic=None,
                 ensureDependencies: Callable[[], bool] | None = None):
        self.ui, self._parameterNode, self.logic, self._ensureDependencies = ui, parameterNode, logic, ensureDependencies

    @staticmethod
    def offer(button, problem: str | None, hint: str) -> None:
        """``button`` enabled when there is no ``problem``; its tooltip says the problem, else ``hint``."""
        button.enabled = problem is None
        button.toolTip = problem or hint


class JobSection:
    """One panel section whose work runs in a background process (``BackgroundJob``): its button
    reads ``idle_text`` and starts the job, or reads ``cancel_text`` and cancels it while it
    runs; the job's output goes to ``log`` (a QPlainTextEdit) and ends with a finished or failed
    line, and then ``on_finished(returncode)`` runs (show the report, the queue, ...).
    With a ``timer`` (a QTimer, given by the module so that this class needs no Qt) the section
    polls its job every ``interval_ms`` while it runs; without one the caller calls ``poll``.

    ``start`` returns a started job; ``guard`` is a context factory that reports an exception to
    the user (``slicer.util.tryWithErrorDisplay`` in Slicer); ``tr`` translates the texts every
    section shares (Slicer's ``tr``); ``idle_text`` and ``cancelled_text`` are given translated."""

    CANCEL, CANCELLED, FINISHED, FAILED = "Cancel", "Cancelled.", "Finished.", "Ended with errors (see above)."

    def __init__(self, button, log, idle_text: str, start: Callable[[], object],
                 on_finished: Callable[[int], None] | None = None, guard: Callable[[], ContextManager] | None = None,
                 cancelled_text: str | None = None, tr: Callable[[str], str] = str, timer=None,
                 interval_ms: int = 500):
        self.button, self.log, self.idle_text, self.start = button, log, idle_text, start
        self.on_finished, self.guard = on_finished, guard
        self.cancel_text, self.cancelled_text = tr(self.CANCEL), cancelled_text or tr(self.CANCELLED)
        self.finished_text, self.failed_text = tr(self.FINISHED), tr(self.FAILED)
        self.job = None
        self.timer = timer
        if timer is not None:
            timer.setInterval(interval_ms)
            timer.timeout.connect(self.poll)  # PythonQt and PyQt spell the signal alike

    @property
    def running(self) -> bool:
        return self.job is not None and self.job.running

    def update(self, ready: bool, problem: str | None = None, hint: str = "") -> None:
        """The button's text, state and tooltip: enabled while running (to cancel) or when
        ``ready``; the tooltip says ``problem`` while it is not ready, else ``hint``."""
        self.button.setText(self.cancel_text if self.running else self.idle_text)
        self.button.setEnabled(self.running or ready)
        self.button.setToolTip(problem if problem and not self.running else hint)

    def run_or_cancel(self, dependencies_ready: Callable[[], bool] = lambda: True) -> bool:
        """Cancel the running job, or start one (after ``dependencies_ready()``); True when a job
        was started.  An exception from ``start`` is shown by ``guard`` and nothing runs."""
        import contextlib

        if self.running:
            self.cancel()
            self.log.appendPlainText(self.cancelled_text)
            return False
        if not dependencies_ready():
            return False
        self.job = None
        with (self.guard() if self.guard is not None else contextlib.nullcontext()):
            self.job = self.start()
            self.log.clear()
        if self.job is not None and self.timer is not None:
            self.timer.start()
        return self.job is not None

    def poll(self) -> bool:
        """Show the job's new output; once it has ended, its last lines, the status line and
        ``on_finished``.  Returns whether the job is still running."""
        if self.job is None:
            return False
        self._show(self.job.poll())
        if self.job.running:
            return True
        job, self.job = self.job, None
        self._stop_timer()
        self._show(job.last_output())
        self.log.appendPlainText(self.finished_text if job.returncode == 0 else self.failed_text)
        if self.on_finished is not None:
            self.on_finished(job.returncode)
        return False

    def _show(self, lines: list[str]) -> None:
        for line in lines:
            if line.strip():  # blank lines (between a command's sections) would only stretch the log
                self.log.appendPlainText(line)

    def cancel(self) -> None:
        """Cancel a running job (the module is closing)."""
        if self.running:
            self.job.cancel()
        self.job = None
        self._stop_timer()

    def _stop_timer(self) -> None:
        if self.timer is not None:
            self.timer.stop()
