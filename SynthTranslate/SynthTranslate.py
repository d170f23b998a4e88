import json
import tempfile
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
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode

from MedSynthCommonLib.options import chosen_path
from SynthTranslateLib.choices import DeviceChoice, ModelChoice, PrecisionChoice
from SynthTranslateLib.config import MODEL_KINDS
from SynthTranslateLib.dependencies import missing_requirements


#
# SynthTranslate
#


class SynthTranslate(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("SynthTranslate")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Image Synthesis")]
        self.parent.dependencies = []
        self.parent.contributors = ["MedSynth developers"]
        self.parent.helpText = _(
            "Train and apply GAN image translators on grey, 16-bit, 3-D data: label map to image (pix2pix, "
            "SPADE), unpaired two-domain (CycleGAN), multi-domain (StarGAN, MI-GAN with a key domain and "
            "attention) and a lesion-mask GAN. Training runs in the background and can be cancelled and "
            "resumed; a trained model is a folder with its weights and a model card."
        )
        self.parent.acknowledgementText = _(
            "Architectures after Isola et al. 2017, Park et al. 2019, Zhu et al. 2017, Choi et al. 2018; "
            "networks and blocks from MONAI.")


#
# SynthTranslateParameterNode
#


@parameterNodeWrapper
class SynthTranslateParameterNode:
    modelType: ModelChoice = ModelChoice("stargan")
    trainDataFolder: Path
    trainVolume: vtkMRMLScalarVolumeNode
    trainSegmentation: vtkMRMLSegmentationNode
    keyDomain: str = ""
    imageSize: Annotated[int, WithinRange(32, 512)] = 64
    iterations: Annotated[int, WithinRange(1, 1000000)] = 2000
    device: DeviceChoice = DeviceChoice("auto")
    precision: PrecisionChoice = PrecisionChoice("auto")
    trainModelFolder: Path
    applyModelFolder: Path
    inputVolume: vtkMRMLScalarVolumeNode
    targetDomain: str = ""
    conditionSegmentation: vtkMRMLSegmentationNode
    sampleCount: Annotated[int, WithinRange(1, 1000)] = 16
    truncation: Annotated[float, WithinRange(0.0, 1.0)] = 0.7
    outputVolume: vtkMRMLScalarVolumeNode


#
# The panel's sections
#


class TrainModelSection(PanelSection):
    """Train a translator or generator in a background process (log, cancel, resume) and open
    its latest sample grid; the inputs shown follow the chosen model type."""

    def __init__(self, ui, parameterNode, logic, ensureDependencies, refresh) -> None:
        super().__init__(ui, parameterNode, logic, ensureDependencies)
        self.job = JobSection(
            self.ui.trainButton, self.ui.trainLogTextEdit, _("Train in background"),
            lambda: self.logic.startTraining(self._parameterNode()), lambda code: refresh(),
            lambda: slicer.util.tryWithErrorDisplay(_("Training could not start.")),
            _("Cancelled; train again with the same model folder to resume."), _, timer=qt.QTimer(), interval_ms=1000)
        self.ui.trainButton.connect("clicked(bool)", self.onTrainOrCancel)
        self.ui.showSamplesButton.connect("clicked(bool)", self.onShowSamples)
        self._refresh = refresh

    def update(self, p) -> None:
        kind = MODEL_KINDS[p.modelType.value]
        fromFolder = kind.trains_from == "folder"
        for widget in (self.ui.trainDataFolderPathLineEdit, self.ui.trainDataFolderPathLineEditLabel):
            widget.visible = fromFolder
        for widget in (self.ui.trainVolumeSelector, self.ui.trainVolumeSelectorLabel, self.ui.trainSegmentationSelector,
                       self.ui.trainSegmentationSelectorLabel):
            widget.visible = not fromFolder
        for widget in (self.ui.keyDomainLineEdit, self.ui.keyDomainLineEditLabel):
            widget.visible = kind.key_domain
        self.ui.showSamplesButton.enabled = bool(self._latestSampleGrid())
        ready = bool(chosen_path(p.trainModelFolder)) and (bool(chosen_path(p.trainDataFolder)) if fromFolder
                                                            else bool(p.trainVolume and p.trainSegmentation))
        self.job.update(ready)

    def onTrainOrCancel(self) -> None:
        self.job.run_or_cancel(self._ensureDependencies)
        self._refresh()

    def _latestSampleGrid(self):
        p = self._parameterNode()
        folder = chosen_path(p.trainModelFolder) if p else None
        samples = sorted(Path(folder).glob("samples_*.png")) if folder and Path(folder).is_dir() else []
        return samples[-1] if samples else None

    def onShowSamples(self) -> None:
        latest = self._latestSampleGrid()
        if latest is not None:
            qt.QDesktopServices.openUrl(qt.QUrl.fromLocalFile(str(latest)))


class ApplyModelSection(PanelSection):
    """Apply a trained model to a volume (translation, to a chosen target domain or from a label
    map) or sample new images from it; the inputs shown follow the chosen model's card."""

    def __init__(self, ui, parameterNode, logic, ensureDependencies) -> None:
        super().__init__(ui, parameterNode, logic, ensureDependencies)
        self.sampling = False  # the chosen model makes new images (stylegan, fastgan) instead of translating
        self.ui.applyModelFolderPathLineEdit.connect("currentPathChanged(QString)", self.onModelChanged)
        self.ui.targetDomainComboBox.connect("currentTextChanged(QString)", self.onTargetDomainChanged)
        self.ui.applyButton.connect("clicked(bool)", self.onApply)

    def fillDomains(self, selected: str = "") -> None:
        """Target domains from the chosen model's card; only the inputs that model uses are shown."""
        from SynthTranslateLib.logic import model_summary

        p = self._parameterNode()
        folder = chosen_path(p.applyModelFolder) if p else None
        summary = model_summary(folder) if folder else None
        domains = summary["domains"] if summary else []
        self.ui.targetDomainComboBox.clear()
        self.ui.targetDomainComboBox.addItems(domains)
        if selected in domains:
            self.ui.targetDomainComboBox.setCurrentText(selected)
        conditioned = bool(summary and summary["conditioned"])
        sampling = bool(summary and summary["samples"])
        for widget in (self.ui.targetDomainComboBox, self.ui.targetDomainComboBoxLabel):
            widget.visible = bool(domains)
        for widget in (self.ui.conditionSegmentationSelector, self.ui.conditionSegmentationSelectorLabel):
            widget.visible = conditioned
        for widget in (self.ui.inputVolumeSelector, self.ui.inputVolumeSelectorLabel):
            widget.visible = not sampling
        for widget in (self.ui.sampleCountSpinBox, self.ui.sampleCountSpinBoxLabel, self.ui.truncationSliderWidget,
                       self.ui.truncationSliderWidgetLabel):
            widget.visible = sampling
        self.ui.modelQualityLabel.text = summary["quality"] if summary else ""
        self.ui.modelQualityLabel.visible = bool(summary and summary["quality"])
        self.ui.targetDomainComboBoxLabel.text = _("Class:") if sampling else _("Target domain:")
        self.ui.applyButton.text = _("Sample") if sampling else _("Apply")
        self.ui.inputVolumeSelectorLabel.text = _("Grid volume:") if conditioned else _("Input volume:")
        self.sampling = sampling

    def onModelChanged(self, path) -> None:
        self.fillDomains()

    def onTargetDomainChanged(self, text) -> None:
        if self._parameterNode():
            self._parameterNode().targetDomain = text or ""

    def update(self, p) -> None:
        self.ui.applyButton.enabled = bool(chosen_path(p.applyModelFolder) and (p.inputVolume or self.sampling))

    def onApply(self) -> None:
        if not self._ensureDependencies():
            return
        p = self._parameterNode()
        if self.sampling:
            with slicer.util.tryWithErrorDisplay(_("Sampling failed."), waitCursor=True):
                p.outputVolume = self.logic.sample(p.applyModelFolder, p.targetDomain or None, p.sampleCount,
                                                   p.truncation, p.outputVolume, p.device.value, p.precision.value)
                slicer.util.setSliceViewerLayers(background=p.outputVolume, fit=True)
            return
        with slicer.util.tryWithErrorDisplay(_("Translation failed."), waitCursor=True):
            p.outputVolume = self.logic.apply(p.applyModelFolder, p.inputVolume, p.targetDomain or None,
                                              p.conditionSegmentation, p.outputVolume, p.device.value,
                                              p.precision.value)
            slicer.util.setSliceViewerLayers(background=p.outputVolume, fit=True)


#
# SynthTranslateWidget
#


class SynthTranslateWidget(ParameterNodeLifecycle, ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._train = self._apply = None  # the panel's sections

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        self.loadPanel(slicer.util.loadUI(self.resourcePath("UI/SynthTranslate.ui")), SynthTranslateLogic(), slicer.mrmlScene)
        parameterNode = lambda: self._parameterNode  # noqa: E731 (sections read the node that is current)
        self._train = TrainModelSection(self.ui, parameterNode, self.logic, self._ensureDependencies, self._updateGui)
        self._apply = ApplyModelSection(self.ui, parameterNode, self.logic, self._ensureDependencies)
        self.initializeParameterNode()

    def cleanup(self) -> None:
        self.removeObservers()
        if self._train is not None:
            self._train.job.cancel()

    def _savedSelections(self, node):
        return node.targetDomain

    def _restoreSelections(self, node, saved) -> None:
        self._apply.fillDomains(saved)

    def _updateGui(self, caller=None, event=None) -> None:
        p = self._parameterNode
        if p is None:
            return
        self._train.update(p)
        self._apply.update(p)

    def _ensureDependencies(self) -> bool:
        """torch from the PyTorch extension first, then the pip packages (MONAI finds torch there)."""
        from MedSynthCommonLib.dependencies import ensure_torch, install_in_slicer

        with slicer.util.tryWithErrorDisplay(_("SynthTranslate cannot run without PyTorch.")):
            if not ensure_torch("SynthTranslate"):
                return False
            return install_in_slicer(missing_requirements(), "SynthTranslate", slicer)
        return False


#
# SynthTranslateLogic
#


class SynthTranslateLogic(ScriptedLoadableModuleLogic):
    """Thin adapter over SynthTranslateLib; methods take plain arguments (console use)."""

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)

    def getParameterNode(self):
        return SynthTranslateParameterNode(super().getParameterNode())

    def apply(self, modelFolder, inputVolume, targetDomain=None, conditionSegmentation=None, outputVolume=None,
              device="auto", precision="auto"):
        """Translate ``inputVolume`` with the model in ``modelFolder`` on ``device`` (auto, cpu,
        cuda, mps) at ``precision`` (auto, fp32, bf16, fp16); returns the output volume node."""
        from SynthTranslateLib.logic import translate_volume_node

        return translate_volume_node(modelFolder, inputVolume, targetDomain, conditionSegmentation, outputVolume, device,
                                     precision)

    def sample(self, modelFolder, className=None, count=16, truncation=0.7, outputVolume=None, device="auto",
               precision="auto", seed=0):
        """``count`` new images of ``className`` from a stylegan or fastgan model, as the slices of one volume
        node (``outputVolume`` or a new one); returns the node."""
        from SynthTranslateLib.logic import sample_volume_node

        return sample_volume_node(slicer.mrmlScene, modelFolder, className, count, truncation, seed, outputVolume,
                                  device, precision)

    def startTraining(self, parameters):
        """Start ``medsynth translate train`` in a background process; returns the job."""
        from MedSynthCommonLib.background import BackgroundJob
        from SynthTranslateLib.logic import label_map_from_segmentation

        kind = MODEL_KINDS[parameters.modelType.value]
        arguments = ["translate", "train", "--model", kind.name, "--image-size", str(parameters.imageSize),
                     "--iterations", str(parameters.iterations), "--device", parameters.device.value,
                     "--precision", parameters.precision.value, "--out", str(parameters.trainModelFolder)]
        if kind.trains_from == "folder":
            arguments += ["--data", str(parameters.trainDataFolder)]
            if kind.key_domain:
                arguments += ["--key-domain", parameters.keyDomain]
        else:
            # scene nodes -> files in the model folder, read by the training process
            folder = Path(parameters.trainModelFolder) / "training_data"
            folder.mkdir(parents=True, exist_ok=True)
            slicer.util.saveNode(parameters.trainVolume, str(folder / "image.nrrd"))
            labels, names = label_map_from_segmentation(parameters.trainSegmentation, parameters.trainVolume)
            (folder / "label_names.json").write_text(json.dumps(names, indent=2))
            labelNode = slicer.modules.volumes.logic().CreateAndAddLabelVolume(parameters.trainVolume, "__medsynth_labels__")
            try:
                slicer.util.updateVolumeFromArray(labelNode, labels)
                slicer.util.saveNode(labelNode, str(folder / "labels.nrrd"))
            finally:
                slicer.mrmlScene.RemoveNode(labelNode)
            arguments += ["--image", str(folder / "image.nrrd"), "--condition", str(folder / "labels.nrrd"),
                          "--label-names", str(folder / "label_names.json"), "--only-labelled"]
        return BackgroundJob.medsynth(*arguments, commands=("SynthTranslateLib.commands:register",)).start()


#
# SynthTranslateTest
#


class SynthTranslateTest(ScriptedLoadableModuleTest):
    """Runs inside Slicer; the same checks run outside Slicer under pytest in Testing/."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_SynthTranslate_apply()

    def test_SynthTranslate_apply(self):
        import numpy as np

        from SynthLesionLib import make_ct_phantom
        from MedSynthCommonLib.mrml import output_volume
        from SynthTranslateLib.config import TranslatorConfig
        from SynthTranslateLib.data import BatchSampler, Normalizer
        from SynthTranslateLib.training import train_translator

        phantom = make_ct_phantom(shape=(8, 64, 64), spacing=(3.0, 3.0, 5.0), seed=0)
        folder = Path(tempfile.mkdtemp()) / "model"
        normalizer = Normalizer((-200, 300))
        images = normalizer.forward(phantom.image)
        config = TranslatorConfig(model="stargan", image_size=64, features=4, batch_size=2, domains=["a", "b"], n_critic=1)
        train_translator(config, BatchSampler("domains", 2, 0, image=images, domain=np.arange(8) % 2), normalizer, 2, folder)
        volume = output_volume(slicer.mrmlScene, phantom.image, phantom.geometry, "CT")
        out = SynthTranslateLogic().apply(folder, volume, "b")
        self.assertEqual(slicer.util.arrayFromVolume(out).shape, phantom.image.shape)
        self.assertIn("stargan", json.loads(out.GetAttribute("MedSynth.translator"))["model"])
        self.delayDisplay("Test passed")
