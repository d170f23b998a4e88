"""SynthEvaluate's options as GUI choices."""

from __future__ import annotations

from MedSynthCommonLib.choices import choice_enum

#: protocols the module runs in a background process (``medsynth evaluate <id>``)
ProtocolChoice = choice_enum("ProtocolChoice", {
    "gan-train-test": "GAN-train / GAN-test (classifier)",
    "augment": "augmentation study (classifier)",
    "generator": "generator quality (a stylegan/fastgan model folder as Synthetic)",
})
