"""The module-widget lifecycle every MedSynth panel shares (Slicer's ExtensionWizard template,
written once): a parameter node bound to the GUI while the module is shown, released when it is
left or the scene closes, and taken up again after.

Only the three module widgets use this (inside Slicer, with a ``VTKObservationMixin`` beside
it); the engine never does.  A widget's ``setup`` calls ``loadPanel`` (its .ui, its logic,
the scene) and implements:

- ``_updateGui(caller=None, event=None)``: called on every change of the parameter node;
- optionally ``_savedSelections(node)`` -> anything, read before the node is bound to the GUI
  (binding resets segment selectors, whose selected segment ids the node keeps), and
  ``_restoreSelections(node, saved)`` after it.
"""

from __future__ import annotations


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
