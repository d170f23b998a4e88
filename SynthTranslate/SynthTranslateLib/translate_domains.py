"""Many domains with one generator: StarGAN, and MI-GAN (StarGAN with a key-migration branch
and attention)."""

from __future__ import annotations

import torch
from torch import nn


from .networks import (StarDiscriminator, StarGenerator)
from .translator import Translator, _value, gradient_penalty


class StarGan(Translator):
    """One generator for all domains: WGAN-GP (10), domain classification (1), reconstruction
    (10); the generator is updated every ``n_critic`` (5) discriminator steps.  MI-GAN adds
    attention (sparsity weight ``lambda_attention``) and the key-migration branch, whose
    domain classification loss weighs ``lambda_key`` times more."""

    attention = False

    def build(self):
        c = self.config
        key = c.domains.index(c.key_domain) if self.attention else None
        self.modules = {"generator": StarGenerator(len(c.domains), c.features, attention=self.attention, key_domain=key),
                        "discriminator": self.discriminator(StarDiscriminator(len(c.domains), c.image_size, c.features))}
        self._adam("generator", self.modules["generator"].parameters(), c.lr_generator)
        self._adam("discriminator", self.modules["discriminator"].parameters(), c.lr_discriminator)
        self.key = key

    def _cls_loss(self, logits, target):
        loss = nn.functional.cross_entropy(logits, target, reduction="none")
        if self.key is not None:
            loss = loss * torch.where(target == self.key, self.config.lambda_key, 1.0)
        return loss.mean()

    def train_step(self, batch, step):
        c, m = self.config, self.trained
        image, domain = batch["image"], batch["domain"]
        target = torch.randint(len(c.domains), domain.shape, generator=self.random).to(self.device)
        fake = m["generator"](image, target)
        real_src, real_cls = m["discriminator"](image)
        fake_src, _ = m["discriminator"](fake.detach())
        loss_gp = gradient_penalty(lambda x: m["discriminator"](x)[0], image, fake.detach(), self.random,
                                   self.scalers["discriminator"])
        loss_d = -real_src.mean() + fake_src.mean() + c.lambda_cls * self._cls_loss(real_cls, domain) + c.lambda_gp * loss_gp
        self._update("discriminator", loss_d)
        losses = {"d": _value(loss_d), "gp": _value(loss_gp)}
        if step % c.n_critic == 0:
            fake, attention = m["generator"](image, target, return_attention=True)
            fake_src, fake_cls = m["discriminator"](fake)
            reconstruction = m["generator"](fake, domain)
            loss_g = (-fake_src.mean() + c.lambda_cls * self._cls_loss(fake_cls, target)
                      + c.lambda_rec * nn.functional.l1_loss(reconstruction, image))
            if attention is not None:
                loss_g = loss_g + c.lambda_attention * attention.mean()
            self._update("generator", loss_g)
            losses["g"] = _value(loss_g)
        return losses

    def translate(self, x, target=None):
        if target is None:
            raise ValueError("A multi-domain model needs a target domain.")
        return self.modules["generator"](x, torch.full((len(x),), int(target), dtype=torch.long, device=x.device))


class MiGan(StarGan):
    attention = True
