"""A CPU-sized multi-label network (3-D or 2-D) that keeps where it looked: MONAI residual units to a
feature map, a 1x1(x1) convolution to one score map per finding, and the maximum over space as
each finding's logit (multiple-instance pooling: a scan shows a finding when some place does).

Grad-CAM (``monai.visualize``) on ``features`` of this network is exactly the finding's score
map (the gradient of the maximum reaches one place; its weights are the head's), so its
evidence is as sharp as the feature map.  Imported only where torch is available.
"""

from __future__ import annotations

import torch
from monai.networks.blocks import ResidualUnit


class FindingMapNet(torch.nn.Module):
    """(n, 1, *spatial) -> (n, findings) logits; ``score_maps`` gives (n, findings, *spatial'),
    ``spatial`` [k, j, i] (``spatial_dims`` 3) or [y, x] (2)."""

    def __init__(self, findings: int, channels: tuple[int, ...], strides: tuple[int, ...], spatial_dims: int = 3):
        super().__init__()
        if len(channels) != len(strides):
            raise ValueError(f"channels {channels} and strides {strides} must have the same length")
        units, previous = [], 1
        for width, stride in zip(channels, strides):
            units.append(ResidualUnit(spatial_dims=spatial_dims, in_channels=previous, out_channels=width, strides=stride,
                                      subunits=2, norm="instance", act="prelu"))
            previous = width
        self.features = torch.nn.Sequential(*units)
        self.head = (torch.nn.Conv3d if spatial_dims == 3 else torch.nn.Conv2d)(previous, findings, kernel_size=1)

    def score_maps(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.amax(self.score_maps(x).flatten(2), dim=2)
