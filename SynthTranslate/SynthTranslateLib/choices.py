"""SynthTranslate's options as GUI choices, derived from the library's registries."""

from __future__ import annotations

from MedSynthCommonLib.choices import choice_enum
from MedSynthCommonLib.devices import PRECISIONS

from .config import MODEL_KINDS

ModelChoice = choice_enum("ModelChoice", {name: kind.label for name, kind in MODEL_KINDS.items()})
DeviceChoice = choice_enum("DeviceChoice", {"auto": "auto (a CUDA GPU if there is one)", "cpu": "CPU", "cuda": "CUDA GPU",
                                            "mps": "Apple GPU (MPS)"})
PrecisionChoice = choice_enum("PrecisionChoice", {
    p: {"auto": "auto (mixed on a GPU)", "fp32": "fp32", "bf16": "bf16 (mixed)", "fp16": "fp16 (mixed, loss scaling)"}[p]
    for p in PRECISIONS})
