"""Two domains without pairs: CycleGAN."""

from __future__ import annotations

import torch
from torch import nn


from .networks import (ResnetGenerator,
                       patch_discriminator)
from .translator import ImagePool, Translator, _value


class CycleGan(Translator):
    """Unpaired A <-> B: two ResNet generators, LSGAN, cycle (10) and identity (5) losses,
    image pools of 50."""

    def build(self):
        c = self.config
        self.modules = {"generator": ResnetGenerator(features=c.features), "generator_ba": ResnetGenerator(features=c.features),
                        "discriminator_a": self.discriminator(patch_discriminator(1, c.features * 2)),
                        "discriminator_b": self.discriminator(patch_discriminator(1, c.features * 2))}
        self._adam("generator", list(self.modules["generator"].parameters()) + list(self.modules["generator_ba"].parameters()),
                   c.lr_generator)
        self._adam("discriminator", list(self.modules["discriminator_a"].parameters())
                   + list(self.modules["discriminator_b"].parameters()), c.lr_discriminator)
        self.pools = {"a": ImagePool(c.pool_size, self.random), "b": ImagePool(c.pool_size, self.random)}

    @staticmethod
    def _ls(logits, value):
        return nn.functional.mse_loss(logits, torch.full_like(logits, value))

    def train_step(self, batch, step):
        c, m = self.config, self.trained
        a, b = batch["a"], batch["b"]
        fake_b, fake_a = m["generator"](a), m["generator_ba"](b)
        loss_gan = self._ls(m["discriminator_b"](fake_b)[-1], 1.0) + self._ls(m["discriminator_a"](fake_a)[-1], 1.0)
        loss_cycle = nn.functional.l1_loss(m["generator_ba"](fake_b), a) + nn.functional.l1_loss(m["generator"](fake_a), b)
        loss_identity = nn.functional.l1_loss(m["generator"](b), b) + nn.functional.l1_loss(m["generator_ba"](a), a)
        loss_g = loss_gan + c.lambda_cycle * loss_cycle + c.lambda_identity * loss_identity
        self._update("generator", loss_g)
        old_b, old_a = self.pools["b"].query(fake_b), self.pools["a"].query(fake_a)
        loss_d = 0.5 * (self._ls(m["discriminator_b"](b)[-1], 1.0) + self._ls(m["discriminator_b"](old_b)[-1], 0.0)
                        + self._ls(m["discriminator_a"](a)[-1], 1.0) + self._ls(m["discriminator_a"](old_a)[-1], 0.0))
        self._update("discriminator", loss_d)
        return {"d": _value(loss_d), "g_gan": _value(loss_gan), "cycle": _value(loss_cycle), "identity": _value(loss_identity)}

    def translate(self, x, target=None):
        """A -> B, or B -> A when ``target`` is 0 (the first domain)."""
        return self.modules["generator_ba" if target == 0 else "generator"](x)

    def extra_state(self):
        return {name: pool.state_dict() for name, pool in self.pools.items()}

    def load_extra_state(self, state):
        for name, pool in self.pools.items():
            pool.load_state_dict(state[name], self.device)
