"""Label map (or image) to image, trained on paired slices: pix2pix, SPADE and pix2pixHD."""

from __future__ import annotations

import torch
from torch import nn


from .networks import (CoarseToFineGenerator, MultiScaleDiscriminator, SpadeGenerator, UNetGenerator, patch_discriminator)
from .translator import Translator, _value


class Pix2Pix(Translator):
    """Paired translation: U-Net generator, 70x70 PatchGAN on (source, output), GAN + 100 L1."""

    def build(self):
        c = self.config
        self.modules = {"generator": UNetGenerator(1, 1, tuple(c.features * 2 ** k for k in range(4))),
                        "discriminator": self.discriminator(patch_discriminator(2, c.features * 2))}
        self._adam("generator", self.modules["generator"].parameters(), c.lr_generator)
        self._adam("discriminator", self.modules["discriminator"].parameters(), c.lr_discriminator)
        self.bce = nn.BCEWithLogitsLoss()

    def _d(self, source, image):
        return self.trained["discriminator"](torch.cat([source, image], 1))[-1]

    def train_step(self, batch, step):
        source, target = batch["source"], batch["target"]
        fake = self.trained["generator"](source)
        real_logits, fake_logits = self._d(source, target), self._d(source, fake.detach())
        loss_d = 0.5 * (self.bce(real_logits, torch.ones_like(real_logits)) + self.bce(fake_logits, torch.zeros_like(fake_logits)))
        self._update("discriminator", loss_d)
        fake_logits = self._d(source, fake)
        loss_gan = self.bce(fake_logits, torch.ones_like(fake_logits))
        loss_l1 = nn.functional.l1_loss(fake, target)
        loss_g = loss_gan + self.config.lambda_l1 * loss_l1
        self._update("generator", loss_g)
        return {"d": _value(loss_d), "g_gan": _value(loss_gan), "g_l1": _value(loss_l1)}

    def translate(self, x, target=None):
        return self.modules["generator"](x)


class Spade(Translator):
    """Label map -> image: SPADE generator, multi-scale patch discriminator, hinge loss,
    feature matching, plus L1 to the paired image."""

    def _generator(self, labels: int) -> nn.Module:
        return SpadeGenerator(labels, self.config.features * 2)

    def _discriminator_network(self, in_channels: int) -> nn.Module:
        from monai.networks.nets import MultiScalePatchDiscriminator

        return MultiScalePatchDiscriminator(num_d=2, num_layers_d=2, spatial_dims=2, channels=self.config.features,
                                            in_channels=in_channels, minimum_size_im=self.config.image_size,
                                            norm="INSTANCE")

    def build(self):
        c = self.config
        labels = len(c.labels)
        self.modules = {"generator": self._generator(labels),
                        "discriminator": self.discriminator(self._discriminator_network(labels + 1))}
        self._adam("generator", self.modules["generator"].parameters(), c.lr_generator)
        self._adam("discriminator", self.modules["discriminator"].parameters(), c.lr_discriminator)

    def _real(self, outputs):
        return sum(nn.functional.relu(1 - r).mean() for r in outputs)

    def _fake(self, outputs):
        return sum(nn.functional.relu(1 + f).mean() for f in outputs)

    def _fooled(self, outputs):
        return -sum(f.mean() for f in outputs)

    def train_step(self, batch, step):
        labels, target = batch["source"], batch["target"]
        disc = self.trained["discriminator"]
        fake = self.trained["generator"](labels)
        real_out, _ = disc(torch.cat([labels, target], 1))
        fake_out, _ = disc(torch.cat([labels, fake.detach()], 1))
        loss_d = self._real(real_out) + self._fake(fake_out)
        self._update("discriminator", loss_d)
        fake_out, fake_features = disc(torch.cat([labels, fake], 1))
        with torch.no_grad():
            _, real_features = disc(torch.cat([labels, target], 1))
        loss_gan = self._fooled(fake_out)
        loss_fm = sum(nn.functional.l1_loss(f, r) for fs, rs in zip(fake_features, real_features)
                      for f, r in zip(fs[:-1], rs[:-1]))
        loss_l1 = nn.functional.l1_loss(fake, target)
        loss_g = loss_gan + self.config.lambda_feature_matching * loss_fm + self.config.lambda_l1 * loss_l1 / 10
        self._update("generator", loss_g)
        return {"d": _value(loss_d), "g_gan": _value(loss_gan), "g_fm": _value(loss_fm), "g_l1": _value(loss_l1)}

    def translate(self, x, target=None):
        return self.modules["generator"](x)


class Pix2PixHD(Spade):
    """Label map -> high-resolution image (after pix2pixHD): coarse-to-fine generator, a
    PatchGAN at three image scales, least-squares GAN loss and feature matching.  pix2pixHD's VGG
    perceptual loss needs ImageNet weights that cannot be downloaded here; the L1 term to the
    paired image takes its place (as in SPADE).  Both generator paths train together from the
    first step (pix2pixHD trains the global one first)."""

    def _generator(self, labels: int) -> nn.Module:
        return CoarseToFineGenerator(labels, self.config.features)

    def _discriminator_network(self, in_channels: int) -> nn.Module:
        return MultiScaleDiscriminator(in_channels, self.config.features, scales=3)

    def _real(self, outputs):
        return sum(nn.functional.mse_loss(r, torch.ones_like(r)) for r in outputs) / 2

    def _fake(self, outputs):
        return sum(nn.functional.mse_loss(f, torch.zeros_like(f)) for f in outputs) / 2

    def _fooled(self, outputs):
        return sum(nn.functional.mse_loss(f, torch.ones_like(f)) for f in outputs)
