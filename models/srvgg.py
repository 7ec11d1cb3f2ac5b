"""SRVGGNetCompact (Real-ESRGAN): the network of realesr-general-x4v3, its -wdn twin and realesr-animevideov3.

A plain stack of 3x3 convs on the low-resolution image, each followed by a per-channel PReLU, then one conv to
out_ch * scale^2 channels and a pixel shuffle; the nearest-upsampled input is added, so the convs learn a residual.
No conv runs at the high resolution, which is what makes it fast. Parameter names are Real-ESRGAN's (`body.0` conv,
`body.1` PReLU, ...), our canonical keys for it; the config lives in `models/architectures.py`.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from esrgan.models.architectures import SRVGGConfig, srvgg_shapes


class SRVGGNetCompact(nn.Module):
    """body: conv, PReLU, num_conv x (conv, PReLU), conv -> pixel shuffle -> + nearest-upsampled input."""

    def __init__(self, config: SRVGGConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or SRVGGConfig()
        nf = config.num_feat
        layers: list[nn.Module] = [nn.Conv2d(config.in_ch, nf, 3, 1, 1), nn.PReLU(num_parameters=nf)]
        for _ in range(config.num_conv):
            layers += [nn.Conv2d(nf, nf, 3, 1, 1), nn.PReLU(num_parameters=nf)]
        layers.append(nn.Conv2d(nf, config.out_ch * config.scale**2, 3, 1, 1))
        self.body = nn.ModuleList(layers)
        self.upsampler = nn.PixelShuffle(config.scale)

    @property
    def scale(self) -> int:
        return self.config.scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for layer in self.body:
            out = layer(out)
        return self.upsampler(out) + F.interpolate(x, scale_factor=self.config.scale, mode="nearest")


def random_state_dict(config: SRVGGConfig, seed: int = 0) -> dict[str, torch.Tensor]:
    """Seeded random weights in the real layout for tests and benchmarks, without touching the global RNG.

    Every tensor is random, so a swapped or dropped key shows: PReLU slopes uniform in [0, 0.5], conv weights normal
    with He's variance for that slope range (std 1.35 / sqrt(fan-in)), so the residual neither dies out nor blows up
    over forty layers, and small normal biases.
    """
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for key, shape in srvgg_shapes(config).items():
        if len(shape) == 4:
            out[key] = torch.randn(shape, generator=gen) * (1.35 / math.sqrt(shape[1] * shape[2] * shape[3]))
        elif key.endswith(".bias"):
            out[key] = torch.randn(shape, generator=gen) * 0.01
        else:
            out[key] = torch.rand(shape, generator=gen) * 0.5
    return out
