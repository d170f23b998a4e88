"""A class-conditional, style-based generator for new 2-D images (after StyleGAN2, Karras et
al. 2020, with the adaptive discriminator augmentation of StyleGAN2-ADA, Karras et al. 2020).

Written here because neither MONAI nor torch ships these parts: the mapping network (latent
z and class embedding -> style w), modulated 3x3 convolutions with weight demodulation, per-
pixel noise inputs, the skip ("to grey") synthesis architecture, a residual discriminator with
projection conditioning (Miyato & Koyama 2018), and ADA's differentiable augmentations.  The
training step (non-saturating logistic loss, lazy R1 penalty, EMA generator, ADA probability
control) lives in ``translate_new_images.StyleGan``.  Path-length regularisation is left out: R1 alone is the
simpler regularisation ADA's authors found sufficient for small sets.

Images are single-channel in [-1, 1]; every random draw comes from a ``torch.Generator`` the
caller passes (CPU), so a seed gives the same images on every device.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional

#: leaky ReLU slope and the gain that keeps activations at unit variance through it
SLOPE, GAIN = 0.2, math.sqrt(2.0)


def _activate(x: torch.Tensor) -> torch.Tensor:
    return functional.leaky_relu(x, SLOPE) * GAIN


def _normalise(x: torch.Tensor) -> torch.Tensor:
    """Pixel norm over the feature axis (the mapping network's input normalisation)."""
    return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + 1e-8)


class MappingNetwork(nn.Module):
    """z (latent), a class index and numeric attributes (standardised, e.g. age) -> style w:
    each embedded and normalised, concatenated, then an MLP."""

    def __init__(self, latent: int, classes: int, w_dim: int, layers: int, attributes: int = 0):
        super().__init__()
        self.embed = nn.Embedding(classes, latent)
        self.attributes = nn.Linear(attributes, latent) if attributes else None
        dims = [(3 if attributes else 2) * latent] + [w_dim] * layers
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))

    def forward(self, z: torch.Tensor, classes: torch.Tensor, attributes: torch.Tensor | None = None) -> torch.Tensor:
        parts = [_normalise(z), _normalise(self.embed(classes))]
        if self.attributes is not None:
            parts.append(_normalise(self.attributes(attributes)))
        x = torch.cat(parts, dim=1)
        for layer in self.layers:
            x = _activate(layer(x))
        return x


class ModulatedConv(nn.Module):
    """3x3 convolution whose input channels are scaled per sample by the style, with weight
    demodulation (each output channel back to unit variance), as one grouped convolution."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, kernel: int = 3, demodulate: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.affine = nn.Linear(w_dim, in_channels)
        nn.init.ones_(self.affine.bias)  # styles start at 1: the convolution starts unmodulated
        self.scale = 1.0 / math.sqrt(in_channels * kernel * kernel)  # equalised learning rate
        self.demodulate, self.padding = demodulate, kernel // 2

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        style = self.affine(w)  # (batch, in)
        weight = self.scale * self.weight[None] * style[:, None, :, None, None]  # (batch, out, in, k, k)
        if self.demodulate:
            weight = weight * torch.rsqrt(weight.pow(2).sum(dim=(2, 3, 4), keepdim=True) + 1e-8)
        out = functional.conv2d(x.reshape(1, batch * channels, height, width),
                                weight.reshape(-1, channels, *weight.shape[-2:]), padding=self.padding, groups=batch)
        return out.reshape(batch, -1, height, width) + self.bias[None, :, None, None]


class StyleLayer(nn.Module):
    """Modulated convolution + per-pixel noise (learned strength) + activation."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int):
        super().__init__()
        self.conv = ModulatedConv(in_channels, out_channels, w_dim)
        self.noise_strength = nn.Parameter(torch.zeros(()))

    def forward(self, x, w, noise: torch.Generator | None):
        x = self.conv(x, w)
        if noise is not None:
            x = x + self.noise_strength * torch.randn((x.shape[0], 1, *x.shape[2:]), generator=noise).to(x.device)
        return _activate(x)


class SynthesisNetwork(nn.Module):
    """A learned 4x4 constant, then per resolution (x2 each) two style layers and a 1x1
    "to grey" output, summed over resolutions (skip architecture)."""

    def __init__(self, image_size: int, w_dim: int, features: int):
        super().__init__()
        levels = int(math.log2(image_size)) - 2  # 4 -> image_size
        if 4 * 2 ** levels != image_size:
            raise ValueError(f"image_size must be a power of two >= 8, got {image_size}")
        width = [min(features * 2 ** (levels - n), features * 8) for n in range(levels + 1)]
        self.constant = nn.Parameter(torch.randn(1, width[0], 4, 4))
        self.first = StyleLayer(width[0], width[0], w_dim)
        self.blocks = nn.ModuleList(nn.ModuleList([StyleLayer(width[n], width[n + 1], w_dim),
                                                   StyleLayer(width[n + 1], width[n + 1], w_dim)])
                                    for n in range(levels))
        self.to_grey = nn.ModuleList(ModulatedConv(c, 1, w_dim, kernel=1, demodulate=False) for c in width)

    def forward(self, w: torch.Tensor, noise: torch.Generator | None = None) -> torch.Tensor:
        x = self.first(self.constant.expand(len(w), -1, -1, -1), w, noise)
        image = self.to_grey[0](x, w)
        for (up, same), to_grey in zip(self.blocks, self.to_grey[1:]):
            x = functional.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
            x = same(up(x, w, noise), w, noise)
            image = functional.interpolate(image, scale_factor=2, mode="bilinear", align_corners=False) + to_grey(x, w)
        return image


class StyleGenerator(nn.Module):
    """Mapping + synthesis: (z, class, attributes) -> image; ``truncation`` pulls w towards
    ``w_centre``."""

    def __init__(self, latent: int, classes: int, image_size: int, w_dim: int, mapping_layers: int, features: int,
                 attributes: int = 0):
        super().__init__()
        self.mapping = MappingNetwork(latent, classes, w_dim, mapping_layers, attributes)
        self.synthesis = SynthesisNetwork(image_size, w_dim, features)

    def forward(self, z, classes, noise: torch.Generator | None = None, truncation: float = 1.0, w_centre=None,
                attributes: torch.Tensor | None = None):
        w = self.mapping(z, classes, attributes)
        if truncation != 1.0 and w_centre is not None:
            w = w_centre + truncation * (w - w_centre)
        return self.synthesis(w, noise)


class ProjectionDiscriminator(nn.Module):
    """Residual downsampling blocks to 4x4, a linear layer to features h, then
    score = linear(h) + <embed(class), h> + <linear(attributes), h> (projection conditioning)."""

    def __init__(self, image_size: int, classes: int, features: int, attributes: int = 0):
        super().__init__()
        levels = int(math.log2(image_size)) - 2
        width = [min(features * 2 ** n, features * 8) for n in range(levels + 1)]
        self.stem = nn.Conv2d(1, width[0], 1)
        self.blocks = nn.ModuleList(_DownBlock(a, b) for a, b in zip(width[:-1], width[1:]))
        self.features = nn.Linear(width[-1] * 16, width[-1])
        self.score = nn.Linear(width[-1], 1)
        self.embed = nn.Embedding(classes, width[-1])
        self.attributes = nn.Linear(attributes, width[-1], bias=False) if attributes else None

    def forward(self, image: torch.Tensor, classes: torch.Tensor, attributes: torch.Tensor | None = None) -> torch.Tensor:
        x = _activate(self.stem(image))
        for block in self.blocks:
            x = block(x)
        h = _activate(self.features(x.flatten(1)))
        condition = self.embed(classes)
        if self.attributes is not None:
            condition = condition + self.attributes(attributes)
        return self.score(h)[:, 0] + (condition * h).sum(dim=1) / math.sqrt(h.shape[1])


class _DownBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, in_channels, 3, padding=1)
        self.conv2 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.skip = nn.Conv2d(in_channels, out_channels, 1, bias=False)

    def forward(self, x):
        y = functional.avg_pool2d(_activate(self.conv2(_activate(self.conv1(x)))), 2)
        return (y + functional.avg_pool2d(self.skip(x), 2)) / math.sqrt(2.0)


def augment(images: torch.Tensor, probability: float, generator: torch.Generator) -> torch.Tensor:
    """ADA's augmentations, each applied to each image with ``probability``, differentiable (so
    the generator learns through them and they do not leak into its images):
    translation up to 1/8 of the size, isotropic scaling (log2-normal, sd 0.2), rotation up to
    +-30 degrees (anatomy keeps its side: no flips), brightness (+N(0, 0.2)) and contrast
    (x log2-normal, sd 0.5).  Geometry goes through one affine resampling with reflection."""
    if probability <= 0:
        return images
    n = len(images)

    def draw(*shape):
        return torch.rand(*shape, generator=generator)

    def used():
        return (draw(n) < probability).float()

    translate = (draw(n, 2) * 2 - 1) * 0.25 * used()[:, None]  # grid units: 2 = the whole image
    scale = torch.exp2(torch.randn(n, generator=generator) * 0.2 * used())
    angle = (draw(n) * 2 - 1) * math.radians(30) * used()
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, translate[:, 0]], 1), torch.stack([sin, cos, translate[:, 1]], 1)], 1)
    grid = functional.affine_grid(theta.to(images), list(images.shape), align_corners=False)
    out = functional.grid_sample(images, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    brightness = (torch.randn(n, generator=generator) * 0.2 * used()).to(images)
    contrast = torch.exp2(torch.randn(n, generator=generator) * 0.5 * used()).to(images)
    mean = out.mean(dim=(1, 2, 3), keepdim=True)
    return (out - mean) * contrast[:, None, None, None] + mean + brightness[:, None, None, None]
