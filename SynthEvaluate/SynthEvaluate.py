import shlex
import time
from pathlib import Path
from typing import Annotated

import qt

import slicer
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.ScriptedLoadableModule import (ScriptedLoadableModule, ScriptedLoadableModuleLogic,
                                           ScriptedLoadableModuleTest, ScriptedLoadableModuleWidget)
from slicer.util import VTKObservationMixin

from MedSynthCommonLib.widgets import JobSection, PanelSection, ParameterNodeLifecycle
from slicer.parameterNodeWrapper import WithinRange, parameterNodeWrapper
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode, vtkMRMLTableNode

from MedSynthCommonLib.options import chosen_path
from SynthEvaluateLib.choices import ProtocolChoice
from SynthEvaluateLib.dependencies import missing_requirements

CASE_FILE_PATTERNS = ("*.nii.gz", "*.nii", "*.nrrd", "*.mha", "*.png", "*.dcm")


#
# SynthEvaluate
#


class SynthEvaluate(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("SynthEvaluate")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Image Synthesis")]
        self.parent.dependencies = []
        self.parent.contributors = ["MedSynth developers"]
        self.parent.helpText = _(
            "Judge synthetic data: segmentation metrics between segments (Dice, surface Dice in mm, HD95, "
            "lesion-wise detection), a blinded reader study (visual Turing test), and classifier protocols "
            "(GAN-train/GAN-test, augmentation study) run in the background with HTML reports. "
            "Everything is also available from the console (SynthEvaluateLib) and as 'medsynth evaluate'."
        )
        self.parent.acknowledgementText = _("GAN-train/GAN-test after Shmelkov et al., ECCV 2018.")


#
# SynthEvaluateParameterNode
#


@parameterNodeWrapper
class SynthEvaluateParameterNode:
    referenceVolume: vtkMRMLScalarVolumeNode
    referenceSegmentation: vtkMRMLSegmentationNode
    referenceSegmentId: str = ""
    predictedSegmentation: vtkMRMLSegmentationNode
    predictedSegmentId: str = ""
    nsdTolerance: Annotated[float, WithinRange(0.0, 50.0)] = 2.0
    metricsTable: vtkMRMLTableNode
    studyFolder: Path
    readerName: str = ""
    realFolder: Path
    syntheticFolder: Path
    caseConfidence: Annotated[int, WithinRange(1, 5)] = 3
    protocol: ProtocolChoice = ProtocolChoice("gan-train-test")
    epochs: Annotated[int, WithinRange(1, 500)] = 20
    reportFolder: Path
    studyRealTrain: Path
    studyHealthy: Path
    studyTest: Path
    studyLesionLabel: Annotated[int, WithinRange(1, 255)] = 2
    studyIterations: Annotated[int, WithinRange(1, 100000)] = 500
    studyReportFolder: Path
    findingsHealthy: Path
    triageModel: Path
    triageCases: Path
    triageFinding: str = "hypodense lesion"
    triageOrganNames: str = ""
    triageQueue: Path
    calibrationHealthy: Path
    calibratedModel: Path


class SegmentationMetricsSection(PanelSection):
    """Dice, surface Dice, HD95 and lesion detection between a reference and a predicted segment,
    into a table node."""

    def __init__(self, ui, parameterNode, logic, ensureDependencies) -> None:
        super().__init__(ui, parameterNode, logic, ensureDependencies)
        self.ui.referenceSegmentSelector.connect("currentSegmentChanged(QString)", self.onReferenceSegmentChanged)
        self.ui.predictedSegmentSelector.connect("currentSegmentChanged(QString)", self.onPredictedSegmentChanged)
        self.ui.computeMetricsButton.connect("clicked(bool)", self.onCompute)

    @staticmethod
    def savedSelections(node):
        """The segment ids the node keeps (binding the GUI resets the segment selectors)."""
        return node.referenceSegmentId, node.predictedSegmentId

    def restoreSelections(self, node, saved) -> None:
        self.ui.referenceSegmentSelector.setCurrentNode(node.referenceSegmentation)
        self.ui.predictedSegmentSelector.setCurrentNode(node.predictedSegmentation)
        self.ui.referenceSegmentSelector.setCurrentSegmentID(saved[0])
        self.ui.predictedSegmentSelector.setCurrentSegmentID(saved[1])

    def onReferenceSegmentChanged(self, segmentId) -> None:
        if self._parameterNode():
            self._parameterNode().referenceSegmentId = segmentId or ""

    def onPredictedSegmentChanged(self, segmentId) -> None:
        if self._parameterNode():
            self._parameterNode().predictedSegmentId = segmentId or ""

    def update(self, p) -> None:
        for selector, node in ((self.ui.referenceSegmentSelector, p.referenceSegmentation),
                               (self.ui.predictedSegmentSelector, p.predictedSegmentation)):
            if selector.currentNode() != node:
                selector.setCurrentNode(node)
        problem = None
        if not (p.referenceVolume and p.referenceSegmentId and p.predictedSegmentId):
            problem = _("Select the reference volume and both segments.")
        elif p.referenceSegmentation is p.predictedSegmentation and p.referenceSegmentId == p.predictedSegmentId:
            problem = _("Reference and prediction are the same segment: choose another prediction.")
        self.offer(self.ui.computeMetricsButton, problem, _("Compute Dice, NSD, HD95 and lesion detection."))

    def onCompute(self) -> None:
        if not self._ensureDependencies():
            return
        p = self._parameterNode()
        with slicer.util.tryWithErrorDisplay(_("Computing the metrics failed."), waitCursor=True):
            table, _metrics = self.logic.segmentationMetrics(
                p.referenceSegmentation, p.referenceSegmentId, p.predictedSegmentation, p.predictedSegmentId,
                p.referenceVolume, p.nsdTolerance, p.metricsTable)
            p.metricsTable = table
            slicer.app.applicationLogic().GetSelectionNode().SetActiveTableID(table.GetID())
            slicer.app.applicationLogic().PropagateTableSelection()


class ReaderStudySection(PanelSection):
    """The blinded reader study: create or open a study, show one anonymised case at a time,
    record each answer with its confidence and reading time, show the results."""

    def __init__(self, ui, parameterNode, refresh) -> None:
        super().__init__(ui, parameterNode)
        self._refresh = refresh
        self.study = self.case = self.caseNode = None
        self.caseShownAt = 0.0
        self.ui.createStudyButton.connect("clicked(bool)", self.onCreate)
        self.ui.openStudyButton.connect("clicked(bool)", self.onOpen)
        self.ui.answerRealButton.connect("clicked(bool)", lambda: self.onAnswer("real"))
        self.ui.answerSyntheticButton.connect("clicked(bool)", lambda: self.onAnswer("synthetic"))
        self.ui.studyResultsButton.connect("clicked(bool)", self.onResults)

    def update(self, p) -> None:
        answering = self.study is not None and self.case is not None
        self.ui.answerRealButton.enabled = answering
        self.ui.answerSyntheticButton.enabled = answering
        self.ui.studyResultsButton.enabled = self.study is not None
        self.ui.createStudyButton.enabled = all(chosen_path(v) for v in (p.studyFolder, p.realFolder, p.syntheticFolder))
        self.ui.openStudyButton.enabled = bool(chosen_path(p.studyFolder))

    def onCreate(self) -> None:
        from SynthEvaluateLib.studies.reader_study import ReaderStudy

        p = self._parameterNode()
        with slicer.util.tryWithErrorDisplay(_("The study could not be created."), waitCursor=True):
            real = sorted(str(f) for pattern in CASE_FILE_PATTERNS for f in Path(p.realFolder).glob(pattern))
            synthetic = sorted(str(f) for pattern in CASE_FILE_PATTERNS for f in Path(p.syntheticFolder).glob(pattern))
            self.study = ReaderStudy.create(p.studyFolder, real, synthetic, seed=int(time.time()) % 100000)
            self._showNextCase()

    def onOpen(self) -> None:
        from SynthEvaluateLib.studies.reader_study import ReaderStudy

        with slicer.util.tryWithErrorDisplay(_("The study could not be opened.")):
            self.study = ReaderStudy.open(self._parameterNode().studyFolder)
            self._showNextCase()

    def _showNextCase(self) -> None:
        if self.caseNode is not None:
            slicer.mrmlScene.RemoveNode(self.caseNode)
            self.caseNode = None
        self.case = self.study.next_case(self._parameterNode().readerName)
        answered = len(self.study.cases) - (0 if self.case is None else
                                            sum(1 for c in self.study.cases if c.number >= self.case.number))
        if self.case is None:
            self.ui.studyStatusLabel.text = _("All {n} cases answered. Thank you.").format(n=len(self.study.cases))
        else:
            # blinded: an anonymised copy, named by its case number only, not linked to any file
            shown = self.study.shown_file(self.case)
            self.caseNode = slicer.util.loadVolume(str(shown), {"name": f"Case {self.case.number}", "show": True})
            self.caseNode.SetAndObserveStorageNodeID(None)
            self.caseShownAt = time.time()
            self.ui.studyStatusLabel.text = _("Case {number} of {n} ({done} answered; study seed {seed})").format(
                number=self.case.number, n=len(self.study.cases), done=answered, seed=self.study.seed)
        self._refresh()

    def onAnswer(self, answer: str) -> None:
        p = self._parameterNode()
        with slicer.util.tryWithErrorDisplay(_("The answer could not be saved.")):
            self.study.record(p.readerName, self.case.number, answer, p.caseConfidence, time.time() - self.caseShownAt)
            self._showNextCase()

    def onResults(self) -> None:
        from SynthEvaluateLib.mrml import results_table

        with slicer.util.tryWithErrorDisplay(_("No results yet.")):
            table = results_table(slicer.mrmlScene, self.study.results(), "Reader study results")
            slicer.app.applicationLogic().GetSelectionNode().SetActiveTableID(table.GetID())
            slicer.app.applicationLogic().PropagateTableSelection()


#
# SynthEvaluateWidget
#


class SynthEvaluateWidget(ParameterNodeLifecycle, ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._metrics = None  # SegmentationMetricsSection
        self._readerStudy = None  # ReaderStudySection
        self._jobs = {}  # panel section -> its JobSection (protocol, study, triage, findings, calibrate)
        self._jobReady = {}  # panel section -> whether its inputs allow a start (parameter node -> bool)
        self._queueTable = None

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        self.loadPanel(slicer.util.loadUI(self.resourcePath("UI/SynthEvaluate.ui")), SynthEvaluateLogic(), slicer.mrmlScene)
        node = lambda: self._parameterNode  # noqa: E731
        self._metrics = SegmentationMetricsSection(self.ui, node, self.logic, self._ensureDependencies)
        self._readerStudy = ReaderStudySection(self.ui, node, self._updateGui)
        self.ui.triageTableView.connect("clicked(QModelIndex)", self.onQueueRowClicked)
        self._addJobSections()
        self.initializeParameterNode()

    def _addJobSections(self) -> None:
        """The sections that run in the background: button, log, when it may start, how it
        starts, what it shows when it ends."""
        p = lambda: self._parameterNode  # noqa: E731
        paths = lambda *values: all(chosen_path(v) for v in values)  # noqa: E731
        guard = lambda: slicer.util.tryWithErrorDisplay(_("The job could not start."))  # noqa: E731
        sections = {  # button, log, idle text, ready(node), start(), show(), cancelled text
            "protocol": (self.ui.runProtocolButton, self.ui.protocolLogTextEdit, _("Run in background"),
                         lambda n: paths(n.realFolder, n.syntheticFolder, n.reportFolder),
                         lambda: self.logic.startProtocol(p().protocol.value, p().realFolder, p().syntheticFolder,
                                                          p().reportFolder, p().epochs),
                         lambda: self._showReport(p().reportFolder, roc=True), None),
            "study": (self.ui.runStudyButton, self.ui.studyLogTextEdit, _("Run in background"),
                      lambda n: paths(n.studyTest, n.studyReportFolder, n.studyRealTrain, n.studyHealthy),
                      lambda: self.logic.startSegmentStudy(p().studyRealTrain, p().studyHealthy, p().studyTest,
                                                           p().studyLesionLabel, p().studyIterations,
                                                           p().studyReportFolder),
                      lambda: self._showReport(p().studyReportFolder), None),
            "triage": (self.ui.runTriageButton, self.ui.triageLogTextEdit, _("Build queue in background"),
                       lambda n: paths(n.triageModel, n.triageCases, n.triageQueue) and bool(n.triageFinding.strip()),
                       lambda: self.logic.startTriage(p().triageModel, p().triageCases, p().triageFinding.strip(),
                                                      p().triageQueue, p().triageOrganNames), self._showQueue, None),
            "findings": (self.ui.trainFindingsButton, self.ui.triageLogTextEdit, _("Train model in background"),
                         lambda n: paths(n.findingsHealthy, n.triageModel) and bool(n.triageOrganNames.strip()),
                         lambda: self.logic.startFindingsTraining(p().findingsHealthy, p().triageOrganNames,
                                                                  p().triageModel),
                         lambda: self._openReport(self.logic.findingsReportFolder(p().triageModel)),
                         _("Cancelled (training again resumes where it stopped).")),
            "calibrate": (self.ui.calibrateFindingsButton, self.ui.triageLogTextEdit, _("Calibrate model in background"),
                          lambda n: paths(n.triageModel, n.calibrationHealthy, n.calibratedModel)
                          and bool(n.triageOrganNames.strip()),
                          lambda: self.logic.startCalibration(p().triageModel, p().calibrationHealthy,
                                                              p().triageOrganNames, p().calibratedModel),
                          lambda: setattr(p(), "triageModel", p().calibratedModel), None),  # the queue uses it
        }
        for name, (button, log, idle, ready, start, show, cancelled) in sections.items():
            self._jobs[name] = JobSection(button, log, idle, start, lambda code, show=show: self._jobEnded(code, show),
                                          guard, cancelled, _, timer=qt.QTimer())
            self._jobReady[name] = ready
            button.connect("clicked(bool)", lambda checked=False, name=name: self.onRunOrCancel(name))

    def cleanup(self) -> None:
        self.removeObservers()
        for section in self._jobs.values():
            section.cancel()

    def _savedSelections(self, node):
        return self._metrics.savedSelections(node)

    def _restoreSelections(self, node, saved) -> None:
        self._metrics.restoreSelections(node, saved)

    def _updateGui(self, caller=None, event=None) -> None:
        p = self._parameterNode
        if p is None:
            return
        for section in (self._metrics, self._readerStudy):
            if section is not None:
                section.update(p)
        for name, section in self._jobs.items():
            section.update(self._jobReady[name](p))

    def _ensureDependencies(self, training: bool = False) -> bool:
        """The metrics need pip packages only; the training protocols also torch (from the
        PyTorch extension, installed first) and MONAI."""
        from MedSynthCommonLib.dependencies import ensure_torch, install_in_slicer

        with slicer.util.tryWithErrorDisplay(_("SynthEvaluate cannot run this without PyTorch.")):
            if training and not ensure_torch("SynthEvaluate"):
                return False
            return install_in_slicer(missing_requirements(training), "SynthEvaluate", slicer)
        return False

    # --- background jobs: one JobSection per panel section, each polling its job

    def onRunOrCancel(self, name: str) -> None:
        """Cancel the section's job, or start it (after the dependency check)."""
        self._jobs[name].run_or_cancel(lambda: self._ensureDependencies(training=True))
        self._updateGui()

    def _jobEnded(self, returncode: int, show) -> None:
        if returncode == 0:
            show()
        self._updateGui()

    def onQueueRowClicked(self, index) -> None:
        """Load the clicked scan with its evidence overlay and the evidence region as a segment."""
        if self._queueTable is None:
            return
        p = self._parameterNode
        with slicer.util.tryWithErrorDisplay(_("The scan could not be shown."), waitCursor=True):
            shown = self.logic.showQueueCase(p.triageModel, self._queueTable, index.row(), p.triageCases,
                                             p.triageOrganNames)
            slicer.util.setSliceViewerLayers(background=shown["volume"], foreground=shown["evidence"],
                                             foregroundOpacity=0.4, fit=True)
            segmentation = shown["segmentation"]
            segmentation.SetReferenceImageGeometryParameterFromVolumeNode(shown["volume"])
            segmentation.GetDisplayNode().SetAllSegmentsVisibility(True)
            centre = segmentation.GetSegmentCenterRAS(segmentation.GetSegmentation().GetNthSegmentID(0))
            if centre is not None:
                slicer.modules.markups.logic().JumpSlicesToLocation(*centre, True)
            self.ui.triageLogTextEdit.appendPlainText(shown["segment"])

    @staticmethod
    def _openReport(folder) -> None:
        report = Path(folder) / "report.html"
        if report.exists():
            qt.QDesktopServices.openUrl(qt.QUrl.fromLocalFile(str(report)))

    def _showReport(self, folder, roc: bool = False) -> None:
        """A finished protocol's or study's summary table, ROC chart and HTML report."""
        folder = Path(folder)
        if (folder / "summary.csv").exists():
            slicer.util.loadTable(str(folder / "summary.csv"))
            chart = self.logic.rocChartFromReport(folder) if roc else None
            if chart is not None:
                slicer.modules.plots.logic().ShowChartInLayout(chart)
            self._openReport(folder)

    def _showQueue(self) -> None:
        queue = Path(self._parameterNode.triageQueue)
        if queue.exists():
            self._queueTable = self.logic.queueTable(queue, self._queueTable)
            self.ui.triageTableView.setMRMLTableNode(self._queueTable)


#
# SynthEvaluateLogic
#


class SynthEvaluateLogic(ScriptedLoadableModuleLogic):
    """Thin adapter over SynthEvaluateLib; every method takes plain arguments (console use)."""

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        self._classifier = None
        self._classifierFolder = None

    def getParameterNode(self):
        return SynthEvaluateParameterNode(super().getParameterNode())

    def segmentationMetrics(self, referenceSegmentation, referenceSegment, predictedSegmentation, predictedSegment,
                            referenceVolume, toleranceMm=2.0, table=None):
        """Dice, NSD, HD95 and lesion detection into a table node; returns (table, metrics)."""
        from SynthEvaluateLib.logic import segmentation_metrics_on_nodes

        return segmentation_metrics_on_nodes(referenceSegmentation, referenceSegment, predictedSegmentation,
                                             predictedSegment, referenceVolume, toleranceMm, table)

    def rocChartFromReport(self, reportFolder):
        """A plot chart of the first seed's ROC curves of every arm in a report, or None."""
        from SynthEvaluateLib.logic import roc_chart_from_results

        return roc_chart_from_results(slicer.mrmlScene, Path(reportFolder) / "results.json")

    def startSegmentStudy(self, realTrain, healthy, test, lesionLabel=2, iterations=500, reportFolder=None):
        """Run ``medsynth evaluate segment-study`` (CSV files) in a background process; returns the job."""
        return _startEvaluate("segment-study", "--real-train", realTrain, "--healthy", healthy, "--test", test,
                              "--lesion-label", lesionLabel, "--iterations", iterations, "--out", reportFolder)

    def startProtocol(self, protocol, realFolder, syntheticFolder, reportFolder, epochs=20):
        """Run ``medsynth evaluate PROTOCOL`` in a background process; returns the job.  The synthetic folder
        may be a generator's model folder; "generator" needs one and records its figures in it."""
        synthetic = ["--model-dir", syntheticFolder, "--record"] if protocol == "generator" else ["--synthetic", syntheticFolder]
        return _startEvaluate(protocol, "--real", realFolder, *synthetic, "--epochs", epochs, "--out", reportFolder)

    @staticmethod
    def findingsReportFolder(modelFolder) -> Path:
        """Where a findings model trained here gets its report: beside the model folder."""
        return Path(modelFolder).parent / f"{Path(modelFolder).name}_report"

    def startFindingsTraining(self, healthy, organNames, modelFolder, epochs=60):
        """Run ``medsynth evaluate ct-findings`` (lesions in the healthy CTs, default organs and
        label set) in a background process; the model goes to ``modelFolder``; returns the job."""
        return _startEvaluate("ct-findings", "--healthy", healthy, *_organNames(organNames), "--epochs", epochs,
                              "--model-out", modelFolder, "--out", self.findingsReportFolder(modelFolder))

    def startCalibration(self, modelFolder, healthy, organNames, calibratedFolder):
        """Run ``medsynth evaluate calibrate-findings`` (thresholds chosen on healthy CTs like those to be
        read) in a background process: the calibrated copy goes to ``calibratedFolder``; returns the job."""
        return _startEvaluate("calibrate-findings", "--model", modelFolder, "--healthy", healthy,
                              *_organNames(organNames), "--model-out", calibratedFolder)

    def startTriage(self, modelFolder, cases, finding, queueFile, organNames=""):
        """Run ``medsynth evaluate triage`` in a background process; returns the job."""
        return _startEvaluate("triage", "--model", modelFolder, "--cases", cases, "--finding", finding,
                              *_organNames(organNames), "--out", queueFile)

    def queueTable(self, queueFile, table=None):
        """The queue CSV as a table node (``table`` refilled when given)."""
        import csv

        from SynthEvaluateLib.logic import queue_table

        with open(queueFile, encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle))
        return queue_table(slicer.mrmlScene, rows, "Triage queue", table)

    def showQueueCase(self, modelFolder, table, row, cases=None, organNames=""):
        """Load row ``row`` of a queue table: scan, evidence overlay, evidence segment (see
        ``SynthEvaluateLib.logic.show_queue_case``); the case's organ mask comes from ``cases``."""
        from MedSynthCommonLib.mrml import table_rows
        from SynthEvaluateLib.findings.ct_findings_cases import parse_organ_names, read_ct_cases
        from SynthEvaluateLib.logic import show_queue_case
        from SynthEvaluateLib.recipes.findings_model import load_findings_model

        entry = table_rows(table)[row]
        organMask = None
        if cases:
            organMask = next((c.organ_mask for c in read_ct_cases(Path(cases)) if c.case_id == entry["case_id"]), None)
        names = parse_organ_names(shlex.split(organNames)) if organNames.strip() else None
        if self._classifier is None or self._classifierFolder != str(modelFolder):
            self._classifier, self._classifierFolder = load_findings_model(Path(modelFolder)), str(modelFolder)
        return show_queue_case(slicer.mrmlScene, self._classifier, entry, organMask and str(organMask), names)


def _startEvaluate(command: str, *arguments):
    """``medsynth evaluate COMMAND ARGUMENTS`` in a background process; returns the job."""
    from MedSynthCommonLib.background import BackgroundJob

    return BackgroundJob.medsynth("evaluate", command, *map(str, arguments),
                                  commands=("SynthEvaluateLib.cli.commands:register",)).start()


def _organNames(organNames: str) -> list[str]:
    """``--organ-names`` and the panel's items (none when the field is empty)."""
    return ["--organ-names", *shlex.split(organNames)] if organNames.strip() else []


#
# SynthEvaluateTest
#


class SynthEvaluateTest(ScriptedLoadableModuleTest):
    """Runs inside Slicer; the same checks run outside Slicer under pytest in Testing/."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_SynthEvaluate_metrics()

    def test_SynthEvaluate_metrics(self):
        import numpy as np

        from MedSynthCommonLib.geometry import Geometry
        from MedSynthCommonLib.mrml import fill_segmentation, output_volume

        geometry = Geometry(spacing=(1.0, 1.0, 1.0))
        volume = output_volume(slicer.mrmlScene, np.zeros((10, 20, 20), np.int16), geometry, "reference")
        mask = np.zeros((10, 20, 20), bool)
        mask[2:6, 5:10, 5:10] = True
        segmentation = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode", "truth")
        fill_segmentation(segmentation, [("lesion", mask, (1, 0, 0))], geometry, volume)
        table, metrics = SynthEvaluateLogic().segmentationMetrics(segmentation, "lesion", segmentation, "lesion", volume)
        self.assertEqual(metrics["dice"], 1.0)
        self.assertEqual(table.GetNumberOfRows(), 1)
        self.delayDisplay("Test passed")
