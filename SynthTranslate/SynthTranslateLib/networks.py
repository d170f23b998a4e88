"""Generator and discriminator networks of the translators.

From MONAI: the U-Net generator (pix2pix), ``PatchDiscriminator`` (70x70 PatchGAN),
``MultiScalePatchDiscriminator`` and the ``SPADE`` normalisation block.  Written here, because
MONAI has no equivalent: the ResNet generator of CycleGAN, pix2pixHD's coarse-to-fine generator, the domain-conditioned generator
and two-headed discriminator of StarGAN, MI-GAN's attention and key-migration branch, and the
small WGAN critic/generator of the mask GAN.  Images are single-channel in [-1, 1].
"""

from __future__ import annotations

import torch
from torch import nn


def _norm(channels: int, spatial_dims: int = 2, eps: float = 1e-5) -> nn.Module:
    return (nn.InstanceNorm2d if spatial_dims == 2 else nn.InstanceNorm3d)(channels, affine=True, eps=eps)


def _conv(spatial_dims: int):
    return nn.Conv2d if spatial_dims == 2 else nn.Conv3d


class ResidualBlock(nn.Module):
    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1, padding_mode="reflect"),
                                  _norm(channels, eps=eps), nn.ReLU(inplace=True),
                                  nn.Conv2d(channels, channels, 3, padding=1, padding_mode="reflect"),
                                  _norm(channels, eps=eps))

    def forward(self, x):
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    """CycleGAN generator: 7x7 conv, two stride-2 downsamplings, residual blocks, two
    upsamplings, 7x7 conv, tanh.  Input size must be divisible by 4."""

    def __init__(self, in_channels: int = 1, out_channels: int = 1, features: int = 32, blocks: int = 6):
        super().__init__()
        layers = [nn.Conv2d(in_channels, features, 7, padding=3, padding_mode="reflect"), _norm(features), nn.ReLU(True)]
        for k in range(2):
            layers += [nn.Conv2d(features * 2 ** k, features * 2 ** (k + 1), 3, stride=2, padding=1),
                       _norm(features * 2 ** (k + 1)), nn.ReLU(True)]
        layers += [ResidualBlock(features * 4) for _ in range(blocks)]
        for k in (2, 1):
            layers += [nn.ConvTranspose2d(features * 2 ** k, features * 2 ** (k - 1), 3, stride=2, padding=1,
                                          output_padding=1), _norm(features * 2 ** (k - 1)), nn.ReLU(True)]
        layers += [nn.Conv2d(features, out_channels, 7, padding=3, padding_mode="reflect"), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x)


class CoarseToFineGenerator(nn.Module):
    """pix2pixHD generator (Wang et al. 2018): a global ResNet generator sees the input at half
    resolution; a local enhancer sees it at full resolution and adds the global generator's last
    features to its own before its residual blocks and the output layer, so fine detail comes
    from the full-resolution path and layout from the coarse one.  Input size divisible by
    2^(downsamplings + 1).

    Its instance normalisations use eps = 1e-3 (torch: 1e-5): a channel that a ReLU left
    constant has zero variance, and the normalisation's backward pass multiplies its gradient
    by 1/sqrt(eps) - 316x per layer with torch's eps, which under bf16 rounding overflowed within
    the 30 normalisations of this generator (measured; 32x with 1e-3 stays finite)."""

    EPS = 1e-3

    def __init__(self, in_channels: int, features: int = 32, downsamplings: int = 3, global_blocks: int = 6,
                 local_blocks: int = 3):
        super().__init__()
        width = features * 2  # the global generator's width at its input and output
        layers = [nn.Conv2d(in_channels, width, 7, padding=3, padding_mode="reflect"), _norm(width, eps=self.EPS), nn.ReLU(True)]
        for k in range(downsamplings):
            layers += [nn.Conv2d(width * 2 ** k, width * 2 ** (k + 1), 3, stride=2, padding=1),
                       _norm(width * 2 ** (k + 1), eps=self.EPS), nn.ReLU(True)]
        layers += [ResidualBlock(width * 2 ** downsamplings, self.EPS) for _ in range(global_blocks)]
        for k in reversed(range(downsamplings)):
            layers += [nn.ConvTranspose2d(width * 2 ** (k + 1), width * 2 ** k, 3, stride=2, padding=1,
                                          output_padding=1), _norm(width * 2 ** k, eps=self.EPS), nn.ReLU(True)]
        self.global_generator = nn.Sequential(*layers)
        self.local_down = nn.Sequential(
            nn.Conv2d(in_channels, features, 7, padding=3, padding_mode="reflect"), _norm(features, eps=self.EPS), nn.ReLU(True),
            nn.Conv2d(features, width, 3, stride=2, padding=1), _norm(width, eps=self.EPS), nn.ReLU(True))
        self.local_up = nn.Sequential(
            *[ResidualBlock(width, self.EPS) for _ in range(local_blocks)],
            nn.ConvTranspose2d(width, features, 3, stride=2, padding=1, output_padding=1), _norm(features, eps=self.EPS),
            nn.ReLU(True), nn.Conv2d(features, 1, 7, padding=3, padding_mode="reflect"), nn.Tanh())

    def forward(self, x):
        half = nn.functional.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
        return self.local_up(self.local_down(x) + self.global_generator(half))


class UNetGenerator(nn.Module):
    """pix2pix generator: MONAI U-Net with a tanh output.  Input size divisible by 2^(levels-1)."""

    def __init__(self, in_channels: int = 1, out_channels: int = 1, channels=(32, 64, 128, 256)):
        super().__init__()
        from monai.networks.nets import UNet

        self.unet = UNet(2, in_channels, out_channels, channels, (2,) * (len(channels) - 1), num_res_units=1,
                         norm="INSTANCE", dropout=0.0)

    def forward(self, x):
        return torch.tanh(self.unet(x))


class SpadeResBlock(nn.Module):
    """Residual block whose normalisations are modulated by the label map (MONAI ``SPADE``)."""

    def __init__(self, channels: int, label_channels: int):
        super().__init__()
        from monai.networks.blocks import SPADE

        self.norm1 = SPADE(label_channels, channels, hidden_channels=64)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.norm2 = SPADE(label_channels, channels, hidden_channels=64)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.act = nn.LeakyReLU(0.2)

    def forward(self, x, labels):
        y = self.conv1(self.act(self.norm1(x, labels)))
        return x + self.conv2(self.act(self.norm2(y, labels)))


class SpadeGenerator(nn.Module):
    """SPADE-style label-map-to-image generator: a coarse code from the one-hot label map is
    upsampled through SPADE residual blocks that re-inject the label map at every scale."""

    def __init__(self, label_channels: int, features: int = 64, levels: int = 3):
        super().__init__()
        self.levels = levels
        self.head = nn.Conv2d(label_channels, features, 3, padding=1)
        self.blocks = nn.ModuleList(SpadeResBlock(features, label_channels) for _ in range(levels + 1))
        self.tail = nn.Conv2d(features, 1, 3, padding=1)

    def forward(self, labels):
        size = labels.shape[-1] // 2 ** self.levels
        x = self.head(nn.functional.interpolate(labels, size=(size, size), mode="nearest"))
        for n, block in enumerate(self.blocks):
            x = block(x, labels)
            if n < self.levels:
                x = nn.functional.interpolate(x, scale_factor=2, mode="nearest")
        return torch.tanh(self.tail(nn.functional.leaky_relu(x, 0.2)))


class StarGenerator(nn.Module):
    """StarGAN generator: image + target-domain one-hot maps -> translated image.

    MI-GAN variant (``attention=True``, ``key_domain``): a second head predicts an attention
    mask a in [0, 1] and the output is a * generated + (1 - a) * input, so only relevant regions
    change; a key-migration branch (residual blocks used only when the target is the key
    domain) adds capacity for translating into the under-represented key disease class.
    """

    def __init__(self, domains: int, features: int = 32, blocks: int = 4, attention: bool = False,
                 key_domain: int | None = None):
        super().__init__()
        self.domains, self.attention, self.key_domain = domains, attention, key_domain
        self.down = nn.Sequential(
            nn.Conv2d(1 + domains, features, 7, padding=3), _norm(features), nn.ReLU(True),
            nn.Conv2d(features, features * 2, 4, stride=2, padding=1), _norm(features * 2), nn.ReLU(True),
            nn.Conv2d(features * 2, features * 4, 4, stride=2, padding=1), _norm(features * 4), nn.ReLU(True))
        self.shared = nn.Sequential(*[ResidualBlock(features * 4) for _ in range(blocks)])
        self.key_branch = nn.Sequential(*[ResidualBlock(features * 4) for _ in range(2)]) if key_domain is not None else None
        self.up = nn.Sequential(
            nn.ConvTranspose2d(features * 4, features * 2, 4, stride=2, padding=1), _norm(features * 2), nn.ReLU(True),
            nn.ConvTranspose2d(features * 2, features, 4, stride=2, padding=1), _norm(features), nn.ReLU(True))
        self.image_head = nn.Sequential(nn.Conv2d(features, 1, 7, padding=3), nn.Tanh())
        self.attention_head = nn.Sequential(nn.Conv2d(features, 1, 7, padding=3), nn.Sigmoid()) if attention else None

    def forward(self, x, target, return_attention: bool = False):
        """``x``: (n, 1, h, w); ``target``: (n,) domain indices."""
        onehot = nn.functional.one_hot(target, self.domains).float()[:, :, None, None].expand(-1, -1, *x.shape[-2:])
        h = self.shared(self.down(torch.cat([x, onehot], dim=1)))
        if self.key_branch is not None:
            is_key = (target == self.key_domain).float()[:, None, None, None]
            h = h + is_key * self.key_branch(h)
        h = self.up(h)
        generated = self.image_head(h)
        if self.attention_head is None:
            return (generated, None) if return_attention else generated
        attention = self.attention_head(h)
        out = attention * generated + (1 - attention) * x
        return (out, attention) if return_attention else out


class StarDiscriminator(nn.Module):
    """PatchGAN trunk with two heads: real/fake per patch, and domain logits for the image."""

    def __init__(self, domains: int, image_size: int, features: int = 32, layers: int = 4):
        super().__init__()
        modules, channels = [], 1
        for k in range(layers):
            modules += [nn.Conv2d(channels, features * 2 ** k, 4, stride=2, padding=1), nn.LeakyReLU(0.01)]
            channels = features * 2 ** k
        self.trunk = nn.Sequential(*modules)
        self.source = nn.Conv2d(channels, 1, 3, padding=1)
        self.classes = nn.Conv2d(channels, domains, image_size // 2 ** layers)

    def forward(self, x):
        h = self.trunk(x)
        return self.source(h), self.classes(h).flatten(1)


class MaskGenerator(nn.Module):
    """Mask GAN generator: latent vector -> mask (2-D or 3-D) in [-1, 1].  Upsampling is
    nearest-neighbour + convolution, not transposed convolution, which leaves checkerboard
    artefacts that fragment thin masks."""

    def __init__(self, latent: int = 64, size: int = 32, spatial_dims: int = 2, features: int = 64):
        super().__init__()
        self.latent, self.spatial_dims = latent, spatial_dims
        self.start = size // 8
        conv = _conv(spatial_dims)
        batch = nn.BatchNorm2d if spatial_dims == 2 else nn.BatchNorm3d
        self.project = nn.Linear(latent, features * 4 * self.start ** spatial_dims)
        self.features = features

        def up(cin, cout):
            return [nn.Upsample(scale_factor=2, mode="nearest"), conv(cin, cout, 3, padding=1), batch(cout), nn.ReLU(True)]

        self.body = nn.Sequential(batch(features * 4), nn.ReLU(True), *up(features * 4, features * 2),
                                  *up(features * 2, features), *up(features, features), conv(features, 1, 3, padding=1))

    def forward(self, z):
        h = self.project(z).view(len(z), self.features * 4, *([self.start] * self.spatial_dims))
        return torch.tanh(self.body(h))


class MaskCritic(nn.Module):
    """WGAN critic for masks (no batch norm: the gradient penalty needs per-sample gradients)."""

    def __init__(self, size: int = 32, spatial_dims: int = 2, features: int = 64):
        super().__init__()
        conv = _conv(spatial_dims)
        self.body = nn.Sequential(
            conv(1, features, 4, 2, 1), nn.LeakyReLU(0.2),
            conv(features, features * 2, 4, 2, 1), nn.LeakyReLU(0.2),
            conv(features * 2, features * 4, 4, 2, 1), nn.LeakyReLU(0.2))
        self.head = nn.Linear(features * 4 * (size // 8) ** spatial_dims, 1)

    def forward(self, x):
        return self.head(self.body(x).flatten(1))


class MultiScaleDiscriminator(nn.Module):
    """pix2pixHD's discriminator: the same 70x70 PatchGAN (MONAI) at 1, 1/2 and 1/4 of the
    image size (average-pooled input), so coarse scales judge layout and the finest judges
    detail.  Returns (logits per scale, every layer's features per scale), as MONAI's
    ``MultiScalePatchDiscriminator`` does (which deepens instead of downsampling)."""

    def __init__(self, in_channels: int, features: int = 64, scales: int = 3):
        super().__init__()
        self.scales = nn.ModuleList(patch_discriminator(in_channels, features) for _ in range(scales))

    def forward(self, x):
        outputs, features = [], []
        for n, discriminator in enumerate(self.scales):
            if n:
                x = nn.functional.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
            layers = discriminator(x)
            outputs.append(layers[-1])
            features.append(layers)
        return outputs, features


def patch_discriminator(in_channels: int, features: int = 64, layers: int = 3):
    """70x70 PatchGAN (pix2pix, CycleGAN) from MONAI; returns logits per patch."""
    from monai.networks.nets import PatchDiscriminator

    return PatchDiscriminator(spatial_dims=2, channels=features, in_channels=in_channels, num_layers_d=layers,
                              norm="INSTANCE")
