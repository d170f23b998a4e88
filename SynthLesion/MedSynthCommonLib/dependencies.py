"""Python packages installed on demand with the user's consent (each module lists its own).

numpy, SimpleITK and VTK come with Slicer and are never installed or replaced here.
"""

from __future__ import annotations

import importlib.util
import logging


def missing_requirements(required: dict[str, str]) -> list[str]:
    """pip requirements (``required``: import name -> requirement) whose packages cannot be
    imported in this Python."""
    return [req for name, req in required.items() if not _importable(name)]


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # a broken or blocked installation counts as missing
        return False


def ensure_installed(required: list[str], confirm, install, module: str) -> bool:
    """Install missing ``required`` pip requirements after one confirmation listing them all.

    ``confirm(text) -> bool`` and ``install(requirements)`` are given by the caller (in Slicer:
    ``slicer.util.confirmOkCancelDisplay`` and ``slicer.util.pip_install``), so this stays
    Qt-free.  Returns True when everything is (now) installed.
    """
    if not required:
        return True
    text = (f"{module} needs these Python packages, which will be installed now:\n\n" + "\n".join(required)
            + "\n\nPackages that come with Slicer are not changed.")
    if not confirm(text):
        return False
    install(required)
    return True


def install_in_slicer(requirements: list[str], module: str, slicer_module) -> bool:
    """Install missing pip ``requirements`` the way the running Slicer offers: ``slicer.packaging
    .pip_ensure`` (Slicer 5.12+: check, one prompt, progress, restart offer), else one
    confirmation and ``slicer.util.pip_install``.  ``slicer_module`` is Slicer's ``slicer``
    package (passed in, so that this file imports nothing of Slicer).  True when satisfied."""
    if not requirements:
        return True
    packaging = getattr(slicer_module, "packaging", None)
    if packaging is not None and hasattr(packaging, "pip_ensure"):
        result = packaging.pip_ensure(requirements, requester=module)
        return result is not False
    return ensure_installed(requirements, slicer_module.util.confirmOkCancelDisplay, slicer_module.util.pip_install,
                            module)


#: optional requirements offered this session (each is offered once)
_offered: set[str] = set()


def offer_in_slicer(requirements: list[str], module: str, gain: str, slicer_module) -> None:
    """Offer optional pip ``requirements`` once per session, saying what they bring (``gain``).
    The module works without them: declining, or an installation that fails (no network in a
    hospital), leaves them out and says so in the log, and nothing is raised."""
    wanted = [requirement for requirement in requirements if requirement not in _offered]
    if not wanted:
        return
    _offered.update(wanted)
    text = (f"{module} works without these Python packages, but {gain}:\n\n" + "\n".join(wanted)
            + "\n\nInstall them now? (Asked once per session; packages that come with Slicer are not changed.)")
    try:
        if slicer_module.util.confirmOkCancelDisplay(text):
            slicer_module.util.pip_install(wanted)
    except Exception as error:  # noqa: BLE001 (optional: whatever went wrong, the module goes on without them)
        logging.warning("%s goes on without %s, which could not be installed: %s", module, ", ".join(wanted), error)


def ensure_torch(module: str) -> bool:
    """torch the Slicer way: through the PyTorch extension, which picks the CUDA or CPU build for
    this machine.  Raises ``MedSynthInputError`` when the extension is missing; False when the user
    declines the installation."""
    if _importable("torch"):
        return True
    try:
        import PyTorchUtils  # the PyTorch extension's module (Slicer only)
    except ImportError:
        from .errors import MedSynthInputError

        raise MedSynthInputError(
            f"{module} needs PyTorch, which Slicer installs through the 'PyTorch' extension: install it from the "
            "Extensions Manager (View > Extensions Manager), restart Slicer, and try again.") from None
    logic = PyTorchUtils.PyTorchUtilsLogic()
    if logic.torchInstalled():
        return True
    return logic.installTorch(askConfirmation=True) is not None
