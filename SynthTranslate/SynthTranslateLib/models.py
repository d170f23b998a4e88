"""Every translator by the name the CLI and cards use, and the one way to build one (seeded)."""

from __future__ import annotations

import torch

from MedSynthCommonLib.devices import Accelerator
from MedSynthCommonLib.distributed import Ranks, rank_seed

from .config import TranslatorConfig
from .translate_domains import MiGan, StarGan
from .translate_masks import MaskGan
from .translate_new_images import FastGan, StyleGan
from .translate_paired import Pix2Pix, Pix2PixHD, Spade
from .translate_unpaired import CycleGan
from .translator import Translator

__all__ = ["TRANSLATORS", "Translator", "build_translator"]


TRANSLATORS = {"pix2pix": Pix2Pix, "spade": Spade, "cyclegan": CycleGan, "stargan": StarGan, "migan": MiGan,
               "maskgan": MaskGan, "stylegan": StyleGan,
               "fastgan": FastGan, "pix2pixhd": Pix2PixHD}


def build_translator(config: TranslatorConfig, seed: int, accelerator: Accelerator | None = None,
                     ranks: Ranks | None = None) -> Translator:
    """A translator with seeded weights (initialised on the CPU, the same on every device and
    every rank), placed on ``accelerator`` (default: CPU, fp32), its training randomness this
    rank's own stream; the caller's global RNG state is left as it was."""
    config.validate()
    ranks = ranks or Ranks()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return TRANSLATORS[config.model](config, torch.Generator().manual_seed(rank_seed(seed + 1, ranks.rank)),
                                         accelerator, ranks)
