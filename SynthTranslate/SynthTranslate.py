import slicer
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.ScriptedLoadableModule import (ScriptedLoadableModule, ScriptedLoadableModuleLogic,
                                           ScriptedLoadableModuleTest, ScriptedLoadableModuleWidget)

NOT_AVAILABLE = _(
    "SynthTranslate is not available in this version of MedSynth: nothing in it runs yet. Planned: "
    "GAN image-to-image translation (label map to image, unpaired and multi-domain translation, lesion-mask generation) trained and applied on Slicer volumes. Use SynthLesion meanwhile."
)


class SynthTranslate(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("SynthTranslate")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Image Synthesis")]
        self.parent.dependencies = []
        self.parent.contributors = ["MedSynth developers"]
        self.parent.helpText = NOT_AVAILABLE
        self.parent.acknowledgementText = ""


class SynthTranslateWidget(ScriptedLoadableModuleWidget):
    """Shows that the module is not available yet; no controls that would do nothing."""

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/SynthTranslate.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        self.ui.statusLabel.text = NOT_AVAILABLE


class SynthTranslateLogic(ScriptedLoadableModuleLogic):
    """No logic yet."""


class SynthTranslateTest(ScriptedLoadableModuleTest):
    def runTest(self):
        self.assertIn("not available", NOT_AVAILABLE)
