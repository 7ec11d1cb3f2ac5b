"""Tiled inference: map a (1, C, H, W) image through a network a few tiles at a time, with no visible seam.

Neighbouring windows share `overlap` input pixels. Inside each shared band, a linear ramp of half its width hands
one window over to the next (the weights of the two sum to exactly 1), and the outer quarters on either side are
context only: every output pixel comes from a window in which it sits at least a quarter-overlap away from a cut.
Windows at the image border see the border as the whole-image forward does, so edges match it too.

The image stays on the host; `fn` moves one batch of tiles wherever it likes. The output is assembled row by row:
one float strip per row of windows, turned into the final dtype as soon as no later window touches it, so memory
holds the final image plus about two float strips, never the whole image in float.
"""

import logging
import math
from collections.abc import Callable

import torch

log = logging.getLogger(__name__)

MIN_TILE = 16  # an out-of-memory error below this tile size is final: the device cannot run the network at all


class Cancelled(Exception):
    """The caller's `cancel()` returned true; raised between batches of tiles, never half-way through one."""


def window_starts(n: int, size: int, overlap: int, align: int = 1) -> list[int]:
    """Starts of windows of `size` covering 0..n, spread evenly so neighbours share at least about `overlap`."""
    if n <= size:
        return [0]
    count = math.ceil((n - overlap) / (size - overlap))
    step = (n - size) / (count - 1)
    return [min(round(i * step / align) * align, n - size) for i in range(count)]


def window_size(n: int, tile: int, overlap: int, align: int = 1) -> int:
    """The smallest window (<= tile) that covers n with as few windows as `tile` needs: less overlap to compute."""
    if n <= tile:
        return n
    count = math.ceil((n - overlap) / (tile - overlap))
    size = math.ceil((n + (count - 1) * overlap) / count)
    return min(tile, math.ceil(size / align) * align)


def blend_weights(starts: list[int], size: int, overlap: int, scale: int) -> list[torch.Tensor]:
    """Per-window output weights along one axis: 1 inside, a linear ramp centred in each shared band, 0 beyond it.

    For every output position the weights of all windows sum to 1, so the blend needs no normalisation pass.
    """
    weights = [torch.ones(size * scale) for _ in starts]
    for i in range(1, len(starts)):
        shared = starts[i - 1] + size - starts[i]
        if shared <= 0 or overlap == 0:
            continue  # windows only touch: a hard cut
        ramp = min(max(1, overlap // 2), shared)
        lead = (shared - ramp) // 2  # context on each side of the ramp that no output pixel takes from
        up = (torch.arange(ramp * scale) + 0.5) / (ramp * scale)
        a = lead * scale  # ramp start inside window i
        b = (starts[i] - starts[i - 1]) * scale + a  # the same output rows inside window i-1
        weights[i][:a] = 0
        weights[i][a : a + ramp * scale] *= up
        weights[i - 1][b : b + ramp * scale] *= 1 - up
        weights[i - 1][b + ramp * scale :] = 0
    return weights


def _to_dtype(rows: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Float rows to the output dtype; integer outputs are clamped to [0, 1] and rounded, never wrapped."""
    if dtype.is_floating_point:
        return rows.to(dtype)
    top = {torch.uint8: 255, torch.uint16: 65535}[dtype]
    return torch.nan_to_num(rows, nan=0.0).clamp_(0, 1).mul_(top).round_().to(dtype)


class _RowAssembler:
    """Sums weighted tiles into one float strip per row of windows and emits output rows once they are final."""

    def __init__(
        self,
        ys: list[int],
        xs: list[int],
        size: tuple[int, int],
        overlap: int,
        scale: int,
        out_hw: tuple[int, int],
        out_dtype: torch.dtype,
        finish: Callable[[torch.Tensor], torch.Tensor] | None,
    ) -> None:
        self.ys, self.xs, self.scale, self.size = ys, xs, scale, size
        self.wy = blend_weights(ys, size[0], overlap, scale)
        self.wx = blend_weights(xs, size[1], overlap, scale)
        self.out_hw, self.out_dtype, self.finish = out_hw, out_dtype, finish
        self.strips: dict[int, torch.Tensor] = {}
        self.filled: dict[int, int] = {}
        self.next_row = 0
        self.carry: torch.Tensor | None = None
        self.done = 0  # output rows already final
        self.out: torch.Tensor | None = None

    def add(self, row: int, col: int, tile: torch.Tensor) -> None:
        s, (th, tw) = self.scale, self.size
        if row not in self.strips:
            self.strips[row] = torch.zeros(tile.shape[0], th * s, self.out_hw[1], dtype=torch.float32)
            self.filled[row] = 0
        x0 = self.xs[col] * s
        self.strips[row][:, :, x0 : x0 + tw * s].addcmul_(tile, self.wx[col])
        self.filled[row] += 1
        while self.filled.get(self.next_row) == len(self.xs):
            self._flush(self.next_row)
            self.next_row += 1

    def _flush(self, row: int) -> None:
        s = self.scale
        strip = self.strips.pop(row).mul_(self.wy[row][:, None])
        del self.filled[row]
        y0 = self.ys[row] * s
        if self.carry is not None:
            strip[:, self.done - y0 : self.done - y0 + self.carry.shape[1]] += self.carry
        if row + 1 < len(self.ys):
            end = self.ys[row + 1] * s + int(torch.nonzero(self.wy[row + 1])[0])
        else:
            end = self.out_hw[0]
        self._emit(strip[:, self.done - y0 : end - y0])
        self.carry = strip[:, end - y0 :].clone()
        self.done = end

    def _emit(self, rows: torch.Tensor) -> None:
        if self.finish is not None:
            rows = self.finish(rows[None])[0]
        rows = _to_dtype(rows, self.out_dtype)
        if self.out is None:
            self.out = torch.empty((1, rows.shape[0], *self.out_hw), dtype=self.out_dtype)
        self.out[0, :, self.done : self.done + rows.shape[1]] = rows


def _is_oom(exc: BaseException) -> bool:
    text = str(exc).lower()
    return isinstance(exc, torch.OutOfMemoryError | MemoryError) or (
        isinstance(exc, RuntimeError) and ("out of memory" in text or "not enough memory" in text)
    )


def _run_safely(tiles: torch.Tensor, fn: Callable[[torch.Tensor], torch.Tensor], scale: int, overlap: int, align: int):
    """`fn(tiles)`; on out-of-memory, one tile at a time, then each tile itself tiled at half the size.

    A tile is never skipped: below MIN_TILE the error is raised.
    """
    try:
        return fn(tiles)
    except Exception as exc:
        if not _is_oom(exc):
            raise
        if tiles.shape[0] == 1 and max(tiles.shape[-2:]) // 2 < MIN_TILE:
            raise
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    if tiles.shape[0] > 1:
        log.warning("out of memory on a batch of %d tiles: running them one at a time", tiles.shape[0])
        return torch.cat([_run_safely(t[None], fn, scale, overlap, align) for t in tiles])
    smaller = max(tiles.shape[-2:]) // 2 // align * align
    log.warning("out of memory on a %dx%d tile: splitting it into %d px tiles", *tiles.shape[-2:], smaller)
    return tiled_forward(tiles, fn, scale, smaller, min(overlap, smaller // 2 - align), align=align)


def tiled_forward(
    x: torch.Tensor,
    fn: Callable[[torch.Tensor], torch.Tensor],
    scale: int,
    tile: int,
    overlap: int,
    batch: int = 1,
    progress: Callable[[int, int], None] | None = None,
    cancel: Callable[[], bool] | None = None,
    *,
    out_dtype: torch.dtype = torch.float32,
    finish: Callable[[torch.Tensor], torch.Tensor] | None = None,
    align: int = 1,
) -> torch.Tensor:
    """`fn` applied to `x` (1, C, H, W) tile by tile, blended into one (1, C', H*scale, W*scale) tensor on the host.

    Args:
        fn: maps a float32 batch (n, C, h, w) to (n, C', h*scale, w*scale) float32 on the CPU.
        tile, overlap: window size and how many input pixels neighbours share (overlap < tile / 2).
        batch: windows per call of `fn`; all windows have the same size, so they stack.
        progress: called with (tiles done, total) after every batch.
        cancel: polled before every batch; when it returns true, `Cancelled` is raised.
        out_dtype: float32 returns the raw blend; uint8/uint16 are clamped to [0, 1], scaled and rounded.
        finish: applied to each float strip of output rows before the dtype conversion (e.g. un-premultiplying).
        align: window starts and sizes are multiples of this (networks that pixel-unshuffle their input).
    """
    if x.dim() != 4 or x.shape[0] != 1:
        raise ValueError(f"tiled_forward takes one image shaped (1, C, H, W), got {tuple(x.shape)}")
    if tile < 2 * align or batch < 1 or overlap < 0 or 2 * overlap >= tile:
        raise ValueError(f"need tile >= {2 * align}, batch >= 1, 0 <= overlap < tile/2; got {tile}, {batch}, {overlap}")
    _, _, h, w = x.shape
    tile = tile // align * align
    size = (window_size(h, tile, overlap, align), window_size(w, tile, overlap, align))
    ys, xs = window_starts(h, size[0], overlap, align), window_starts(w, size[1], overlap, align)
    asm = _RowAssembler(ys, xs, size, overlap, scale, (h * scale, w * scale), out_dtype, finish)
    windows = [(r, c) for r in range(len(ys)) for c in range(len(xs))]
    for i in range(0, len(windows), batch):
        if cancel is not None and cancel():
            raise Cancelled(f"cancelled after {i} of {len(windows)} tiles")
        group = windows[i : i + batch]
        tiles = torch.cat([x[:, :, ys[r] : ys[r] + size[0], xs[c] : xs[c] + size[1]] for r, c in group])
        out = _run_safely(tiles, fn, scale, overlap, align)
        want = (len(group), size[0] * scale, size[1] * scale)
        if (out.shape[0], *out.shape[2:]) != want:
            raise ValueError(f"fn returned {tuple(out.shape)} for {tuple(tiles.shape)} at scale {scale}")
        for (r, c), t in zip(group, out, strict=True):
            asm.add(r, c, t.float())
        if progress is not None:
            progress(i + len(group), len(windows))
    assert asm.out is not None
    return asm.out
