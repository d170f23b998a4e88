"""Layers import one way, and the command line can be learnt from its help."""

from __future__ import annotations

import argparse
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: ground floor first: a package may import only packages of its own floor or below
FLOORS = {"MedSynthCommonLib": 0, "SynthLesionLib": 1, "SynthLesion": 1, "SynthTranslateLib": 2, "SynthTranslate": 2,
          "SynthEvaluateLib": 3, "SynthEvaluate": 3}


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, top-level package) of every import in a file, inside functions too."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name.split(".")[0]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module.split(".")[0]))
    return found


def _owner(path: Path) -> str:
    relative = path.relative_to(ROOT).parts
    return relative[1] if relative[1].endswith("Lib") else relative[1][:-3]


def _module_files():
    for module in ("SynthLesion", "SynthTranslate", "SynthEvaluate"):
        yield from sorted((ROOT / module).glob("*.py"))
        yield from sorted((ROOT / module).glob("*Lib/**/*.py"))


@pytest.mark.parametrize("path", list(_module_files()), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_upward_import(path):
    owner = FLOORS[_owner(path)]
    upward = [f"line {line}: {package}" for line, package in _imports(path)
              if package in FLOORS and FLOORS[package] > owner]
    assert not upward, f"{path.relative_to(ROOT)} imports a floor above its own: {upward}"


def test_research_scripts_do_not_ship():
    """Scripts that know ../shared/data's file names live in Testing/validation, not in a Lib."""
    for path in _module_files():
        text = path.read_text(encoding="utf-8")
        for name in ("shared/data", "chest_xray_pediatric", "stroke_lesions_mni", "case01_ct3mm"):
            assert name not in text, f"{path.relative_to(ROOT)} names {name}"


def _walk(parser: argparse.ArgumentParser, trail: str):
    yield trail, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                yield from _walk(action.choices[choice.dest], f"{trail} {choice.dest}")


def test_every_option_and_command_has_help():
    from MedSynthCommonLib.cli import build_parser

    missing, seen = [], set()
    for trail, parser in _walk(build_parser(), "medsynth"):
        seen.add(trail)
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
                continue
            if isinstance(action, argparse._SubParsersAction):
                missing += [f"{trail} {c.dest}" for c in action._choices_actions if not c.help]
            elif not action.help:
                missing.append(f"{trail} {'/'.join(action.option_strings) or action.dest}")
    assert not missing, f"options without help: {missing}"
    for command in ("medsynth lesion", "medsynth build-db", "medsynth translate train", "medsynth translate apply",
                    "medsynth evaluate images", "medsynth evaluate reader-study create", "medsynth bench lesion",
                    "medsynth bench translate", "medsynth bench evaluate", "medsynth demo"):
        assert command in seen


def test_one_meaning_per_option_name():
    """``--size`` is a lesion size class; pixel sizes are ``--image-size`` everywhere."""
    from MedSynthCommonLib.cli import build_parser

    for trail, parser in _walk(build_parser(), "medsynth"):
        for action in parser._actions:
            if "--size" in action.option_strings:
                assert action.choices and "small" in action.choices, trail


def test_the_command_line_is_built_without_the_heavy_libraries():
    """Every ``medsynth`` call builds the whole parser: it must not import what only some
    commands use (scikit-learn and SciPy's statistics cost 0.4 s a call, torch and MONAI more)."""
    import subprocess
    import sys

    heavy = ("sklearn", "scipy.stats", "torch", "monai", "matplotlib", "dask", "distributed")
    script = ("import sys; from MedSynthCommonLib.cli import build_parser; build_parser(); "
              f"print(' '.join(m for m in {heavy!r} if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=ROOT)
    assert loaded.stdout.split() == []


def test_version(capsys):
    from MedSynthCommonLib import __version__
    from MedSynthCommonLib.cli import main

    with pytest.raises(SystemExit):
        main(["--version"])
    assert __version__ in capsys.readouterr().out


def test_one_segmentation_study():
    """One question, one place: the segmentation study (all its arms) lives in segment_study.py;
    a second study of segmenters must not come back."""
    import ast

    folder = Path(__file__).resolve().parents[1] / "SynthEvaluate" / "SynthEvaluateLib"
    studies = [f"{path.name}:{node.name}" for path in folder.rglob("*.py")
               for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
               if isinstance(node, ast.FunctionDef) and "segment" in node.name and node.name.endswith("study")
               and not node.name.startswith(("_cmd", "bench"))]
    assert studies == ["segment_study.py:segment_study"], studies


def test_one_training_loop():
    """Every recipe steps its optimiser in one place (recipes/loop.py: ``optimisation_steps``),
    the classifiers by epochs and the segmenter by iterations; only the benchmark's plain MONAI
    loop, the baseline it is compared with, steps its own."""
    import ast

    folder = ROOT / "SynthEvaluate" / "SynthEvaluateLib"
    stepping = sorted({str(path.relative_to(folder)) for path in folder.rglob("*.py")
                       for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
                       if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                       and node.func.attr == "step" and "optimiser" in ast.unparse(node)})
    assert stepping == ["cli/benchmark_segment_study.py", "recipes/loop.py"], stepping


def test_one_loop_over_a_studys_arms():
    """The studies of arms (augmentation, segment-study) train, keep and compare their runs in
    one loop (studies/arms.py: ``run_arms``); GAN-train/GAN-test keeps its two models per seed
    in its own record, and nothing else keeps finished runs."""
    import ast

    folder = ROOT / "SynthEvaluate" / "SynthEvaluateLib"
    keeping = set()
    for path in folder.rglob("*.py"):
        for function in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(function, ast.FunctionDef) and any(
                    isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "keep"
                    and "finished" in ast.unparse(node.func) for node in ast.walk(function)):
                keeping.add(f"{path.relative_to(folder)}:{function.name}")
    assert keeping == {"studies/arms.py:run_arms", "studies/protocols.py:gan_train_test"}, keeping


def test_one_findings_model():
    """One multi-label findings model for 2-D images and 3-D volumes (recipes/findings_model.py):
    no other part of SynthEvaluateLib trains with a per-finding sigmoid loss or reads a
    network's evidence (Grad-CAM, occlusion) itself."""
    import ast

    folder = ROOT / "SynthEvaluate" / "SynthEvaluateLib"
    own = sorted({f"{path.relative_to(folder)}:{name}" for path in folder.rglob("*.py")
                  for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))) if isinstance(node, ast.Call)
                  for name in [ast.unparse(node.func).split(".")[-1]]
                  if name in ("BCEWithLogitsLoss", "binary_cross_entropy_with_logits", "GradCAM",
                              "OcclusionSensitivity")})
    assert {entry.split(":")[0] for entry in own} == {"recipes/findings_model.py"}, own


def test_one_judgement_of_findings():
    """2-D and 3-D findings are judged by one function (metrics.classification.per_finding_metrics):
    nothing in findings/ computes an AUC, a ROC curve or a sensitivity itself."""
    import ast

    folder = ROOT / "SynthEvaluate" / "SynthEvaluateLib" / "findings"
    own = sorted({f"{path.name}:{name}" for path in folder.rglob("*.py")
                  for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))) if isinstance(node, ast.Call)
                  for name in [ast.unparse(node.func).split(".")[-1]]
                  if name in ("binary_metrics", "delong_auc", "roc_curve", "roc_auc_score", "auc")})
    assert own == [], own


#: what each part of SynthEvaluateLib may import of the package (docs/architecture.md)
EVALUATE_PARTS = {"metrics": set(), "recipes": {"metrics"}, "findings": {"metrics", "recipes"},
                  "studies": {"metrics", "recipes", "findings"},
                  "cli": {"metrics", "recipes", "findings", "studies", "top"}}


def _evaluate_part(module: str) -> str:
    """The part of SynthEvaluateLib a dotted module name belongs to ("top" for the top level)."""
    parts = module.split(".")
    return parts[1] if len(parts) >= 2 and parts[1] in EVALUATE_PARTS else "top"


def test_synthevaluate_parts_import_one_way():
    """Inside the top floor the folders import one way too: metrics < recipes < findings <
    studies < cli (the top level: report, Slicer glue, may use all but cli)."""
    root = ROOT / "SynthEvaluate" / "SynthEvaluateLib"
    wrong = []
    for path in sorted(root.rglob("*.py")):
        here = ["SynthEvaluateLib", *path.relative_to(root).with_suffix("").parts]
        package = here[:-1]
        part = _evaluate_part(".".join(here))
        allowed = EVALUATE_PARTS.get(part, set(EVALUATE_PARTS) - {"cli"} | {"top"})
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level:
                target = ".".join(package[:len(package) - node.level + 1] + ([node.module] if node.module else []))
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("SynthEvaluateLib"):
                target = node.module
            else:
                continue
            other = _evaluate_part(target)
            if other != part and other not in allowed:
                wrong.append(f"{path.relative_to(root)}:{node.lineno} ({part}) imports {target} ({other})")
    assert not wrong, wrong


def test_every_package_says_what_it_answers_and_may_import():
    """docs/architecture.md's rule: each package's docstring says what it answers and what it
    may import."""
    packages = sorted(path for module in ("SynthLesion", "SynthTranslate", "SynthEvaluate")
                      for path in (ROOT / module).rglob("__init__.py"))
    silent = [str(path.relative_to(ROOT)) for path in packages
              if "May import:" not in (ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or "")]
    assert len(packages) >= 8 and not silent, silent
