"""The ESRGAN generator: RRDBNet (Wang et al., 2018), exactly as the official code defines it.

Parameter names follow BasicSR/Real-ESRGAN (`conv_first`, `body.N.rdb1.conv1`, `conv_body`, `conv_up1`, ...):
those are our canonical keys, and `models/checkpoints.py` maps every other layout onto them.
"""

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from esrgan.models.architectures import RRDBConfig


def _small_kaiming_(convs: list[nn.Conv2d], scale: float) -> None:
    """Kaiming-normal init scaled down (0.1 in the paper): keeps the deep residual trunk stable early on."""
    for conv in convs:
        nn.init.kaiming_normal_(conv.weight)
        conv.weight.data.mul_(scale)
        nn.init.zeros_(conv.bias)


class ResidualDenseBlock(nn.Module):
    """Five 3x3 convs with dense connections; the output is scaled by 0.2 before the residual add."""

    def __init__(self, nf: int, gc: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(nf, gc, 3, 1, 1)
        self.conv2 = nn.Conv2d(nf + gc, gc, 3, 1, 1)
        self.conv3 = nn.Conv2d(nf + 2 * gc, gc, 3, 1, 1)
        self.conv4 = nn.Conv2d(nf + 3 * gc, gc, 3, 1, 1)
        self.conv5 = nn.Conv2d(nf + 4 * gc, nf, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(0.2, inplace=True)
        _small_kaiming_([self.conv1, self.conv2, self.conv3, self.conv4, self.conv5], 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.lrelu(self.conv1(x))
        x2 = self.lrelu(self.conv2(torch.cat((x, x1), 1)))
        x3 = self.lrelu(self.conv3(torch.cat((x, x1, x2), 1)))
        x4 = self.lrelu(self.conv4(torch.cat((x, x1, x2, x3), 1)))
        x5 = self.conv5(torch.cat((x, x1, x2, x3, x4), 1))
        return x5 * 0.2 + x


class RRDB(nn.Module):
    """Residual-in-Residual Dense Block: three dense blocks, again scaled by 0.2 around the outer skip."""

    def __init__(self, nf: int, gc: int) -> None:
        super().__init__()
        self.rdb1 = ResidualDenseBlock(nf, gc)
        self.rdb2 = ResidualDenseBlock(nf, gc)
        self.rdb3 = ResidualDenseBlock(nf, gc)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rdb3(self.rdb2(self.rdb1(x))) * 0.2 + x


class RRDBNet(nn.Module):
    """conv_first -> nb RRDBs -> conv_body (+ long skip) -> 2x (nearest 2x, conv, lrelu) -> conv_hr -> conv_last.

    No batch norm anywhere and no output activation: the output is unbounded and clamped by whoever makes pixels.
    """

    def __init__(self, config: RRDBConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or RRDBConfig()
        self.unshuffle = unshuffle = config.unshuffle
        nf = config.nf
        self.conv_first = nn.Conv2d(config.in_ch * unshuffle * unshuffle, nf, 3, 1, 1)
        self.body = nn.Sequential(*(RRDB(nf, config.gc) for _ in range(config.nb)))
        self.conv_body = nn.Conv2d(nf, nf, 3, 1, 1)
        self.conv_up1 = nn.Conv2d(nf, nf, 3, 1, 1)
        self.conv_up2 = nn.Conv2d(nf, nf, 3, 1, 1)
        self.conv_hr = nn.Conv2d(nf, nf, 3, 1, 1)
        self.conv_last = nn.Conv2d(nf, config.out_ch, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(0.2, inplace=True)

    @property
    def scale(self) -> int:
        return self.config.scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.unshuffle > 1:
            x = F.pixel_unshuffle(x, self.unshuffle)
        feat = self.conv_first(x)
        feat = feat + self.conv_body(self.body(feat))
        feat = self.lrelu(self.conv_up1(F.interpolate(feat, scale_factor=2, mode="nearest")))
        feat = self.lrelu(self.conv_up2(F.interpolate(feat, scale_factor=2, mode="nearest")))
        return self.conv_last(self.lrelu(self.conv_hr(feat)))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


Init = Literal["normal", "paper", "default"]


def random_state_dict(config: RRDBConfig, seed: int = 0, init: Init = "normal") -> dict[str, torch.Tensor]:
    """Seeded random weights for tests and benchmarks, without touching the global RNG.

    `normal`: every tensor standard normal, biases included, so a swapped or dropped key shows. `paper`: the network's
    own init (Kaiming x 0.1, zero biases: a weak residual trunk). `default`: PyTorch's default conv init, ~4x larger
    than the paper's, so the output depends visibly on the input and on a wide neighbourhood (harsher on tile borders).
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = RRDBNet(config)
        if init == "default":
            for m in net.modules():
                if isinstance(m, nn.Conv2d):
                    m.reset_parameters()
    if init == "normal":
        gen = torch.Generator().manual_seed(seed)
        return {k: torch.randn(v.shape, generator=gen) for k, v in net.state_dict().items()}
    return net.state_dict()
