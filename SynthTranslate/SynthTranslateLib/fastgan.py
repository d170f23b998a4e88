"""A light class-conditional generator for new 2-D images that learns on a CPU (after FastGAN,
Liu et al. 2021, with DiffAugment, Zhao et al. 2020, and projection + auxiliary-classifier
conditioning, Miyato & Koyama 2018 / Odena et al. 2017).

Written here because neither MONAI nor torch ships these parts.  The generator grows a 4x4
seed from (z, class, attributes) by nearest upsampling and plain 3x3 convolutions (no
modulated grouped convolutions, no per-pixel noise: the operations a CPU runs fastest), every
normalisation scaled and shifted by the class (conditional group norm, so the class cannot be
ignored), and skip-layer excitation (a low-resolution block gates the channels of a high-
resolution one).  The discriminator is a residual network with spectral norm, a projection
score and an auxiliary classifier head that the generator must satisfy.  ``diff_augment``
(translation, cutout, brightness, contrast) is applied to every image the discriminator sees,
real or fake, and differentiably, so small training sets are not memorised and the
augmentations do not leak into the samples.

Images are single-channel in [-1, 1]; every random draw comes from a ``torch.Generator`` the
caller passes (CPU), so a seed gives the same images on every device.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional

SLOPE = 0.2


def _normalise(x: torch.Tensor) -> torch.Tensor:
    return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + 1e-8)


def _groups(channels: int) -> int:
    return math.gcd(channels, 8)


class ConditionalNorm(nn.Module):
    """Group norm whose scale and shift come from the condition vector (class + attributes)."""

    def __init__(self, channels: int, condition: int):
        super().__init__()
        self.norm = nn.GroupNorm(_groups(channels), channels, affine=False)
        self.affine = nn.Linear(condition, 2 * channels)
        nn.init.zeros_(self.affine.weight)
        nn.init.zeros_(self.affine.bias)

    def forward(self, x: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        scale, shift = self.affine(condition)[:, :, None, None].chunk(2, dim=1)
        return self.norm(x) * (1 + scale) + shift


class UpBlock(nn.Module):
    """x2 nearest upsampling, then ``convolutions`` x (3x3 conv, conditional norm, leaky ReLU)."""

    def __init__(self, in_channels: int, out_channels: int, condition: int, convolutions: int):
        super().__init__()
        widths = [in_channels] + [out_channels] * convolutions
        self.convs = nn.ModuleList(nn.Conv2d(a, b, 3, padding=1, bias=False) for a, b in zip(widths[:-1], widths[1:]))
        self.norms = nn.ModuleList(ConditionalNorm(out_channels, condition) for _ in range(convolutions))

    def forward(self, x: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        x = functional.interpolate(x, scale_factor=2, mode="nearest")
        for conv, norm in zip(self.convs, self.norms):
            x = functional.leaky_relu(norm(conv(x), condition), SLOPE)
        return x


class SkipExcitation(nn.Module):
    """FastGAN's skip-layer excitation: a low-resolution map gates a high-resolution one's channels."""

    def __init__(self, low_channels: int, high_channels: int):
        super().__init__()
        self.gate = nn.Sequential(nn.AdaptiveAvgPool2d(4), nn.Conv2d(low_channels, high_channels, 4),
                                  nn.LeakyReLU(SLOPE), nn.Conv2d(high_channels, high_channels, 1), nn.Sigmoid())

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        return high * self.gate(low)


class FastGenerator(nn.Module):
    """(z, class, attributes) -> image in [-1, 1] of ``image_size`` px (a power of two >= 16).

    Widths halve per level from ``features * 8`` at 4x4 (at least ``features // 2``); levels
    below 32 px have two convolutions, the others one; the map two levels below each level
    from 32 px up gates it (skip-layer excitation)."""

    def __init__(self, latent: int, classes: int, image_size: int, features: int, attributes: int = 0):
        super().__init__()
        levels = int(math.log2(image_size)) - 2
        if 4 * 2 ** levels != image_size or levels < 2:
            raise ValueError(f"image_size must be a power of two >= 16, got {image_size}")
        condition = 2 * latent  # class (+ attributes) and z: every layer sees both (as BigGAN's shared embedding)
        self.embed = nn.Embedding(classes, latent)
        self.attributes = nn.Linear(attributes, latent) if attributes else None
        width = [max(features * 8 // 2 ** n, features // 2) for n in range(levels + 1)]
        self.seed = nn.Linear(condition, width[0] * 16)
        self.seed_norm = ConditionalNorm(width[0], condition)
        self.blocks = nn.ModuleList(UpBlock(width[n], width[n + 1], condition, 2 if 4 * 2 ** (n + 1) < 32 else 1)
                                    for n in range(levels))
        # block n (output 4 * 2**(n+1) px) is gated by block n-2's output
        self.excite = nn.ModuleDict({str(n): SkipExcitation(width[n - 1], width[n + 1])
                                     for n in range(2, levels) if 4 * 2 ** (n + 1) >= 32})
        self.to_grey = nn.Conv2d(width[-1], 1, 3, padding=1)

    def condition(self, z: torch.Tensor, classes: torch.Tensor, attributes: torch.Tensor | None) -> torch.Tensor:
        """(n, 2 latent): the class (plus attributes) embedding and z, each normalised."""
        label = _normalise(self.embed(classes))
        if self.attributes is not None:
            label = label + _normalise(self.attributes(attributes))
        return torch.cat([label, _normalise(z)], dim=1)

    def forward(self, z: torch.Tensor, classes: torch.Tensor, noise: torch.Generator | None = None,
                truncation: float = 1.0, w_centre=None, attributes: torch.Tensor | None = None) -> torch.Tensor:
        """``truncation`` scales z towards 0 (its mean); ``noise`` and ``w_centre`` are unused
        (the signature is the style generator's)."""
        condition = self.condition(z, classes, attributes)
        if truncation != 1.0:
            latent = condition.shape[1] // 2
            condition = torch.cat([condition[:, :latent], condition[:, latent:] * truncation], dim=1)
        x = self.seed(condition).view(len(z), -1, 4, 4)
        x = functional.leaky_relu(self.seed_norm(x, condition), SLOPE)
        outputs = []
        for n, block in enumerate(self.blocks):
            x = block(x, condition)
            if str(n) in self.excite:
                x = self.excite[str(n)](outputs[n - 2], x)
            outputs.append(x)
        return torch.tanh(self.to_grey(x))


def minibatch_std(x: torch.Tensor, group: int = 4) -> torch.Tensor:
    """x with one more channel: the feature standard deviation over groups of ``group`` images
    (fewer when the batch does not divide), averaged to one value per group (StyleGAN's layer:
    a discriminator that sees the batch's variety can penalise collapse)."""
    n, c, h, w = x.shape
    group = math.gcd(n, group)
    spread = x.view(group, -1, c, h, w).float().var(dim=0, unbiased=False).add(1e-8).sqrt().mean(dim=(1, 2, 3))
    return torch.cat([x, spread.to(x.dtype).repeat(group)[:, None, None, None].expand(n, 1, h, w)], dim=1)


class _DownBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.skip = nn.Conv2d(in_channels, out_channels, 1, bias=False)

    def forward(self, x):
        y = functional.leaky_relu(self.conv1(functional.leaky_relu(x, SLOPE)), SLOPE)
        y = functional.avg_pool2d(self.conv2(y), 2)
        return y + functional.avg_pool2d(self.skip(x), 2)


class ClassifyingDiscriminator(nn.Module):
    """Residual downsampling to 4x4, the minibatch standard deviation, a 3x3 convolution, summed
    features h; returns (score, class logits) with
    score = linear(h) + <embed(class), h> + <linear(attributes), h> and logits = linear(h)."""

    def __init__(self, image_size: int, classes: int, features: int, attributes: int = 0):
        super().__init__()
        levels = int(math.log2(image_size)) - 2
        width = [min(features // 2 * 2 ** n, features * 8) for n in range(levels + 1)]
        self.stem = nn.Conv2d(1, width[0], 3, padding=1)
        self.blocks = nn.ModuleList(_DownBlock(a, b) for a, b in zip(width[:-1], width[1:]))
        self.last = nn.Conv2d(width[-1] + 1, width[-1], 3, padding=1)
        self.score = nn.Linear(width[-1], 1)
        self.embed = nn.Embedding(classes, width[-1])
        self.attributes = nn.Linear(attributes, width[-1], bias=False) if attributes else None
        self.classify = nn.Linear(width[-1], classes)

    def forward(self, image: torch.Tensor, classes: torch.Tensor,
                attributes: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.stem(image)
        for block in self.blocks:
            x = block(x)
        h = functional.leaky_relu(self.last(minibatch_std(functional.leaky_relu(x, SLOPE))), SLOPE).sum(dim=(2, 3))
        condition = self.embed(classes)
        if self.attributes is not None:
            condition = condition + self.attributes(attributes)
        return self.score(h)[:, 0] + (condition * h).sum(dim=1), self.classify(h)


def diff_augment(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """DiffAugment's policy for grey images, every image every time: brightness (+U(-0.5, 0.5)),
    contrast (x U(0.5, 1.5) about the image mean), translation by up to 1/8 of the size (zero
    padded) and a cutout of half the size at a random place.  Differentiable in ``images``."""
    n, _, height, width = images.shape
    device = images.device

    def uniform(*shape):
        return torch.rand(*shape, generator=generator).to(device)

    x = images + (uniform(n, 1, 1, 1) - 0.5)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * (uniform(n, 1, 1, 1) + 0.5) + mean
    # translation: shift each image by whole pixels (gather from a zero-padded copy)
    shift = max(1, height // 8)
    dy = (uniform(n) * (2 * shift + 1)).long() - shift
    dx = (uniform(n) * (2 * shift + 1)).long() - shift
    rows = (torch.arange(height, device=device)[None, :] - dy[:, None]).clamp(-1, height)  # -1 / height: padding
    cols = (torch.arange(width, device=device)[None, :] - dx[:, None]).clamp(-1, width)
    padded = functional.pad(x, (1, 1, 1, 1))
    x = padded[torch.arange(n, device=device)[:, None, None], :, rows[:, :, None] + 1, cols[:, None, :] + 1]
    x = x.permute(0, 3, 1, 2)
    # cutout: a (height/2 x width/2) square, centred anywhere, set to 0
    cy = (uniform(n) * height).long()[:, None, None]
    cx = (uniform(n) * width).long()[:, None, None]
    ys = torch.arange(height, device=device)[None, :, None]
    xs = torch.arange(width, device=device)[None, None, :]
    keep = ((ys - cy).abs() >= height // 4) | ((xs - cx).abs() >= width // 4)
    return x * keep[:, None].to(x.dtype)
