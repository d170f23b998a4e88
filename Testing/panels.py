"""Render the modules' .ui panels offscreen with PyQt5, CTK/MRML widgets replaced by plain Qt
stand-ins (an approximation of what Slicer shows: same layout, labels, tooltips, order).

    python Testing/panels.py            # writes Resources/Screenshots/<Module>_panel.png

Used by the test suite (renders into a temporary folder) and for the documentation pictures.
Combo boxes bound to a library choice enum get that enum's labels, as Slicer's parameter node
wrapper fills them at run time; collapsible sections are shown open.
"""

from __future__ import annotations

import ast
import os
import sys
import tempfile
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODULES = ("SynthLesion", "SynthTranslate", "SynthEvaluate")


def _stand_ins(QtCore, QtWidgets) -> dict[str, type]:
    """Plain Qt classes standing in for Slicer's and CTK's widgets: the properties the .ui sets
    are accepted (uic calls ``setXxx``) and shown the closest Qt way."""
    pyqtSignal, pyqtSlot = QtCore.pyqtSignal, QtCore.pyqtSlot

    def accepting(*names):
        """``setName(value)`` methods that store the value (properties Qt has no widget for here)."""
        def make(name):
            def setter(self, value):
                setattr(self, f"_{name}", value)
            return setter
        return {f"set{n[0].upper()}{n[1:]}": make(n) for n in names}

    class qMRMLWidget(QtWidgets.QWidget):
        mrmlSceneChanged = pyqtSignal(object)

        @pyqtSlot(object)
        def setMRMLScene(self, scene):
            pass

    ctkCollapsibleButton = type("ctkCollapsibleButton", (QtWidgets.QGroupBox,), {
        **accepting("collapsed"), "setText": lambda self, text: self.setTitle(text)})

    class ctkPathLineEdit(QtWidgets.QLineEdit):
        Dirs, Drives, Files, Writable, Readable, Executable = 1, 2, 4, 8, 16, 32

        def __init__(self, parent=None):
            super().__init__(parent)
            self.setPlaceholderText("(path)")

    for name, method in accepting("filters", "nameFilters").items():
        setattr(ctkPathLineEdit, name, method)

    class qMRMLNodeComboBox(QtWidgets.QComboBox):
        def setNoneDisplay(self, text):
            self.clear()
            self.addItem(text)

        @pyqtSlot(object)
        def setMRMLScene(self, scene):
            pass

    for name, method in accepting("nodeTypes", "showChildNodeTypes", "addEnabled", "removeEnabled", "renameEnabled",
                                  "noneEnabled",
                                  "segmentationNodeSelectorVisible").items():
        setattr(qMRMLNodeComboBox, name, method)

    class qMRMLSegmentSelectorWidget(qMRMLNodeComboBox):
        def __init__(self, parent=None):
            super().__init__(parent)
            self.addItem("(segment)")

    ctkSliderWidget = type("ctkSliderWidget", (QtWidgets.QDoubleSpinBox,), {})

    class qMRMLTableView(QtWidgets.QTableView):
        def setMRMLTableNode(self, node):
            pass

    return {cls.__name__: cls for cls in (qMRMLWidget, ctkCollapsibleButton, ctkPathLineEdit, qMRMLNodeComboBox,
                                          qMRMLSegmentSelectorWidget, ctkSliderWidget, qMRMLTableView)}


def _choice_labels(module: str) -> dict[str, list[str]]:
    """Parameter name -> the labels of the choice enum it is annotated with."""
    import importlib

    tree = ast.parse((ROOT / module / f"{module}.py").read_text(encoding="utf-8"))
    choices = importlib.import_module(f"{module}Lib.choices")
    labels = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and any(getattr(d, "id", None) == "parameterNodeWrapper"
                                                  for d in node.decorator_list):
            for statement in node.body:
                if isinstance(statement, ast.AnnAssign) and isinstance(statement.annotation, ast.Name) \
                        and hasattr(choices, statement.annotation.id):
                    enum = getattr(choices, statement.annotation.id)
                    labels[statement.target.id] = [enum.label(member) for member in enum]
    return labels


_APP = None  # the QApplication must outlive each render


def render(module: str, out_path: Path, width: int = 480) -> tuple[Path, set[str]]:
    """Render ``module``'s panel into ``out_path`` (PNG); returns it and the names of the widgets."""
    global _APP
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PyQt5 import QtCore, QtWidgets, uic

    _APP = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    stubs = _stand_ins(QtCore, QtWidgets)
    with tempfile.TemporaryDirectory() as folder:  # uic imports a custom widget from a module named like its header
        for name, cls in stubs.items():
            stub = types.ModuleType(name)
            setattr(stub, name, cls)
            sys.modules[name] = stub
        import re

        text = (ROOT / module / "Resources" / "UI" / f"{module}.ui").read_text(encoding="utf-8")
        text = re.sub(r"<connections>.*?</connections>", "", text, flags=re.S)  # MRML scene plumbing, not drawn
        copy = Path(folder) / f"{module}.ui"
        copy.write_text(text)
        widget = uic.loadUi(str(copy))
    labels = _choice_labels(module)
    for child in widget.findChildren(QtWidgets.QComboBox):
        parameter = child.property("SlicerParameterName")
        if parameter in labels:
            child.clear()
            child.addItems(labels[parameter])
    widget.setWindowTitle(module)
    widget.resize(width, widget.sizeHint().height())
    widget.adjustSize()
    widget.resize(width, max(widget.sizeHint().height(), widget.height()))
    image = widget.grab()
    out_path.parent.mkdir(parents=True, exist_ok=True)
    if not image.save(str(out_path)):
        raise RuntimeError(f"could not save {out_path}")
    names = {child.objectName() for child in widget.findChildren(QtWidgets.QWidget)}
    return out_path, names


def main() -> None:
    for module in MODULES:
        print(render(module, ROOT / "Resources" / "Screenshots" / f"{module}_panel.png")[0])


if __name__ == "__main__":
    main()
