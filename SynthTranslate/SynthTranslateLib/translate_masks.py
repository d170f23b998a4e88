"""New lesion masks from noise: the mask GAN."""

from __future__ import annotations



from .networks import (MaskCritic, MaskGenerator)
from .translator import Translator, _value, gradient_penalty


class MaskGan(Translator):
    """WGAN-GP that generates binary lesion masks (2-D slices or small 3-D patches)."""

    def build(self):
        c = self.config
        self.modules = {"generator": MaskGenerator(c.latent, c.image_size, c.spatial_dims, c.features * 2),
                        "discriminator": self.discriminator(MaskCritic(c.image_size, c.spatial_dims, c.features * 2))}
        self._adam("generator", self.modules["generator"].parameters(), c.lr_generator)
        self._adam("discriminator", self.modules["discriminator"].parameters(), c.lr_discriminator)

    def train_step(self, batch, step):
        c, m = self.config, self.trained
        real = batch["mask"]
        z = self._randn(len(real), c.latent)
        fake = m["generator"](z)
        loss_gp = gradient_penalty(m["discriminator"], real, fake.detach(), self.random, self.scalers["discriminator"])
        loss_d = -m["discriminator"](real).mean() + m["discriminator"](fake.detach()).mean() + c.lambda_gp * loss_gp
        self._update("discriminator", loss_d)
        losses = {"d": _value(loss_d), "gp": _value(loss_gp)}
        if step % c.n_critic == 0:
            loss_g = -m["discriminator"](m["generator"](z)).mean()
            self._update("generator", loss_g)
            losses["g"] = _value(loss_g)
        return losses

    def translate(self, x=None, target=None):
        """``x``: latent vectors (n, latent); returns masks in [-1, 1] (threshold at 0)."""
        return self.modules["generator"](x)
