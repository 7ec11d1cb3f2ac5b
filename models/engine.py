"""The inference engine: one built network (or ONNX session) per PSNR/GAN pair, blended per job, run tile by tile.

The command line, the service's workers and the evaluation all go through `Engine`. It owns the device, precision
and memory layout choices; the tiling itself is `models.tiling`, the pixels `models.images`.

Alpha: the engine keeps the two state dicts beside one model and blends them into it in place (`set_alpha`), so a
worker serving many alphas holds one network, and a repeated alpha costs nothing.
"""

import ctypes
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from esrgan.models.checkpoints import StateDict, build_generator, read_state_dict
from esrgan.models.images import Picture
from esrgan.models.interpolate import check_alpha, check_compatible, interpolate_into
from esrgan.models.tiling import Cancelled, tiled_forward

__all__ = ["DEVICE_DEFAULTS", "Cancelled", "Engine", "EngineSettings"]

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class TileDefaults:
    tile: int  # largest window side, in input pixels
    overlap: int  # input pixels shared by neighbouring windows
    batch: int  # windows per forward call


# CPU: the largest window whose activations stay near 1 GB for the paper-size network (its 4x upsampling layers hold
# 64 x 1024 x 1024 floats per tensor at 256 px), since larger windows recompute fewer shared pixels; batching does not
# speed up convolutions this large on a CPU. Measured (benchmarks/RESULTS.md, "Inference engine"): on a 256 px input
# 12.9 s at tile 256 against 19.7 s at tile 128 with the same overlap, and as fast as one whole-image forward. CUDA:
# not measured (no GPU was lent); 384 px in batches of 4 keeps the paper-size network within a few GB in fp16.
DEVICE_DEFAULTS = {
    "cpu": TileDefaults(tile=256, overlap=32, batch=1),
    "cuda": TileDefaults(tile=384, overlap=32, batch=4),
}
PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass
class EngineSettings:
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    backend: str = "torch"  # torch (eager, inference_mode) | onnx (ONNX Runtime)
    tile: int | None = None  # None: DEVICE_DEFAULTS for the device
    overlap: int | None = None
    batch: int | None = None
    precision: str = "auto"  # auto (fp32 on CPU, fp16 on CUDA) | fp32 | fp16 | bf16

    def __post_init__(self) -> None:
        if self.backend not in ("torch", "onnx"):
            raise ValueError(f"backend must be 'torch' or 'onnx', not {self.backend!r}")
        if self.precision not in ("auto", *PRECISIONS):
            raise ValueError(f"precision must be auto, fp32, fp16 or bf16, not {self.precision!r}")
        if not (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")):
            raise ValueError(f"device must be auto, cpu, cuda or cuda:N, not {self.device!r}")
        for name in ("tile", "overlap", "batch"):
            value = getattr(self, name)
            if value is not None and (value < 0 or (value == 0 and name != "overlap")):
                raise ValueError(f"{name} must be positive, got {value}")


def resolve_device(device: str, backend: str = "torch") -> str:
    """`auto` -> cuda when the backend can use a GPU here, else cpu; an explicit cuda that PyTorch cannot use fails.

    ONNX Runtime's CUDA provider does not need a CUDA build of PyTorch, and falls back to the CPU with a warning.
    """
    if backend == "onnx":
        from esrgan.models.onnx_export import providers_for

        if device == "auto":
            return "cuda" if providers_for("cuda")[0] != "CPUExecutionProvider" else "cpu"
        return device
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was asked for but PyTorch sees no CUDA GPU")
    return device


def tune_malloc() -> None:
    """Keep glibc from returning large buffers to the OS after every convolution.

    The network allocates and frees tensors of tens of MB per layer; by default glibc serves those with mmap and
    unmaps them on free, so each layer pays page faults on fresh memory (half the time of an NCHW conv here, per
    FACTS.md). Raising the mmap and trim thresholds lets freed buffers be reused.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return  # not glibc
    m_trim_threshold, m_mmap_threshold = -1, -3
    libc.mallopt(m_mmap_threshold, 1 << 30)
    libc.mallopt(m_trim_threshold, 1 << 30)


class Engine:
    """One network (or ONNX session) ready to upscale, on one device, with the blend of its pair set per job."""

    def __init__(self, psnr: StateDict, gan: StateDict | None, settings: EngineSettings | None = None) -> None:
        self.settings = settings = settings or EngineSettings()
        self.device = resolve_device(settings.device, settings.backend)
        kind = "cuda" if self.device.startswith("cuda") else "cpu"
        defaults = DEVICE_DEFAULTS[kind]
        self.tile = settings.tile or defaults.tile
        self.overlap = defaults.overlap if settings.overlap is None else settings.overlap
        self.batch = settings.batch or defaults.batch
        precision = settings.precision if settings.precision != "auto" else ("fp16" if kind == "cuda" else "fp32")
        if kind == "cpu" and precision != "fp32":
            raise ValueError("half precision is for CUDA; the CPU runs fp32")
        self.half = PRECISIONS[precision] if precision != "fp32" else None
        if gan is not None:
            check_compatible(psnr, gan)
        model = build_generator(psnr).eval()
        self.scale = model.scale
        self.align = model.unshuffle  # windows must be multiples of the pixel-unshuffle factor
        self.alpha: float | None = None
        self.onnx = None
        if kind == "cpu":
            tune_malloc()
        if settings.backend == "onnx":
            if self.half is not None:
                raise ValueError("the ONNX backend runs fp32")
            import io

            from esrgan.models.onnx_export import OnnxRunner, export_onnx

            buf = io.BytesIO()
            export_onnx(psnr, gan, buf)
            self.onnx = OnnxRunner(buf.getvalue(), self.device)
            self._psnr = self._gan = None
        else:
            self.model = model.to(self.device, memory_format=torch.channels_last)
            # the two ends of the blend live where the model lives, so set_alpha is one lerp per tensor
            self._psnr = {k: v.to(self.device, torch.float32) for k, v in psnr.items()}
            self._gan = None if gan is None else {k: v.to(self.device, torch.float32) for k, v in gan.items()}
        self.is_pair = gan is not None

    @classmethod
    def from_pair(cls, psnr_path: str | Path, gan_path: str | Path, settings: EngineSettings | None = None) -> "Engine":
        """An engine for a PSNR/GAN pair; call `set_alpha` before upscaling (alpha 0 = PSNR model)."""
        return cls(read_state_dict(psnr_path), read_state_dict(gan_path), settings)

    @classmethod
    def from_weights(cls, path: str | Path, settings: EngineSettings | None = None) -> "Engine":
        """An engine for one weights file, used as it is (no alpha)."""
        return cls(read_state_dict(path), None, settings)

    def set_alpha(self, alpha: float) -> None:
        """Blend the pair's weights into the network for `alpha` in place; nothing happens when alpha repeats."""
        alpha = check_alpha(alpha)
        if not self.is_pair:
            raise ValueError("this engine runs a single weights file: alpha needs a PSNR/GAN pair")
        if alpha == self.alpha:
            return
        if self.onnx is not None:
            self.onnx.set_alpha(alpha)
        else:
            interpolate_into(self.model, self._psnr, self._gan, alpha)
        self.alpha = alpha

    def _ready(self) -> None:
        if self.is_pair and self.alpha is None:
            raise ValueError("set_alpha() first: a PSNR/GAN pair has no weights until alpha is chosen")

    @torch.inference_mode()
    def forward_tiles(self, tiles: torch.Tensor) -> torch.Tensor:
        """The network on one batch of tiles (n, 3, h, w) float32 on the host -> upscaled float32 on the host.

        In half precision, a batch whose output holds NaN or Inf (fp16 overflow) is run again in fp32.
        """
        if self.onnx is not None:
            return self.onnx(tiles)
        x = tiles.to(self.device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        if self.half is not None:
            with torch.autocast("cuda", dtype=self.half):
                y = self.model(x)
            if torch.isfinite(y).all():
                return y.float().cpu()
            log.warning("non-finite values in a %s tile: running it again in fp32", self.half)
        return self.model(x).float().cpu()

    def _tiled(
        self,
        x: torch.Tensor,
        fn: Callable[[torch.Tensor], torch.Tensor],
        out_dtype: torch.dtype,
        finish: Callable[[torch.Tensor], torch.Tensor] | None,
        progress: Progress | None,
        cancel: Callable[[], bool] | None,
        tile: int | None,
    ) -> torch.Tensor:
        tile = tile or self.tile
        overlap = min(self.overlap, (tile - 1) // 2)
        pad_h, pad_w = (-x.shape[2]) % self.align, (-x.shape[3]) % self.align
        if pad_h or pad_w:  # reflect, so the border looks like image rather than a black frame to the network
            x = torch.nn.functional.pad(x, (0, pad_w, 0, pad_h), mode="reflect")
        out = tiled_forward(
            x, fn, self.scale, tile, overlap, self.batch, progress, cancel,
            out_dtype=out_dtype, finish=finish, align=self.align,
        )  # fmt: skip
        h, w = (x.shape[2] - pad_h) * self.scale, (x.shape[3] - pad_w) * self.scale
        return out[:, :, :h, :w]

    def upscale_array(self, x: np.ndarray, tile: int | None = None) -> np.ndarray:
        """H x W x 3 float32 in [0, 1] -> the network's output, clamped to [0, 1], float32 (for evaluation)."""
        self._ready()
        if x.ndim != 3 or x.shape[2] != 3:
            raise ValueError(f"upscale_array takes an H x W x 3 array, got shape {x.shape}")
        t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).permute(2, 0, 1)[None]
        out = self._tiled(t, self.forward_tiles, torch.float32, None, None, None, tile)
        return out[0].clamp_(0, 1).permute(1, 2, 0).numpy()

    def upscale(
        self,
        picture: Picture,
        progress: Progress | None = None,
        cancel: Callable[[], bool] | None = None,
        tile: int | None = None,
    ) -> Picture:
        """Upscale a decoded picture; the result keeps its mode, bit depth and ICC profile.

        Grey goes through the network as three equal channels and comes back as their mean. With transparency, the
        colour is premultiplied by alpha on the way in (no dark fringes from the invisible colour of transparent
        pixels), alpha goes through the network too as a grey image, and the colour is divided by it at the end.

        Raises:
            Cancelled: `cancel()` returned true between two batches of tiles.
        """
        self._ready()
        started = time.perf_counter()
        px = picture.as_float()
        grey = px.shape[2] in (1, 2)
        colour = np.repeat(px[..., :1], 3, axis=2) if grey else px[..., :3]
        alpha = px[..., -1:] if picture.has_alpha else None
        opaque = alpha is not None and bool((alpha >= 1.0).all())
        if alpha is not None and not opaque:
            net_in = np.concatenate([colour * alpha, np.repeat(alpha, 3, axis=2)], axis=2)
            fn = self._colour_and_alpha
        else:
            net_in, fn = colour, self.forward_tiles
        x = torch.from_numpy(np.ascontiguousarray(net_in, dtype=np.float32)).permute(2, 0, 1)[None]
        out_dtype = torch.uint16 if picture.bits == 16 else torch.uint8

        def finish(rows: torch.Tensor) -> torch.Tensor:
            """Float rows (1, 3 or 4, h, w) -> the output's channels, still float."""
            rgb = rows[:, :3]
            if rows.shape[1] == 4:
                a = rows[:, 3:].clamp(0, 1)
                rgb = torch.where(a > 0, torch.minimum(rgb.clamp(min=0), a) / a.clamp(min=1e-12), 0.0)
            elif opaque:
                a = torch.ones_like(rows[:, :1])
            out = rgb.mean(dim=1, keepdim=True) if grey else rgb
            return torch.cat([out, a], dim=1) if alpha is not None else out

        out = self._tiled(x, fn, out_dtype, finish, progress, cancel, tile)
        pixels = out[0].permute(1, 2, 0).numpy()
        log.debug("upscaled %dx%d in %.2fs", picture.width, picture.height, time.perf_counter() - started)
        return Picture(pixels=pixels, bits=picture.bits, icc=picture.icc)

    def _colour_and_alpha(self, tiles: torch.Tensor) -> torch.Tensor:
        """(n, 6, h, w): premultiplied colour and alpha-as-grey run as one batch of 2n; -> (n, 4, H, W)."""
        n = tiles.shape[0]
        out = self.forward_tiles(torch.cat([tiles[:, :3], tiles[:, 3:]]))
        return torch.cat([out[:n], out[n:].mean(dim=1, keepdim=True)], dim=1)
