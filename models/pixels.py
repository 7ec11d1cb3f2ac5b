"""The picture rules around the network, as pure functions: what the network sees of a picture, and how its output
becomes the picture's own channels again.

The network sees RGB. Grey goes through it as three equal channels and comes back as their mean. With transparency,
the colour is premultiplied by alpha on the way in (no dark fringes from the invisible colour of transparent pixels),
alpha goes through the network too as a grey image, and the colour is divided by it at the end. An alpha channel that
is opaque everywhere skips the network and comes back opaque. Beside `models/images.py` (decoding and encoding, no
torch), so that a process which only reads images never imports torch.
"""

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch

from esrgan.models.images import Picture

Run = Callable[[torch.Tensor], torch.Tensor]  # a float32 batch (n, 3, h, w) -> (n, 3, h*s, w*s)
Finish = Callable[[torch.Tensor], torch.Tensor]  # float output rows (1, 3 or 4, h, w) -> the picture's channels


@dataclass(frozen=True)
class NetworkInput:
    """One picture as the network takes it, with what turns the network's output back into a picture."""

    tensor: torch.Tensor  # (1, C, H, W) float32: C = 3 (colour), or 6 (premultiplied colour, then alpha as grey)
    finish: Finish  # applied to each float strip of output rows, before the conversion to `out_dtype`
    out_dtype: torch.dtype  # uint8 or uint16, from the picture's bit depth
    bits: int
    icc: bytes | None

    def through(self, run: Run) -> Run:
        """`run` (the network on RGB tiles) fitted to this input's channels."""
        return run if self.tensor.shape[1] == 3 else partial(_colour_and_alpha, run)

    def to_picture(self, out: torch.Tensor) -> Picture:
        """The finished output (1, C', H, W) in `out_dtype` as a picture with the input's bit depth and profile."""
        return Picture(pixels=out[0].permute(1, 2, 0).numpy(), bits=self.bits, icc=self.icc)


def to_batch(pixels: np.ndarray) -> torch.Tensor:
    """H x W x C float pixels -> a (1, C, H, W) float32 tensor, sharing memory where the layout allows."""
    return torch.from_numpy(np.ascontiguousarray(pixels, dtype=np.float32)).permute(2, 0, 1)[None]


def network_input(picture: Picture) -> NetworkInput:
    """The grey and premultiplied-alpha rules on the way in, and their inverse as the `finish` on the way out."""
    px = picture.as_float()
    grey = px.shape[2] in (1, 2)
    colour = np.repeat(px[..., :1], 3, axis=2) if grey else px[..., :3]
    alpha = px[..., -1:] if picture.has_alpha else None
    opaque = alpha is not None and bool((alpha >= 1.0).all())
    if alpha is not None and not opaque:
        net_in = np.concatenate([colour * alpha, np.repeat(alpha, 3, axis=2)], axis=2)
    else:
        net_in = colour
    finish = partial(_finish, grey=grey, has_alpha=alpha is not None, opaque=opaque)
    out_dtype = torch.uint16 if picture.bits == 16 else torch.uint8
    return NetworkInput(to_batch(net_in), finish, out_dtype, picture.bits, picture.icc)


def _finish(rows: torch.Tensor, grey: bool, has_alpha: bool, opaque: bool) -> torch.Tensor:
    """Float rows (1, 3 or 4, h, w) -> the output's channels, still float: un-premultiplied, grey again."""
    rgb = rows[:, :3]
    if rows.shape[1] == 4:
        a = rows[:, 3:].clamp(0, 1)
        rgb = torch.where(a > 0, torch.minimum(rgb.clamp(min=0), a) / a.clamp(min=1e-12), 0.0)
    elif opaque:
        a = torch.ones_like(rows[:, :1])
    out = rgb.mean(dim=1, keepdim=True) if grey else rgb
    return torch.cat([out, a], dim=1) if has_alpha else out


def _colour_and_alpha(run: Run, tiles: torch.Tensor) -> torch.Tensor:
    """(n, 6, h, w): premultiplied colour and alpha-as-grey run as one batch of 2n; -> (n, 4, H, W)."""
    n = tiles.shape[0]
    out = run(torch.cat([tiles[:, :3], tiles[:, 3:]]))
    return torch.cat([out[:n], out[n:].mean(dim=1, keepdim=True)], dim=1)
