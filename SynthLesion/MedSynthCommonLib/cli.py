"""``medsynth``: one command line for every MedSynth module.

The ground floor knows no module above it.  Each module registers its subcommands through the
``medsynth.commands`` entry-point group (see ``pyproject.toml``), the way pytest finds its
plugins: an entry point names a function ``register(cli: CommandLine)``.  Where the packages
are not installed (Slicer's background processes), the environment variable
``MEDSYNTH_COMMANDS`` lists such functions as ``package.module:function``, comma-separated.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from importlib import metadata
from pathlib import Path

from . import __version__
from .errors import MedSynthError, MedSynthOutputError

ENTRY_POINT_GROUP = "medsynth.commands"
ENVIRONMENT_VARIABLE = "MEDSYNTH_COMMANDS"


def whole_number(minimum: int, maximum: int | None = None):
    """argparse type: a whole number >= ``minimum`` (and <= ``maximum`` when given)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            shown = text if len(text) <= 40 else text[:40] + "..."
            raise argparse.ArgumentTypeError(f"expected a whole number, got {shown!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"must be at most {maximum}, got {value}")
        return value
    parse.__name__ = f"whole number >= {minimum}" + (f" and <= {maximum}" if maximum is not None else "")
    return parse


#: the largest image side (pixels) any command resizes to
MAX_IMAGE_SIZE = 4096
#: upper bounds of the options that size a run (beyond them a run cannot end, or its plan alone
#: fills the memory): outputs or cases asked for, and training steps
MAX_ITEMS = 100_000
MAX_STEPS = 100_000_000
#: argparse type of every seed: the range every random generator in use takes (numpy's legacy
#: RandomState, which MONAI uses, takes < 2**32)
seed_number = whole_number(0, 2**32 - 1)


def finite_number(text: str) -> float:
    """argparse type: a finite number (NaN and infinity are refused)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def positive_number(text: str) -> float:
    """argparse type: a finite number > 0."""
    value = finite_number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, got {text}")
    return value


def non_negative_number(text: str) -> float:
    """argparse type: a finite number >= 0."""
    value = finite_number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def fraction(text: str) -> float:
    """argparse type: a number strictly between 0 and 1."""
    value = finite_number(text)
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"must lie strictly between 0 and 1, got {text}")
    return value


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Help that shows every default (unless the text already says it, or there is none) and
    keeps the description's line breaks."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


class CommandLine:
    """What a module's ``register`` function gets: places to add commands and benchmarks."""

    def __init__(self, parser: argparse.ArgumentParser):
        self.parser = parser
        self.compounds: dict[tuple[str, str], str] = {}
        self._commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
        bench = self.add_command("bench", "benchmarks that print JSON figures (ratios to a baseline run alongside)")
        self._bench = bench.add_subparsers(dest="benchmark", required=True, metavar="BENCHMARK")

    def finish(self) -> None:
        """List ``bench`` after the modules' commands in the help."""
        choices = self._commands._choices_actions
        choices.append(choices.pop(0))

    def add_command(self, name: str, help: str, description: str | None = None) -> argparse.ArgumentParser:
        """A command; a two-word name (``"lesion fit"``) is also reachable as ``lesion-fit``."""
        words = name.split()
        if len(words) == 2:
            name = "-".join(words)
            self.compounds[(words[0], words[1])] = name
        return self._commands.add_parser(name, help=help, description=description or help[:1].upper() + help[1:] + ".",
                                         formatter_class=HelpFormatter)

    def add_benchmark(self, name: str, help: str) -> argparse.ArgumentParser:
        return self._bench.add_parser(name, help=help, description=help[:1].upper() + help[1:] + ".",
                                      formatter_class=HelpFormatter)

    @staticmethod
    def add_actions(parser: argparse.ArgumentParser, dest: str):
        """Sub-actions of a command (``translate train|apply``), with the same help layout."""
        actions = parser.add_subparsers(dest=dest, required=True, metavar="ACTION")
        original = actions.add_parser

        def add_parser(name, **kwargs):
            kwargs.setdefault("formatter_class", HelpFormatter)
            if "help" in kwargs:
                kwargs.setdefault("description", kwargs["help"][:1].upper() + kwargs["help"][1:] + ".")
            return original(name, **kwargs)

        actions.add_parser = add_parser
        return actions


def registered_commands() -> list:
    """The ``register`` functions of the installed modules (entry points, then the environment)."""
    functions, seen = [], set()
    try:
        entry_points = metadata.entry_points(group=ENTRY_POINT_GROUP)
    except TypeError:  # Python < 3.10 API
        entry_points = metadata.entry_points().get(ENTRY_POINT_GROUP, [])
    specs = [entry.value for entry in entry_points]
    specs += [s.strip() for s in os.environ.get(ENVIRONMENT_VARIABLE, "").split(",") if s.strip()]
    for spec in specs:
        if spec in seen:
            continue
        seen.add(spec)
        module, _, function = spec.partition(":")
        functions.append(getattr(importlib.import_module(module), function or "register"))
    return sorted(functions, key=lambda f: getattr(f, "order", 100))


def expand_compounds(cli: "CommandLine", argv: list[str]) -> list[str]:
    """``medsynth lesion fit ...`` -> ``medsynth lesion-fit ...``."""
    if len(argv) >= 2 and (argv[0], argv[1]) in cli.compounds:
        return [cli.compounds[(argv[0], argv[1])], *argv[2:]]
    return argv


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="medsynth", formatter_class=HelpFormatter,
        description="MedSynth: exactly annotated synthetic medical images (lesions inserted into CT/MR, GAN "
                    "translation) and measurements of whether they help.\n"
                    "Run 'medsynth COMMAND --help' for the options of a command.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    cli = CommandLine(parser)
    registered = registered_commands()
    if not registered:
        parser.epilog = ("No MedSynth module is installed: install the package (pip install -e .) or set "
                         f"{ENVIRONMENT_VARIABLE}.")
    for register in registered:
        register(cli)
    cli.finish()
    parser.cli = cli
    return parser


def _name() -> str:
    """``medsynth``, or ``medsynth [rank R]`` in a torchrun run (errors can differ between ranks)."""
    return f"medsynth [rank {os.environ['RANK']}]" if int(os.environ.get("WORLD_SIZE", "1") or 1) > 1 else "medsynth"


def _check_utf8_arguments(parser: argparse.ArgumentParser, argv: list[str]) -> None:
    """Refuse arguments that are not valid UTF-8 (file names from another system's encoding reach
    Python as lone surrogates; ITK aborts the process on them)."""
    for argument in argv:
        try:
            argument.encode("utf-8")
        except UnicodeEncodeError:
            shown = argument.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
            parser.error(f"the argument {shown} is not valid UTF-8 text; MedSynth's image libraries need UTF-8 file "
                         "and folder names. Rename the file or folder (e.g. convmv -f latin1 -t utf8).")


class _CheckedStdout:
    """Standard output whose failed writes (``> /dev/full``, a full disk, a closed terminal)
    are a clear MedSynth error, not a traceback at exit; a closed pipe stays a quiet exit."""

    def __init__(self, stream):
        self._stream = stream

    def _guard(self, method, *args):
        try:
            return getattr(self._stream, method)(*args)
        except BrokenPipeError:
            raise
        except OSError as error:
            import os

            with open(os.devnull, "w") as sink:  # the interpreter's own flush at exit must not fail again
                os.dup2(sink.fileno(), self._stream.fileno())
            raise MedSynthOutputError(f"Could not write the results to standard output ({error.strerror or error}); "
                                      "the outputs written to files are complete.") from None

    def write(self, text):
        return self._guard("write", text)

    def flush(self):
        return self._guard("flush")

    def __getattr__(self, name):
        return getattr(self._stream, name)


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled as Ctrl-C is."""


def _interrupt_on_sigterm() -> None:
    """SIGTERM (``kill``, a job scheduler, Slicer's Cancel) ends a command as Ctrl-C does: the
    write in progress is finished or removed, finished outputs are committed, and the message
    says how to resume (by default SIGTERM kills at once, leaving a partial file)."""
    import signal
    import threading

    def interrupt(signum, frame):
        raise Terminated

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, interrupt)


_PARSERS: dict[str, argparse.ArgumentParser] = {}


def _parser() -> argparse.ArgumentParser:
    """The parser, built once per set of registered modules (a process calling ``main`` many
    times, a test suite or a notebook, does not import and register every command each time)."""
    key = os.environ.get(ENVIRONMENT_VARIABLE, "")
    if key not in _PARSERS:
        _PARSERS[key] = build_parser()
    return _PARSERS[key]


#: MedSynth's own top-level packages: one of them missing is a bug, not a missing dependency
OWN_PACKAGES = {"MedSynthCommonLib", "SynthLesionLib", "SynthTranslateLib", "SynthEvaluateLib"}
#: the optional packages of the deep-learning commands (pyproject's "deep" extra)
DEEP_PACKAGES = {"torch", "monai", "nibabel"}


def _missing_package_message(package: str) -> str:
    """How to install ``package``, a top-level package a command needs and this Python lacks."""
    if package in DEEP_PACKAGES:
        slicer = "the PyTorch extension from the Extensions Manager, then the module's install button" \
            if package == "torch" else "the module's install button"
        return f"Install the deep-learning extras: pip install \"medsynth[deep]\" (in 3D Slicer: {slicer})."
    return "Install it with pip into this Python (pip install \"medsynth[deep,cluster]\" holds every optional one)."


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    own_process = argv is None  # the medsynth command, not a test or a notebook calling main()
    argv = list(sys.argv[1:] if argv is None else argv)
    _check_utf8_arguments(parser, argv)
    args = parser.parse_args(expand_compounds(parser.cli, argv))
    if own_process:
        _interrupt_on_sigterm()
        sys.stdout = _CheckedStdout(sys.stdout)
    try:
        _check_path_arguments(args)
        code = int(args.run(args) or 0)
        sys.stdout.flush()
        return code
    except MedSynthError as error:
        print(f"{_name()}: error: {error}", file=sys.stderr)
        return 2
    except MemoryError:
        print(f"{_name()}: error: not enough memory for this input (a huge grid or spacing?); "
              "check the image's size and spacing, or use a machine with more memory.", file=sys.stderr)
        return 2
    except KeyboardInterrupt as interrupted:
        print(f"{_name()}: {'terminated' if isinstance(interrupted, Terminated) else 'interrupted'}; finished outputs "
              "are kept, run the same command again to resume.", file=sys.stderr)
        return 143 if isinstance(interrupted, Terminated) else 130
    except BrokenPipeError:
        return 141
    except ModuleNotFoundError as error:
        package = (error.name or "").split(".")[0]
        if not package or package in OWN_PACKAGES:  # a part of MedSynth is missing (or unnamed): a bug
            return _internal_error(error)
        print(f"{_name()}: error: this command needs the Python package '{package}', which is not installed "
              f"here. {_missing_package_message(package)}", file=sys.stderr)
        return 2
    except OSError as error:
        if error.filename is None:  # not about a file the user named: a bug
            return _internal_error(error)
        from .storage import explain_os_error

        print(f"{_name()}: error: cannot use {error.filename}: {explain_os_error(error, Path(error.filename))}.",
              file=sys.stderr)
        return 2
    except Exception as error:  # a bug: say so plainly; the traceback only when asked
        return _internal_error(error)


def _internal_error(error: Exception) -> int:
    if os.environ.get("MEDSYNTH_DEBUG"):
        raise error
    print(f"{_name()}: internal error ({type(error).__name__}: {error}). This is a bug in MedSynth; please report it "
          "with the command you ran (set MEDSYNTH_DEBUG=1 to see the traceback).", file=sys.stderr)
    return 3


def _check_path_arguments(args: argparse.Namespace) -> None:
    """Every path given on the command line is UTF-8 and has names file systems take."""
    from .paths import check_utf8_name

    for name, value in vars(args).items():
        for item in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(item, os.PathLike):
                check_utf8_name(item, f"--{name.replace('_', '-')}")


if __name__ == "__main__":
    sys.exit(main())
