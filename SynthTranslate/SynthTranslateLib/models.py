"""The six translators: networks, losses and one training step each.

Every translator exposes the same small interface, so one training loop, one checkpoint
format and one ``translate`` serve them all:
``modules`` (name -> nn.Module, for weights and inference), ``trained`` (the same modules as
the training step calls them: in ``DistributedDataParallel`` when several ranks train), ``optimizers`` (name -> optimiser), ``fit_step(batch, step)``
-> losses (moves the batch to the device and runs ``train_step`` under the run's precision),
``infer(x, target=None)`` (inference, generator only, CPU float32 out).
Batches are dicts of tensors in [-1, 1]: pix2pix/spade {"source", "target"}, cyclegan
{"a", "b"}, stargan/migan {"image", "domain"}, maskgan {"mask"}.

Every optimiser step goes through ``_update``, which scales fp16 losses (one GradScaler per
optimiser; a no-op in fp32/bf16) and runs the backward pass outside autocast.
"""

from __future__ import annotations

import torch
from torch import nn

from MedSynthCommonLib.devices import Accelerator
from MedSynthCommonLib.errors import MedSynthInputError
from MedSynthCommonLib.distributed import Ranks, rank_seed
from .config import TranslatorConfig
from .networks import (CoarseToFineGenerator, MaskCritic, MaskGenerator, MultiScaleDiscriminator, ResnetGenerator, SpadeGenerator, StarDiscriminator, StarGenerator,
                       UNetGenerator, patch_discriminator)


def _value(loss: torch.Tensor) -> float:
    return float(loss.detach())


def _spectral(module: nn.Module) -> nn.Module:
    for child in module.modules():
        if isinstance(child, (nn.Conv2d, nn.Conv3d, nn.Linear)):
            nn.utils.parametrizations.spectral_norm(child)
    return module


def gradient_penalty(critic, real: torch.Tensor, fake: torch.Tensor, generator: torch.Generator,
                     scaler: torch.amp.GradScaler | None = None) -> torch.Tensor:
    """WGAN-GP penalty (Gulrajani et al. 2017): (||grad critic(x_hat)|| - 1)^2 on random
    interpolates.  Written by hand: neither torch nor MONAI ships it.

    Under fp16 the inner gradient is taken of the scaled output and unscaled afterwards (the
    recipe of torch's AMP notes), outside autocast; ``generator`` is a CPU generator.
    """
    alpha = torch.rand((len(real),) + (1,) * (real.ndim - 1), generator=generator).to(real.device)
    mixed = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    output = critic(mixed)
    output = (output[0] if isinstance(output, tuple) else output).float()
    scale = scaler.get_scale() if scaler is not None and scaler.is_enabled() else 1.0
    with torch.autocast(real.device.type, enabled=False):
        grad, = torch.autograd.grad(output.sum() * scale, mixed, create_graph=True)
        return ((grad.float().flatten(1).norm(dim=1) / scale - 1) ** 2).mean()


class ImagePool:
    """CycleGAN's history of generated images (size 50): the discriminator sees older fakes too."""

    def __init__(self, size: int, generator: torch.Generator):
        self.size, self.images, self.generator = size, [], generator

    def query(self, images: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return images
        out = []
        for image in images.detach():
            if len(self.images) < self.size:
                self.images.append(image)
                out.append(image)
            elif torch.rand(1, generator=self.generator).item() < 0.5:
                index = int(torch.randint(len(self.images), (1,), generator=self.generator))
                out.append(self.images[index].clone())
                self.images[index] = image
            else:
                out.append(image)
        return torch.stack(out)

    def state_dict(self) -> dict:
        return {"images": torch.stack(self.images).cpu() if self.images else torch.zeros(0)}

    def load_state_dict(self, state: dict, device: str = "cpu") -> None:
        self.images = list(state["images"].to(device)) if len(state["images"]) else []


class Translator:
    def __init__(self, config: TranslatorConfig, generator: torch.Generator, accelerator: Accelerator | None = None,
                 ranks: Ranks | None = None):
        self.config = config.validate()
        self.random = generator  # training randomness (gradient penalty, pools, targets): CPU, this rank's own
        self.accelerator = accelerator or Accelerator()
        self.ranks = ranks or Ranks()
        self.modules: dict[str, nn.Module] = {}
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.build()
        for module in self.modules.values():
            self.accelerator.module(module, config.spatial_dims)
        self.trained = {name: self.ranks.wrap(module) for name, module in self.modules.items()}
        self.scalers = {name: self.accelerator.grad_scaler() for name in self.optimizers}

    @property
    def device(self) -> str:
        return self.accelerator.device

    def _adam(self, name: str, parameters, lr: float):
        self.optimizers[name] = torch.optim.Adam(parameters, lr=lr, betas=self.config.betas)

    def _update(self, name: str, loss: torch.Tensor) -> None:
        """One optimiser step on ``loss`` (scaled under fp16; backward outside autocast)."""
        optimizer, scaler = self.optimizers[name], self.scalers[name]
        optimizer.zero_grad()
        with self.accelerator.full_precision():
            scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    def _randn(self, *shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=self.random).to(self.device)

    def discriminator(self, module: nn.Module) -> nn.Module:
        return _spectral(module) if self.config.spectral_norm else module

    def fit_step(self, batch: dict, step: int) -> dict:
        """Move ``batch`` to the device and take one training step under the run's precision."""
        batch = {name: self.accelerator.tensor(value) for name, value in batch.items()}
        with self.accelerator.autocast():
            return self.train_step(batch, step)

    def infer(self, x: torch.Tensor, target: int | None = None) -> torch.Tensor:
        """Generator output for ``x`` (any device), as CPU float32; call under ``torch.no_grad``."""
        with self.accelerator.autocast():
            return self.translate(self.accelerator.tensor(x), target).float().cpu()

    def extra_state(self) -> dict:
        return {}

    def load_extra_state(self, state: dict) -> None:
        pass


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


class StyleGan(Translator):
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
        if truncation != 1.0:
            probe = torch.randn(2000, self.config.latent, generator=torch.Generator().manual_seed(123)).to(z.device)
            centre = generator.mapping(probe, torch.full((2000,), int(target), dtype=torch.long, device=z.device),
                                       self._attributes(2000, attributes, z.device)).mean(0)
        with self.accelerator.autocast():
            out = generator(z, classes, torch.Generator().manual_seed(noise_seed), truncation, centre, condition)
        return out.float().clamp(-1.0, 1.0).cpu()

    def extra_state(self):
        return {"ada_p": self.ada_p, "ada_signs": self.ada_signs, "ada_count": self.ada_count}

    def load_extra_state(self, state):
        self.ada_p, self.ada_signs, self.ada_count = state["ada_p"], state["ada_signs"], state["ada_count"]


TRANSLATORS = {"pix2pix": Pix2Pix, "spade": Spade, "cyclegan": CycleGan, "stargan": StarGan, "migan": MiGan,
               "maskgan": MaskGan, "stylegan": StyleGan,
               "pix2pixhd": Pix2PixHD}


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
