import slicer
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.ScriptedLoadableModule import (ScriptedLoadableModule, ScriptedLoadableModuleLogic,
                                           ScriptedLoadableModuleTest, ScriptedLoadableModuleWidget)

NOT_AVAILABLE = _(
    "The SynthEvaluate panel is not available in this version of MedSynth. Its metric library is: "
    "from the Python console, SynthEvaluateLib gives image fidelity (PSNR, SSIM, RMSE, MAE, in a mask), "
    "segmentation metrics (Dice, surface Dice in mm, HD95, lesion-wise and per-scan detection), "
    "classification metrics (sensitivity, specificity, AUC with DeLong intervals and tests, McNemar) and "
    "bootstrap confidence intervals. Planned: distribution distances, GAN-train/GAN-test, augmentation "
    "studies, reader studies and reports."
)


class SynthEvaluate(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("SynthEvaluate")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Image Synthesis")]
        self.parent.dependencies = []
        self.parent.contributors = ["MedSynth developers"]
        self.parent.helpText = NOT_AVAILABLE
        self.parent.acknowledgementText = ""


class SynthEvaluateWidget(ScriptedLoadableModuleWidget):
    """Shows that the module is not available yet; no controls that would do nothing."""

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/SynthEvaluate.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        self.ui.statusLabel.text = NOT_AVAILABLE


class SynthEvaluateLogic(ScriptedLoadableModuleLogic):
    """No logic yet."""


class SynthEvaluateTest(ScriptedLoadableModuleTest):
    def runTest(self):
        self.assertIn("not available", NOT_AVAILABLE)
