"""Ready for the Extensions Index: catalog entry, CMake, dependencies the Slicer way, sample
data, in-app tests registered, panels that render."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODULES = ("SynthLesion", "SynthTranslate", "SynthEvaluate")
SCHEMA = ROOT.parent / "shared" / "tools" / "slicer-packaging" / "slicer-extension-catalog-entry-schema-v1.0.2.json"


def _cmake_value(name: str) -> str:
    text = (ROOT / "CMakeLists.txt").read_text(encoding="utf-8")
    return re.search(rf"set\({name} ([^)#]+)\)", text).group(1).strip().strip('"')


def test_catalog_entry_matches_cmake_and_validates():
    entry = json.loads((ROOT / "Resources" / "ExtensionsIndex" / "MedSynth.json").read_text(encoding="utf-8"))
    assert entry["build_dependencies"] == _cmake_value("EXTENSION_DEPENDS").split()
    assert entry["category"] == _cmake_value("EXTENSION_CATEGORY")
    if not SCHEMA.exists():
        pytest.skip(f"the catalog schema is not beside the project here ({SCHEMA})")
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.validate(entry, json.loads(SCHEMA.read_text(encoding="utf-8")))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**entry, "tier": 9}, json.loads(SCHEMA.read_text(encoding="utf-8")))


def test_cmake_policy_range_and_in_app_tests_registered():
    assert re.search(r"cmake_minimum_required\(VERSION 3\.20\.6\.\.\.3\.31 FATAL_ERROR\)",
                     (ROOT / "CMakeLists.txt").read_text(encoding="utf-8"))
    for module in MODULES:
        text = (ROOT / module / "CMakeLists.txt").read_text(encoding="utf-8")
        assert "slicer_add_python_unittest(SCRIPT ${MODULE_NAME}.py)" in text, module


def test_packages_are_installed_the_slicer_way():
    from MedSynthCommonLib.dependencies import install_in_slicer

    calls = []
    modern = SimpleNamespace(packaging=SimpleNamespace(pip_ensure=lambda reqs, requester: calls.append((reqs, requester))))
    assert install_in_slicer(["monai>=1.4"], "SynthTranslate", modern)
    assert calls == [(["monai>=1.4"], "SynthTranslate")]  # Slicer 5.12+: pip_ensure does check, prompt, install
    asked, installed = [], []
    older = SimpleNamespace(util=SimpleNamespace(confirmOkCancelDisplay=lambda text: asked.append(text) or True,
                                                 pip_install=installed.append))
    assert install_in_slicer(["scipy>=1.10"], "SynthLesion", older)
    assert installed == [["scipy>=1.10"]] and "not changed" in asked[0]
    assert install_in_slicer([], "SynthLesion", older) and len(asked) == 1  # nothing missing: no question


def test_an_optional_package_is_offered_once_and_never_blocks():
    from MedSynthCommonLib import dependencies
    from SynthLesionLib.dependencies import OPTIONAL, OPTIONAL_GAIN

    assert set(OPTIONAL) == {"threadpoolctl"}  # BLAS on one thread (MedSynthCommonLib.threads)
    asked = []

    def offline(requirements):
        raise RuntimeError("no network")

    slicer = SimpleNamespace(util=SimpleNamespace(confirmOkCancelDisplay=lambda text: asked.append(text) or True,
                                                  pip_install=offline))
    dependencies._offered.discard("threadpoolctl>=3.1")
    dependencies.offer_in_slicer(["threadpoolctl>=3.1"], "SynthLesion", OPTIONAL_GAIN, slicer)  # no exception
    assert len(asked) == 1 and "works without" in asked[0] and "threadpoolctl>=3.1" in asked[0]
    dependencies.offer_in_slicer(["threadpoolctl>=3.1"], "SynthLesion", OPTIONAL_GAIN, slicer)
    assert len(asked) == 1  # once per session, declined or failed
    tree = ast.parse((ROOT / "SynthLesion" / "SynthLesion.py").read_text(encoding="utf-8"))
    ensure = next(node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)
                  and node.name == "_ensureDependencies")
    assert "offer_in_slicer" in ast.unparse(ensure) and "install_in_slicer" in ast.unparse(ensure)


def test_each_module_asks_only_for_what_it_uses():
    from SynthEvaluateLib.dependencies import REQUIRED as evaluate, REQUIRED_FOR_TRAINING
    from SynthLesionLib.dependencies import REQUIRED as lesion
    from SynthTranslateLib.dependencies import REQUIRED as translate

    assert set(lesion) == {"scipy"}
    assert "sklearn" not in translate and "torch" not in translate  # torch comes from the PyTorch extension
    assert "torch" not in REQUIRED_FOR_TRAINING and "monai" in REQUIRED_FOR_TRAINING
    for module, required in (("SynthTranslate", translate), ("SynthEvaluate", evaluate)):
        used = set()
        for path in (ROOT / module).glob("*Lib/**/*.py"):
            used |= set(re.findall(r"^\s*(?:from|import) (\w+)", path.read_text(encoding="utf-8"), re.M))
        assert set(required) <= used | {"skimage"}, (module, set(required) - used)


def test_torch_missing_without_the_pytorch_extension_is_a_clear_error():
    code = ("import sys, importlib.abc\n"
            "class Block(importlib.abc.MetaPathFinder):\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name.split('.')[0] in ('torch', 'PyTorchUtils'): raise ImportError('absent')\n"
            "sys.meta_path.insert(0, Block())\n"
            "from MedSynthCommonLib.dependencies import ensure_torch\n"
            "from MedSynthCommonLib.errors import MedSynthInputError\n"
            "try:\n    ensure_torch('SynthTranslate')\nexcept MedSynthInputError as e:\n    print(e)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "install it from the Extensions Manager" in result.stdout, result.stderr


def test_sample_data_registration_and_checksums(tmp_path):
    from SynthLesionLib.sample_data import SAMPLES, SampleFile, file_sha256, matches, register

    registered = []
    register(SimpleNamespace(registerCustomSampleDataSource=lambda **kwargs: registered.append(kwargs)), "thumb.png")
    assert len(registered) == 1
    sample = registered[0]
    assert len(sample["uris"]) == len(sample["fileNames"]) == len(sample["checksums"]) == len(sample["nodeNames"]) == 2
    assert all(re.fullmatch(r"SHA256:[0-9a-f]{64}", c) for c in sample["checksums"])
    assert all(uri.endswith(name) for uri, name in zip(sample["uris"], sample["fileNames"]))
    assert sample["loadFileType"] == ["VolumeFile", "SegmentationFile"]
    # the check the Sample Data module makes, offline, on a local file
    local = tmp_path / "case.nii.gz"
    local.write_bytes(b"a small local file")
    assert matches(local, SampleFile(local.name, file_sha256(local), "n", "VolumeFile"))
    assert not matches(local, SampleFile(local.name, "0" * 64, "n", "VolumeFile"))
    published = ROOT.parent / "shared" / "data" / "abdomen_ct"  # the published files, where this machine has them
    if (published / "case01_ct3mm_image.nii.gz").exists():
        files = SAMPLES["MedSynthAbdomenCT"]
        assert matches(published / "case01_ct3mm_image.nii.gz", files[0])
        assert matches(published / "case01_ct3mm_liver.nii.gz", files[1])


def test_registration_is_connected_at_startup():
    text = (ROOT / "SynthLesion" / "SynthLesion.py").read_text(encoding="utf-8")
    assert 'slicer.app.connect("startupCompleted()", registerSampleData)' in text


@pytest.mark.parametrize("module", MODULES)
def test_panels_render_and_hold_every_widget_the_module_uses(module, tmp_path):
    pytest.importorskip("PyQt5")
    import ast
    import os

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    sys.path.insert(0, str(ROOT / "Testing"))
    try:
        from panels import render
    finally:
        sys.path.pop(0)
    from PyQt5.QtGui import QImage

    png, names = render(module, tmp_path / f"{module}.png")
    image = QImage(str(png))
    assert image.width() >= 400 and image.height() >= 300
    used = {node.attr for node in ast.walk(ast.parse((ROOT / module / f"{module}.py").read_text(encoding="utf-8")))
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute) and node.value.attr == "ui"}
    assert used <= names, sorted(used - names)
