"""The ESRGAN discriminator: VGG-style, for 128x128 patches, returning a raw logit (the RaGAN loss needs logits)."""

import torch
from torch import nn


class VGGDiscriminator(nn.Module):
    """Ten convs (64 -> 512 channels, stride 2 every second conv), BN after all but the first, then 8192 -> 100 -> 1."""

    input_size = 128

    def __init__(self, in_ch: int = 3, nf: int = 64) -> None:
        super().__init__()
        widths = [nf, nf * 2, nf * 4, nf * 8, nf * 8]
        self.conv0_0 = nn.Conv2d(in_ch, nf, 3, 1, 1, bias=True)
        self.conv0_1 = nn.Conv2d(nf, nf, 4, 2, 1, bias=False)
        self.bn0_1 = nn.BatchNorm2d(nf, affine=True)
        prev = nf
        for i, width in enumerate(widths[1:], start=1):
            setattr(self, f"conv{i}_0", nn.Conv2d(prev, width, 3, 1, 1, bias=False))
            setattr(self, f"bn{i}_0", nn.BatchNorm2d(width, affine=True))
            setattr(self, f"conv{i}_1", nn.Conv2d(width, width, 4, 2, 1, bias=False))
            setattr(self, f"bn{i}_1", nn.BatchNorm2d(width, affine=True))
            prev = width
        self.linear1 = nn.Linear(nf * 8 * 4 * 4, 100)
        self.linear2 = nn.Linear(100, 1)
        self.lrelu = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (self.input_size, self.input_size):
            raise ValueError(
                f"VGGDiscriminator takes {self.input_size}x{self.input_size} patches, "
                f"got {x.shape[-2]}x{x.shape[-1]}: crop HR patches to {self.input_size} px"
            )
        feat = self.lrelu(self.conv0_0(x))
        feat = self.lrelu(self.bn0_1(self.conv0_1(feat)))
        for i in range(1, 5):
            feat = self.lrelu(getattr(self, f"bn{i}_0")(getattr(self, f"conv{i}_0")(feat)))
            feat = self.lrelu(getattr(self, f"bn{i}_1")(getattr(self, f"conv{i}_1")(feat)))
        feat = self.lrelu(self.linear1(feat.flatten(1)))
        return self.linear2(feat)
