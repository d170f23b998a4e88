"""New images of a chosen class: the training steps of the style-based generator (networks in
``stylegan``) and of the light generator that learns on a CPU (networks in ``fastgan``)."""

from __future__ import annotations

import torch
from torch import nn

from MedSynthCommonLib.errors import MedSynthInputError

from .translator import Translator, _spectral, _value


class ClassImageGenerator(Translator):
    """What every generator of new images of a chosen class shares: the EMA copy of the
    generator (``generator_ema``: the one sampled and saved), numeric attributes, sampling
    with truncation.  Subclasses build ``generator``, ``generator_ema`` and ``discriminator``."""

    @torch.no_grad()
    def _update_ema(self, step: int, batch: int):
        """EMA with a half-life of ``ema_kimg`` thousand images, ramped up over the first steps
        (half-life at most ``ema_rampup`` x the images seen so far), as in StyleGAN2-ADA."""
        images = batch * self.ranks.world_size
        half_life = min(self.config.ema_kimg * 1000, step * images * self.config.ema_rampup)
        beta = 0.5 ** (images / max(half_life, 1e-8))
        source, target = self.modules["generator"], self.modules["generator_ema"]
        for ema, live in zip(target.parameters(), source.parameters()):
            ema.lerp_(live.detach(), 1.0 - beta)
        for ema, live in zip(target.buffers(), source.buffers()):
            ema.copy_(live)

    def _attributes(self, count: int, values: dict[str, float] | None, device) -> torch.Tensor | None:
        """(count, attributes) standardised attribute values; unnamed ones at the training mean."""
        names = self.config.attributes
        if not names:
            if values:
                raise MedSynthInputError(f"This model has no numeric attributes; got {sorted(values)}.")
            return None
        unknown = sorted(set(values or {}) - set(names))
        if unknown:
            raise MedSynthInputError(f"Unknown attribute(s) {unknown}; this model knows {names}.")
        row = [((values or {}).get(name, mean) - mean) / std for name, (mean, std) in zip(names, self.config.attribute_stats)]
        return torch.tensor([row] * count, dtype=torch.float32, device=device)

    def translate(self, x=None, target=None):
        """``x``: latents (n, latent); ``target``: class index; the EMA generator, noise seeded,
        attributes at their training means."""
        if target is None:
            raise ValueError("A class-conditional generator needs the class to sample.")
        classes = torch.full((len(x),), int(target), dtype=torch.long, device=x.device)
        return self.modules["generator_ema"](x, classes, torch.Generator().manual_seed(0),
                                             attributes=self._attributes(len(x), None, x.device))

    def sample(self, z: torch.Tensor, target: int, truncation: float = 1.0, noise_seed: int = 0,
               attributes: dict[str, float] | None = None) -> torch.Tensor:
        """Images of class ``target`` with ``attributes`` (name -> value in the CSV's units;
        unnamed ones at the training mean) from latents ``z`` (n, latent), truncated towards the
        mean style of that class and those attributes (``truncation`` 1 = none, 0.7 = typical);
        CPU float32 in [-1, 1]."""
        generator = self.modules["generator_ema"]
        z = self.accelerator.tensor(z)
        classes = torch.full((len(z),), int(target), dtype=torch.long, device=z.device)
        condition = self._attributes(len(z), attributes, z.device)
        centre = None
        if truncation != 1.0 and hasattr(generator, "mapping"):  # style generators truncate w towards this mean
            probe = torch.randn(2000, self.config.latent, generator=torch.Generator().manual_seed(123)).to(z.device)
            centre = generator.mapping(probe, torch.full((2000,), int(target), dtype=torch.long, device=z.device),
                                       self._attributes(2000, attributes, z.device)).mean(0)
        with self.accelerator.autocast():
            out = generator(z, classes, torch.Generator().manual_seed(noise_seed), truncation, centre, condition)
        return out.float().clamp(-1.0, 1.0).cpu()


class StyleGan(ClassImageGenerator):
    """New images of a chosen class (see ``stylegan``): non-saturating logistic loss, R1 on
    reals every ``r1_every`` steps (lazy, scaled by the interval), an EMA copy of the generator
    (``generator_ema``: the one sampled and saved), and ADA: the discriminator sees reals and
    fakes augmented with probability p, raised or lowered every 4 steps so that the share of
    reals it scores positive stays at ``ada_target``."""

    def build(self):
        import copy

        from .stylegan import ProjectionDiscriminator, StyleGenerator

        c = self.config
        attributes = len(c.attributes)
        generator = StyleGenerator(c.latent, len(c.domains), c.image_size, c.w_dim, c.mapping_layers, c.features,
                                   attributes)
        ema = copy.deepcopy(generator).requires_grad_(False)
        self.modules = {"generator": generator, "generator_ema": ema,
                        "discriminator": self.discriminator(ProjectionDiscriminator(c.image_size, len(c.domains),
                                                                                    c.features, attributes))}
        betas = (0.0, 0.99)  # StyleGAN2's Adam settings
        self.optimizers["generator"] = torch.optim.Adam(generator.parameters(), lr=c.stylegan_lr, betas=betas)
        self.optimizers["discriminator"] = torch.optim.Adam(self.modules["discriminator"].parameters(),
                                                            lr=c.stylegan_lr, betas=betas)
        self.ada_p, self.ada_signs, self.ada_count = 0.0, 0.0, 0

    def _d(self, images, classes, attributes):
        from .stylegan import augment

        return self.trained["discriminator"](augment(images, self.ada_p, self.random), classes, attributes)

    def train_step(self, batch, step):
        """Fakes are made for the real batch's classes and attributes (standardised)."""
        c, m = self.config, self.trained
        real, classes, attributes = batch["image"], batch["domain"], batch.get("attributes")
        z = self._randn(len(real), c.latent)
        fake = m["generator"](z, classes, self.random, attributes=attributes)
        real_logits = self._d(real, classes, attributes)
        loss_d = nn.functional.softplus(self._d(fake.detach(), classes, attributes)).mean() + \
            nn.functional.softplus(-real_logits).mean()
        losses = {}
        if step % c.r1_every == 0:
            loss_r1 = self._r1(real, classes, attributes)
            loss_d = loss_d + c.lambda_r1 / 2 * c.r1_every * loss_r1
            losses["r1"] = _value(loss_r1)
        self._update("discriminator", loss_d)
        loss_g = nn.functional.softplus(-self._d(fake, classes, attributes)).mean()
        self._update("generator", loss_g)
        self._update_ema(step, len(real))
        self._adapt(real_logits)
        return {"d": _value(loss_d), "g": _value(loss_g), "ada_p": self.ada_p, **losses}

    def _r1(self, real, classes, attributes):
        """Squared gradient norm of the discriminator's score at (augmented) real images, in
        full precision (lazy R1 runs every few steps only; fp16 gradients would overflow)."""
        real = real.detach().float().requires_grad_(True)
        with self.accelerator.full_precision():
            scores = self._d(real, classes, attributes).float()
            grad, = torch.autograd.grad(scores.sum(), real, create_graph=True)
            return grad.pow(2).flatten(1).sum(dim=1).mean()

    def _adapt(self, real_logits):
        """ADA: every 4 steps move p by the images seen over ``ada_kimg`` thousand images,
        towards more augmentation while more than ``ada_target`` of reals score positive."""
        self.ada_signs += float(torch.sign(real_logits.detach()).sum())
        self.ada_count += len(real_logits)
        if self.ada_count >= 4 * len(real_logits):
            signs = self.ranks.mean({"s": self.ada_signs / self.ada_count})["s"]  # one p on every rank
            step = self.ada_count * self.ranks.world_size / (self.config.ada_kimg * 1000)
            self.ada_p = float(min(max(self.ada_p + (step if signs > self.config.ada_target else -step), 0.0), 1.0))
            self.ada_signs, self.ada_count = 0.0, 0

    def extra_state(self):
        return {"ada_p": self.ada_p, "ada_signs": self.ada_signs, "ada_count": self.ada_count}

    def load_extra_state(self, state):
        self.ada_p, self.ada_signs, self.ada_count = state["ada_p"], state["ada_signs"], state["ada_count"]


class FastGan(ClassImageGenerator):
    """New images of a chosen class, light enough to learn on a CPU (see ``fastgan``): hinge
    loss on DiffAugment-ed reals and fakes, projection conditioning plus an auxiliary classifier
    (the discriminator learns the classes on reals, the generator is trained so that its images
    are classified as the class asked for, weight ``lambda_cls``), a mode-seeking term (weight
    ``lambda_mode_seeking``: two latents of one class must not give one image), an EMA generator."""

    def build(self):
        import copy

        from .fastgan import ClassifyingDiscriminator, FastGenerator

        c = self.config
        attributes = len(c.attributes)
        generator = FastGenerator(c.latent, len(c.domains), c.image_size, c.features, attributes)
        ema = copy.deepcopy(generator).requires_grad_(False)
        self.modules = {"generator": generator, "generator_ema": ema,
                        "discriminator": _spectral(ClassifyingDiscriminator(c.image_size, len(c.domains),
                                                                                 c.features, attributes))}
        self._adam("generator", generator.parameters(), c.lr_generator)
        self._adam("discriminator", self.modules["discriminator"].parameters(), c.lr_discriminator)

    def _d(self, images, classes, attributes):
        from .fastgan import diff_augment

        return self.trained["discriminator"](diff_augment(images, self.random), classes, attributes)

    def train_step(self, batch, step):
        """Fakes are made for the real batch's classes and attributes."""
        c, m = self.config, self.trained
        real, classes, attributes = batch["image"], batch["domain"], batch.get("attributes")
        # fakes in pairs of the same class and attributes (the first half's, twice) for the mode-seeking term
        half = len(real) // 2
        pair = torch.cat([torch.arange(half), torch.arange(len(real) - half)]).to(classes.device)
        fake_classes = classes[pair]
        fake_attributes = None if attributes is None else attributes[pair]
        z = self._randn(len(real), c.latent)
        fake = m["generator"](z, fake_classes, attributes=fake_attributes)
        real_score, real_logits = self._d(real, classes, attributes)
        fake_score, _ = self._d(fake.detach(), fake_classes, fake_attributes)
        loss_cls_real = nn.functional.cross_entropy(real_logits.float(), classes)
        loss_d = nn.functional.relu(1 - real_score).mean() + nn.functional.relu(1 + fake_score).mean() + \
            c.lambda_cls * loss_cls_real
        self._update("discriminator", loss_d)
        score, logits = self._d(fake, fake_classes, fake_attributes)
        loss_cls_fake = nn.functional.cross_entropy(logits.float(), fake_classes)
        losses = {}
        loss_g = -score.mean() + c.lambda_cls * loss_cls_fake
        if c.lambda_mode_seeking and half:
            # mode seeking (Mao et al. 2019): two latents of one class must give images as different as the latents
            images = (fake[:half] - fake[half:2 * half]).abs().mean(dim=(1, 2, 3))
            latents = (z[:half] - z[half:2 * half]).abs().mean(dim=1)
            loss_ms = 1.0 / ((images / latents).mean() + 1e-5)
            loss_g = loss_g + c.lambda_mode_seeking * loss_ms
            losses["mode_seeking"] = _value(loss_ms)
        self._update("generator", loss_g)
        self._update_ema(step, len(real))
        return {"d": _value(loss_d), "g": _value(loss_g), "cls_real": _value(loss_cls_real),
                "cls_fake": _value(loss_cls_fake), **losses}
