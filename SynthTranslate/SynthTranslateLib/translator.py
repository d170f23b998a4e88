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
from MedSynthCommonLib.distributed import Ranks

from .config import TranslatorConfig


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
