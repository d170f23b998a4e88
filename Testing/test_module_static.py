"""Static checks of the Slicer modules (Slicer's Qt GUI cannot run here): every ``self.ui.X``
exists in the .ui, every bound parameter name exists in the parameter node, combo boxes offer
exactly the parameter's choices, and every file named in CMake exists."""

from __future__ import annotations

import ast
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODULES = ["SynthLesion", "SynthTranslate", "SynthEvaluate"]


def _ui(module):
    return ET.parse(ROOT / module / "Resources" / "UI" / f"{module}.ui").getroot()


def _widget_names(root):
    return {w.get("name") for w in root.iter("widget")}


def _bound_widgets(root):
    bound = {}
    for widget in root.iter("widget"):
        for prop in widget.findall("property"):
            if prop.get("name") == "SlicerParameterName":
                bound[widget.get("name")] = (prop.find("string").text, widget)
    return bound


def _module_ast(module):
    return ast.parse((ROOT / module / f"{module}.py").read_text(encoding="utf-8"))


def _parameter_annotations(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and any(getattr(d, "id", None) == "parameterNodeWrapper" for d in node.decorator_list):
            return {stmt.target.id: stmt for stmt in node.body if isinstance(stmt, ast.AnnAssign)}
    return {}


@pytest.mark.parametrize("module", MODULES)
def test_every_ui_attribute_exists(module):
    names = _widget_names(_ui(module))
    used = set()
    for node in ast.walk(_module_ast(module)):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute) \
                and node.value.attr == "ui" and getattr(node.value.value, "id", None) == "self":
            used.add(node.attr)
    assert used, f"{module}.py uses no self.ui widgets"
    assert used <= names, f"missing in {module}.ui: {sorted(used - names)}"


@pytest.mark.parametrize("module", MODULES)
def test_every_bound_parameter_exists(module):
    parameters = _parameter_annotations(_module_ast(module))
    for widget, (parameter, _) in _bound_widgets(_ui(module)).items():
        assert parameter in parameters, f"{widget} is bound to unknown parameter {parameter!r}"


def test_synthlesion_binds_its_gui_parameters():
    parameters = _parameter_annotations(_module_ast("SynthLesion"))
    bound_names = {p for p, _ in _bound_widgets(_ui("SynthLesion")).values()}
    set_in_code = {"organSegmentId", "lesionSegmentId"}  # the segment selectors are connected by hand
    assert set(parameters) - set_in_code <= bound_names, set(parameters) - bound_names


@pytest.mark.parametrize("module", MODULES)
def test_combo_boxes_take_their_choices_from_the_library(module):
    """Option lists are written once, in the library: a bound combo box is annotated with a
    ``*Choice`` enum from the module's ``choices`` (Slicer fills it with readable labels and
    stores the id), and its .ui entry lists no items of its own."""
    tree = _module_ast(module)
    parameters = _parameter_annotations(tree)
    imported = {alias.name for node in tree.body if isinstance(node, ast.ImportFrom)
                and node.module == f"{module}Lib.choices" for alias in node.names}
    for widget_name, (parameter, widget) in _bound_widgets(_ui(module)).items():
        if widget.get("class") != "QComboBox":
            continue
        annotation = parameters[parameter].annotation
        assert isinstance(annotation, ast.Name) and annotation.id in imported, \
            f"{widget_name} is bound to {parameter}, which is not a *Choice enum from {module}Lib.choices"
        assert not widget.findall("item"), f"{widget_name} lists items in the .ui; they come from the library"


def test_unset_gui_paths_are_not_taken_for_chosen_ones():
    """Slicer stores an empty path field as Path('.'), which is truthy."""
    from pathlib import Path

    from MedSynthCommonLib.options import chosen_path

    assert chosen_path(Path(".")) is None and chosen_path(Path("")) is None and chosen_path(None) is None
    assert chosen_path(Path("/data/x.json")) == Path("/data/x.json")
    for module in MODULES:  # no path parameter is tested with bool() any more
        assert not re.search(r"bool\(p\.\w*(Folder|File|Train|Healthy|Test)\)", (ROOT / module / f"{module}.py").read_text(encoding="utf-8"))


def test_choice_enums_follow_the_registries():
    from MedSynthCommonLib.devices import PRECISIONS
    from SynthLesionLib.choices import PresetChoice, SizeChoice
    from SynthLesionLib.presets import PRESETS
    from SynthLesionLib.sizes import MIX, SIZE_CLASSES
    from SynthTranslateLib.choices import ModelChoice, PrecisionChoice
    from SynthTranslateLib.config import MODEL_KINDS

    assert PresetChoice.ids() == list(PRESETS) and SizeChoice.ids() == [*SIZE_CLASSES, MIX]
    assert ModelChoice.ids() == list(MODEL_KINDS) and PrecisionChoice.ids() == list(PRECISIONS)
    # what Slicer's QComboBoxToEnumConnector calls: getattr(enum, "label")(member)
    assert getattr(PresetChoice, "label")(PresetChoice("ct-liver")) == "CT liver (ct-liver)"
    assert getattr(SizeChoice, "label")(SizeChoice("tiny")) == "tiny (5-10 mm)"


@pytest.mark.parametrize("module", MODULES)
def test_cmake_lists_every_file_and_every_file_is_listed(module):
    text = (ROOT / module / "CMakeLists.txt").read_text(encoding="utf-8")
    listed = {line.strip().replace("${MODULE_NAME}", module) for line in text.splitlines()
              if re.match(r"\$\{MODULE_NAME\}|Resources/|\w+Lib/", line.strip())}
    for path in listed:
        assert (ROOT / module / path).is_file(), f"{module}/CMakeLists.txt lists missing {path}"
    on_disk = {str(p.relative_to(ROOT / module)) for p in (ROOT / module).glob("*Lib/**/*.py")}
    assert on_disk <= listed, f"not in {module}/CMakeLists.txt: {sorted(on_disk - listed)}"
    assert f"{module}.py" in listed


def test_top_level_cmake_is_a_slicer_extension():
    text = (ROOT / "CMakeLists.txt").read_text(encoding="utf-8")
    assert "project(MedSynth)" in text and "find_package(Slicer REQUIRED)" in text
    assert re.search(r'EXTENSION_CATEGORY "Image Synthesis"', text)
    for module in MODULES:
        assert f"add_subdirectory({module})" in text
    assert "Slicer_EXTENSION_GENERATE_CONFIG" in text and "Slicer_EXTENSION_CPACK" in text
    assert (ROOT / "Resources" / "Icons" / "MedSynth.png").is_file()


@pytest.mark.parametrize("module", MODULES)
def test_module_files_follow_the_template(module):
    classes = {n.name for n in _module_ast(module).body if isinstance(n, ast.ClassDef)}
    assert {module, f"{module}Widget", f"{module}Logic", f"{module}Test"} <= classes
    assert (ROOT / module / "Resources" / "Icons" / f"{module}.png").is_file()


@pytest.mark.parametrize("module", MODULES)
def test_lib_never_touches_the_application(module):
    for path in (ROOT / module).glob("*Lib/**/*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and getattr(node.value, "id", None) == "slicer":
                assert node.attr not in {"app", "mrmlScene", "modules"}, f"{path}:{node.lineno} uses slicer.{node.attr}"


def test_dependency_check_imports_without_scipy():
    """Slicer may lack SciPy: the module must load and offer to install it, not crash."""
    import subprocess
    import sys

    code = (
        "import sys, importlib.abc\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'scipy' or name.startswith('scipy.'): raise ImportError('no scipy here')\n"
        "sys.meta_path.insert(0, Block())\n"
        "from SynthLesionLib.dependencies import missing_requirements\n"
        "assert missing_requirements() == ['scipy>=1.10']\n"
        "import SynthLesionLib\n"
        "print(SynthLesionLib.__version__)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_logic_process_passes_only_known_options():
    """``process`` forwards GUI values to ``run`` by keyword: each must exist downstream."""
    import inspect
    from dataclasses import fields

    from SynthLesionLib import LesionConfig
    from SynthLesionLib.logic import insert_lesions_on_nodes

    tree = _module_ast("SynthLesion")
    logic = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "SynthLesionLogic")
    methods = {f.name: f for f in logic.body if isinstance(f, ast.FunctionDef)}
    run_parameters = {a.arg for a in methods["run"].args.args}
    call = next(n for n in ast.walk(methods["process"]) if isinstance(n, ast.Call)
                and getattr(n.func, "attr", None) == "run")
    known = run_parameters | {f.name for f in fields(LesionConfig)} | set(inspect.signature(insert_lesions_on_nodes).parameters)
    keywords = {k.arg for k in call.keywords}
    assert keywords and keywords <= known, keywords - known


#: members a module may use on its widgets, per class, as declared in Qt and Slicer's headers
#: (qMRMLSegmentSelectorWidget.h, qMRMLNodeComboBox.h); extend when the GUI uses more.
WIDGET_MEMBERS = {
    "qMRMLSegmentSelectorWidget": {"connect", "currentNode", "currentNodeID", "currentSegmentID", "setCurrentNode",
                                   "setCurrentNodeID", "setCurrentSegmentID", "noneEnabled", "setNoneEnabled",
                                   "segmentationNodeSelectorVisible", "setSegmentationNodeSelectorVisible",
                                   "setMRMLScene", "enabled"},
    "qMRMLNodeComboBox": {"connect", "currentNode", "setCurrentNode", "currentNodeID", "setCurrentNodeID",
                          "setMRMLScene", "enabled", "visible"},
    "QPushButton": {"connect", "enabled", "toolTip", "text", "checked", "setEnabled", "visible"},
    "QPlainTextEdit": {"setPlainText", "toPlainText", "plainText", "clear", "appendPlainText"},
    "QLabel": {"text", "setText", "visible"},
    "QLineEdit": {"text", "setText", "visible"},
    "QSpinBox": {"value", "setValue", "enabled"},
    "ctkSliderWidget": {"value", "enabled"},
    "ctkPathLineEdit": {"currentPath", "setCurrentPath", "connect", "visible"},
    "QComboBox": {"clear", "addItems", "setCurrentText", "currentText", "connect", "visible"},
    "qMRMLTableView": {"setMRMLTableNode", "mrmlTableNode", "connect"},  # clicked(QModelIndex) from QAbstractItemView
}


@pytest.mark.parametrize("module", MODULES)
def test_widget_members_exist_on_their_class(module):
    classes = {w.get("name"): w.get("class") for w in _ui(module).iter("widget")}
    for node in ast.walk(_module_ast(module)):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute) \
                and isinstance(node.value.value, ast.Attribute) and node.value.value.attr == "ui":
            widget_class = classes[node.value.attr]
            assert widget_class in WIDGET_MEMBERS, f"add {widget_class}'s members to WIDGET_MEMBERS"
            assert node.attr in WIDGET_MEMBERS[widget_class], f"{widget_class} has no member {node.attr!r}"


def test_dependencies_are_installed_only_after_one_confirmation():
    from MedSynthCommonLib.dependencies import ensure_installed

    asked, installed = [], []
    assert ensure_installed([], asked.append, installed.append, "X")
    assert not asked  # nothing missing: no question
    assert not ensure_installed(["scipy>=1.10"], lambda text: asked.append(text) or False, installed.append, "X")
    assert installed == [] and "scipy>=1.10" in asked[0] and "not changed" in asked[0]
    assert ensure_installed(["scipy>=1.10", "monai>=1.4"], lambda text: True, installed.append, "X")
    assert installed == [["scipy>=1.10", "monai>=1.4"]]  # one install call for everything


@pytest.mark.parametrize("module", MODULES)
def test_background_jobs_pass_only_options_the_command_knows(module):
    """Every ``BackgroundJob.medsynth("cmd", "sub", "--opt", ...)`` in a module's logic names a
    real command and options it accepts (the GUI cannot be run here to find out).  A subcommand
    given by a variable (e.g. the chosen protocol) is checked against all of its command's."""
    import argparse

    from MedSynthCommonLib.cli import build_parser

    def subparsers(parser):
        return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices

    def options(parser):
        return {option for action in parser._actions for option in action.option_strings}

    calls = []  # the argument lists of every BackgroundJob.medsynth call, and of SynthEvaluate's helper for them
    for n in ast.walk(_module_ast(module)):
        if isinstance(n, ast.Call) and getattr(n.func, "attr", None) == "medsynth" and \
                getattr(n.func.value, "id", None) == "BackgroundJob":
            calls.append(n.args)
        elif isinstance(n, ast.Call) and getattr(n.func, "id", None) == "_startEvaluate":
            calls.append([ast.Constant("evaluate"), *n.args])  # medsynth evaluate COMMAND ...
    checked = 0
    for arguments in calls:
        if not arguments or not isinstance(arguments[0], ast.Constant):
            continue  # the whole argument list is built elsewhere (checked by the SynthLesion test above)
        parsers = [build_parser()]
        position = 0
        while position < len(arguments):
            argument = arguments[position]
            if isinstance(argument, ast.Constant) and not argument.value.startswith("-"):
                choices = subparsers(parsers[0])
                assert argument.value in choices, f"medsynth has no command {argument.value!r}"
                parsers = [choices[argument.value]]
            elif not isinstance(argument, ast.Constant) and not isinstance(argument, ast.Starred) and position <= 1:
                parsers = list(subparsers(parsers[0]).values())  # a subcommand chosen at run time
            else:
                break
            position += 1
        known = set.intersection(*(options(p) for p in parsers)) if len(parsers) == 1 else \
            set.union(*(options(p) for p in parsers))
        used = {a.value for a in arguments if isinstance(a, ast.Constant) and a.value.startswith("--")}
        if not used and any(isinstance(a, ast.Starred) for a in arguments):
            continue  # a helper passing on its callers' arguments: the callers are checked
        assert used and used <= known, ([ast.unparse(a) for a in arguments][:6], used - known)
        checked += 1
    assert checked or module != "SynthEvaluate"  # SynthLesion and SynthTranslate build their lists elsewhere
