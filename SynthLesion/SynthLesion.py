import logging
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
from slicer import (vtkMRMLMarkupsFiducialNode, vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode,
                    vtkMRMLTableNode)

from MedSynthCommonLib.options import chosen_path
from SynthLesionLib.choices import CAPSULE_VALUES, CapsuleChoice, LesionTypeChoice, PhaseChoice, PresetChoice, SizeChoice
from SynthLesionLib.dependencies import missing_requirements


#
# SynthLesion
#


class SynthLesion(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("SynthLesion")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Image Synthesis")]
        self.parent.dependencies = []
        self.parent.contributors = ["MedSynth developers"]
        self.parent.helpText = _(
            "Insert realistic synthetic lesions into an organ of a CT or MR volume and get the image "
            "together with its exact label: one segment per lesion, a table of lesion records and a "
            "structured finding. Choose the organ segment, a preset, a size class and a seed; the "
            "same inputs and seed always give the same result. "
            '<a href="https://github.com/medsynth/MedSynth#synthlesion">Documentation</a>.'
        )
        self.parent.acknowledgementText = _(
            "Lesion model after Hu et al., Label-Free Liver Tumor Segmentation, CVPR 2023 "
            "(reimplemented from the paper)."
        )
        # sample data (a real CT with its liver) once the application has started
        slicer.app.connect("startupCompleted()", registerSampleData)


def registerSampleData():
    """Add the MedSynth sample case to the Sample Data module (downloaded on first use, checked
    against its SHA-256)."""
    import SampleData

    from SynthLesionLib.sample_data import register

    register(SampleData.SampleDataLogic, thumbnail=str(Path(__file__).parent / "Resources" / "Icons" / "SynthLesion.png"))


#
# SynthLesionParameterNode
#


@parameterNodeWrapper
class SynthLesionParameterNode:
    """GUI state, saved with the scene."""

    inputVolume: vtkMRMLScalarVolumeNode
    inputSegmentation: vtkMRMLSegmentationNode
    organSegmentId: str = ""
    preset: PresetChoice = PresetChoice("ct-liver")
    sizeClass: SizeChoice = SizeChoice("small")
    lesionCount: Annotated[int, WithinRange(1, 50)] = 1
    lesionType: LesionTypeChoice = LesionTypeChoice("preset")
    phase: PhaseChoice = PhaseChoice("preset")
    seed: Annotated[int, WithinRange(0, 2147483647)] = 0
    massEffectFromPreset: bool = True
    massEffect: Annotated[float, WithinRange(0.0, 100.0)] = 30.0
    capsule: CapsuleChoice = CapsuleChoice("auto")
    avoidVessels: bool = True
    useMarkups: bool = False
    markups: vtkMRMLMarkupsFiducialNode
    oneLesionSegment: bool = False
    outputVolume: vtkMRMLScalarVolumeNode
    outputSegmentation: vtkMRMLSegmentationNode
    outputTable: vtkMRMLTableNode
    presetFile: Path
    lesionSegmentId: str = ""
    learnedPresetFile: Path
    batchCases: Path
    batchVariants: Annotated[int, WithinRange(1, 100000)] = 10
    batchWorkers: Annotated[int, WithinRange(1, 64)] = 2
    batchOut: Path


#
# The panel's sections
#


class InsertLesionsSection(PanelSection):
    """Insert lesions into the selected volume and organ segment: options, a new seed, Apply
    (image, label segmentation, lesion table and finding text as nodes)."""

    def __init__(self, ui, parameterNode, logic, ensureDependencies) -> None:
        super().__init__(ui, parameterNode, logic, ensureDependencies)
        self.ui.organSegmentSelector.connect("currentSegmentChanged(QString)", self.onOrganSegmentChanged)
        self.ui.applyButton.connect("clicked(bool)", self.onApply)
        self.ui.newSeedButton.connect("clicked(bool)", self.onNewSeed)

    def onOrganSegmentChanged(self, segmentId) -> None:
        if self._parameterNode():
            self._parameterNode().organSegmentId = segmentId or ""

    def onNewSeed(self) -> None:
        """A fresh seed, so that the next Apply differs on purpose (the seed is kept in the scene)."""
        import secrets

        if self._parameterNode():
            self._parameterNode().seed = secrets.randbelow(2**31)

    def problem(self, p) -> str | None:
        """Why Apply cannot run yet (None when it can)."""
        if not p or not p.inputVolume:
            return _("Select an input volume.")
        if not p.inputSegmentation:
            return _("Select a segmentation that contains the organ.")
        if not p.organSegmentId:
            return _("Select the organ segment.")
        if p.useMarkups and not p.markups:
            return _("Select the markups whose points are lesion centres.")
        return None

    def update(self, p) -> None:
        if p:
            self._followOptions(p)
        self.offer(self.ui.applyButton, self.problem(p), _("Insert lesions and create the outputs."))

    def _followOptions(self, p) -> None:
        """Widgets that only matter for some choices are enabled only then; with the preset's
        mass effect, the slider shows the preset's value (the command line's default too)."""
        from SynthLesionLib.presets import get_preset

        self.ui.markupsSelector.enabled = p.useMarkups
        self.ui.massEffectSliderWidget.enabled = not p.massEffectFromPreset
        presetValue = get_preset(p.preset.value).mass_effect
        if p.massEffectFromPreset and p.massEffect != presetValue:
            p.massEffect = presetValue

    def onApply(self) -> None:
        if not self._ensureDependencies():
            return
        p = self._parameterNode()
        with slicer.util.tryWithErrorDisplay(_("Lesion synthesis failed."), waitCursor=True):
            outputs = self.logic.process(p)
            p.outputVolume = outputs.volume
            p.outputSegmentation = outputs.segmentation
            p.outputTable = outputs.table
            self.ui.findingTextEdit.setPlainText(outputs.finding_text.GetText())
            slicer.util.setSliceViewerLayers(background=outputs.volume, fit=True)
            if outputs.result.records:
                first = outputs.result.records[0].centre_ras
                slicer.modules.markups.logic().JumpSlicesToLocation(*first, True)


class LearnPresetSection(PanelSection):
    """Fit a preset to real tumours: a tumour segment of the same segmentation gives the lesion
    contrast, size and texture figures, saved as a preset file that Apply then uses."""

    def __init__(self, ui, parameterNode, logic, ensureDependencies) -> None:
        super().__init__(ui, parameterNode, logic, ensureDependencies)
        self.ui.lesionSegmentSelector.connect("currentSegmentChanged(QString)", self.onLesionSegmentChanged)
        self.ui.learnPresetButton.connect("clicked(bool)", self.onLearn)

    def onLesionSegmentChanged(self, segmentId) -> None:
        if self._parameterNode():
            self._parameterNode().lesionSegmentId = segmentId or ""

    def update(self, p) -> None:
        problem = None
        if not p or not (p.inputVolume and p.inputSegmentation and p.organSegmentId and p.lesionSegmentId):
            problem = _("Select the volume, the segmentation, its organ segment and its tumour segment.")
        elif p.lesionSegmentId == p.organSegmentId:
            problem = _("The tumour segment must differ from the organ segment.")
        elif not chosen_path(p.learnedPresetFile):
            problem = _("Choose where to save the preset (.json).")
        self.offer(self.ui.learnPresetButton, problem, _("Fit a preset to the tumour segment."))

    def onLearn(self) -> None:
        if not self._ensureDependencies():
            return
        p = self._parameterNode()
        with slicer.util.tryWithErrorDisplay(_("The preset could not be learnt."), waitCursor=True):
            report = self.logic.learnPreset(p.inputVolume, p.inputSegmentation, p.organSegmentId, p.lesionSegmentId,
                                            chosen_path(p.learnedPresetFile))
            p.presetFile = chosen_path(p.learnedPresetFile)
            real = report["real"]["contrast"]
            text = _("Learnt from {n} lesion(s): contrast median {median:+.0f} (5-95 %: {low:+.0f} to {high:+.0f}).").format(
                n=report["measured_lesions"], median=real["median"], low=real["p5"], high=real["p95"])
            if "warning" in report:
                text += " " + report["warning"]
            slicer.util.infoDisplay(text)


#
# SynthLesionWidget
#


class SynthLesionWidget(ParameterNodeLifecycle, ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._insert = self._learn = None  # the panel's sections
        self._batch = None  # JobSection: build-db in a background process

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        self.loadPanel(slicer.util.loadUI(self.resourcePath("UI/SynthLesion.ui")), SynthLesionLogic(), slicer.mrmlScene)
        parameterNode = lambda: self._parameterNode  # noqa: E731 (sections read the node that is current)
        self._insert = InsertLesionsSection(self.ui, parameterNode, self.logic, self._ensureDependencies)
        self._learn = LearnPresetSection(self.ui, parameterNode, self.logic, self._ensureDependencies)
        self._batch = JobSection(
            self.ui.batchButton, self.ui.batchLogTextEdit, _("Build in background"),
            lambda: self.logic.startBatch(self._parameterNode), lambda code: self._updateGui(),
            lambda: slicer.util.tryWithErrorDisplay(_("The batch could not start."), waitCursor=True),
            _("Cancelled; finished outputs are kept, build again to resume."), _, timer=qt.QTimer())
        self.ui.batchButton.connect("clicked(bool)", self.onBatchOrCancel)
        self.initializeParameterNode()

    def cleanup(self) -> None:
        self.removeObservers()
        if self._batch is not None:
            self._batch.cancel()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.inputVolume:
            self._parameterNode.inputVolume = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
        if not self._parameterNode.inputSegmentation:
            self._parameterNode.inputSegmentation = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLSegmentationNode")

    def _savedSelections(self, node):
        # read the saved segments first: setting a selector's node selects its first segment and
        # reports that through onOrganSegmentChanged
        return node.organSegmentId, node.lesionSegmentId

    def _restoreSelections(self, node, saved) -> None:
        for selector, segmentId in zip((self.ui.organSegmentSelector, self.ui.lesionSegmentSelector), saved):
            selector.setCurrentNode(node.inputSegmentation)
            if segmentId:
                selector.setCurrentSegmentID(segmentId)

    def onBatchOrCancel(self) -> None:
        self._batch.run_or_cancel(self._ensureDependencies)
        self._updateGui()

    def _updateGui(self, caller=None, event=None) -> None:
        p = self._parameterNode
        segmentation = p.inputSegmentation if p else None
        for selector in (self.ui.organSegmentSelector, self.ui.lesionSegmentSelector):
            if selector.currentNode() != segmentation:  # avoid a signal loop
                selector.setCurrentNode(segmentation)
        self._insert.update(p)
        self._learn.update(p)
        batchProblem = None
        if not p or not chosen_path(p.batchOut):
            batchProblem = _("Choose the database folder.")
        elif not chosen_path(p.batchCases) and self._insert.problem(p) is not None:
            batchProblem = _("Give a cases CSV, or select the input volume, segmentation and organ segment.")
        self._batch.update(batchProblem is None, batchProblem, _("Run build-db in a separate process."))

    def _ensureDependencies(self) -> bool:
        from MedSynthCommonLib.dependencies import install_in_slicer, offer_in_slicer
        from SynthLesionLib.dependencies import OPTIONAL_GAIN, missing_options

        if not install_in_slicer(missing_requirements(), "SynthLesion", slicer):
            return False
        if not slicer.app.testingEnabled():  # no dialog in an unattended test run
            offer_in_slicer(missing_options(), "SynthLesion", OPTIONAL_GAIN, slicer)
        return True


#
# SynthLesionLogic
#


class SynthLesionLogic(ScriptedLoadableModuleLogic):
    """Thin adapter: parameter node -> ``SynthLesionLib.logic.insert_lesions_on_nodes``.

    Console users can call the library directly with plain arguments::

        from SynthLesionLib.logic import insert_lesions_on_nodes
    """

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)

    def getParameterNode(self):
        return SynthLesionParameterNode(super().getParameterNode())

    def run(self, inputVolume, segmentation, organSegment: str, sizeClass: str = "small", count: int = 1,
            seed: int = 0, preset: str = "ct-liver", **options):
        """Insert lesions into ``inputVolume`` inside ``organSegment`` (ID or name); plain arguments,
        for the Python console::

            logic = slicer.util.getModuleLogic("SynthLesion")
            out = logic.run(getNode("CT"), getNode("Segmentation"), "liver", sizeClass="medium", count=2, seed=1)

        ``options``: any ``LesionConfig`` field (lesion_type, mass_effect, capsule, avoid_vessels, ...)
        and any keyword of ``SynthLesionLib.logic.insert_lesions_on_nodes`` (output nodes, markups,
        one_lesion_segment, avoid_segment).  Returns ``NodeOutputs`` (volume, segmentation, table,
        finding_text, result).  Input nodes are not modified.
        """
        from dataclasses import fields

        from SynthLesionLib import LesionConfig
        from SynthLesionLib.logic import insert_lesions_on_nodes

        config_names = {f.name for f in fields(LesionConfig)}
        config = LesionConfig(preset=preset, size_class=sizeClass, count=count,
                              **{k: v for k, v in options.items() if k in config_names})
        node_options = {k: v for k, v in options.items() if k not in config_names}
        logging.info(f"SynthLesion: {config}")
        return insert_lesions_on_nodes(inputVolume, segmentation, organSegment, config, seed, **node_options)

    def learnPreset(self, volume, segmentation, organSegment: str, lesionSegment: str, presetFile, base="ct-generic"):
        """Fit a preset to ``lesionSegment`` (real tumours) against ``organSegment``; write it to
        ``presetFile`` (.json) and return the fit report (plain arguments, for the console)."""
        from SynthLesionLib.logic import learn_preset_on_nodes

        return learn_preset_on_nodes(volume, segmentation, organSegment, lesionSegment, presetFile, base)

    def startBatch(self, parameters):
        """Run ``medsynth build-db`` in a background process with the panel's lesion options;
        without a cases CSV, the input volume and organ segment are written to the database's
        ``inputs/`` folder as the one case.  Returns the job."""
        import csv

        from MedSynthCommonLib.background import BackgroundJob
        from MedSynthCommonLib.mrml import segment_array

        out = chosen_path(parameters.batchOut)
        cases = chosen_path(parameters.batchCases)
        if cases is None:
            inputs = out / "inputs"
            inputs.mkdir(parents=True, exist_ok=True)
            slicer.util.saveNode(parameters.inputVolume, str(inputs / "image.nrrd"))
            organ = segment_array(parameters.inputSegmentation, parameters.organSegmentId, parameters.inputVolume)
            labelNode = slicer.modules.volumes.logic().CreateAndAddLabelVolume(parameters.inputVolume, "__medsynth_organ__")
            try:
                slicer.util.updateVolumeFromArray(labelNode, organ)
                slicer.util.saveNode(labelNode, str(inputs / "organ.nrrd"))
            finally:
                slicer.mrmlScene.RemoveNode(labelNode)
            cases = inputs / "cases.csv"
            with cases.open("w", newline="", encoding="utf-8") as handle:
                csv.writer(handle).writerows([["case_id", "image", "organ_mask"], ["scene", "image.nrrd", "organ.nrrd"]])
        preset = str(chosen_path(parameters.presetFile) or parameters.preset.value)
        arguments = ["build-db", "--cases", str(cases), "--out", str(out), "--variants", str(parameters.batchVariants),
                     "--workers", str(parameters.batchWorkers), "--seed", str(parameters.seed), "--size",
                     parameters.sizeClass.value, "--count", str(parameters.lesionCount), "--preset", preset,
                     "--capsule", parameters.capsule.value]
        if parameters.lesionType.value != "preset":
            arguments += ["--lesion-type", parameters.lesionType.value]
        if parameters.phase.value != "preset":
            arguments += ["--phase", parameters.phase.value]
        if not parameters.massEffectFromPreset:
            arguments += ["--mass-effect", str(parameters.massEffect)]
        if not parameters.avoidVessels:
            arguments.append("--no-vessel-avoidance")
        return BackgroundJob.medsynth(*arguments, commands=("SynthLesionLib.commands:register",)).start()

    def process(self, parameters):
        """Run with the GUI's parameter node."""
        return self.run(
            parameters.inputVolume, parameters.inputSegmentation, parameters.organSegmentId,
            sizeClass=parameters.sizeClass.value, count=parameters.lesionCount, seed=parameters.seed,
            preset=str(chosen_path(parameters.presetFile) or parameters.preset.value),
            lesion_type=None if parameters.lesionType.value == "preset" else parameters.lesionType.value,
            phase=None if parameters.phase.value == "preset" else parameters.phase.value,
            mass_effect=None if parameters.massEffectFromPreset else parameters.massEffect,
            capsule=CAPSULE_VALUES[parameters.capsule.value],
            avoid_vessels=parameters.avoidVessels,
            output_volume_node=parameters.outputVolume, output_segmentation=parameters.outputSegmentation,
            output_table=parameters.outputTable, one_lesion_segment=parameters.oneLesionSegment,
            markups=parameters.markups if parameters.useMarkups else None)


#
# SynthLesionTest
#


class SynthLesionTest(ScriptedLoadableModuleTest):
    """Runs inside Slicer (Developer mode: Reload and Test); the same checks run outside Slicer
    under pytest in Testing/."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_SynthLesion_phantom()

    def test_SynthLesion_phantom(self):
        import numpy as np

        from SynthLesionLib import make_ct_phantom
        from MedSynthCommonLib.mrml import fill_segmentation, output_volume

        self.delayDisplay("Building a CT phantom")
        phantom = make_ct_phantom(shape=(40, 128, 128), spacing=(1.5, 1.5, 3.0), seed=0)
        volume = output_volume(slicer.mrmlScene, phantom.image, phantom.geometry, "Phantom CT")
        segmentation = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode", "Phantom organs")
        fill_segmentation(segmentation, [("liver", phantom.organ_mask("liver"), (0.8, 0.5, 0.4))], phantom.geometry, volume)
        before = slicer.util.arrayFromVolume(volume).copy()

        logic = SynthLesionLogic()
        parameters = logic.getParameterNode()
        parameters.inputVolume = volume
        parameters.inputSegmentation = segmentation
        parameters.organSegmentId = segmentation.GetSegmentation().GetSegmentIdBySegmentName("liver")
        parameters.sizeClass = SizeChoice("small")
        parameters.lesionCount = 2
        outputs = logic.process(parameters)

        self.assertTrue(np.array_equal(before, slicer.util.arrayFromVolume(volume)))
        self.assertEqual(outputs.segmentation.GetSegmentation().GetNumberOfSegments(), 3)
        self.assertEqual(outputs.table.GetNumberOfRows(), 2)
        self.assertIn("liver", outputs.finding_text.GetText())
        self.delayDisplay("Test passed")
