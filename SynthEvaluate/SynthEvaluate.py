import slicer
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.ScriptedLoadableModule import (ScriptedLoadableModule, ScriptedLoadableModuleLogic,
                                           ScriptedLoadableModuleTest, ScriptedLoadableModuleWidget)

NOT_AVAILABLE = _(
    "SynthEvaluate is not available in this version of MedSynth: nothing in it runs yet. Planned: "
    "Judging synthetic data: image metrics, distribution distances, GAN-train/GAN-test, augmentation studies with confidence intervals, and reader studies. Use SynthLesion meanwhile."
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
