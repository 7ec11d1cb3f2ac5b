"""The inference engine: one runner (PyTorch or ONNX Runtime) per PSNR/GAN pair, blended per job, run tile by tile.

The command line, the service's workers and the evaluation all go through `Engine`. It resolves the settings once
(device, tile defaults, precision), chooses its runner once, and then only tiles: the tiling itself is
`models.tiling`, the grey and transparency rules `models.pixels`, the network `models.torch_runner` or
`models.onnx_export`.

Alpha: each runner keeps the pair and blends it for `set_alpha` (in place for PyTorch, as a graph input for ONNX), so
a worker serving many alphas holds one network, and a repeated alpha costs nothing.
"""

import ctypes
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from esrgan.models.checkpoints import StateDict, check_state_dict, read_state_dict
from esrgan.models.images import Picture
from esrgan.models.interpolate import check_alpha, check_compatible
from esrgan.models.pixels import network_input, to_batch
from esrgan.models.tiling import Cancelled, tiled_forward
from esrgan.models.torch_runner import TorchRunner

__all__ = ["DEVICE_DEFAULTS", "Cancelled", "Engine", "EngineSettings", "Runner", "cpu_has_native_bf16"]

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class TileDefaults:
    tile: int  # largest window side, in input pixels
    overlap: int  # input pixels shared by neighbouring windows
    batch: int  # windows per forward call


# CPU: the same 256/32 in bf16 (half the activation memory of fp32: 683 against 1078 MB peak on a 384 px input
# with the paper-size network; 384 px windows take 1499 MB, and whether they pay on a quiet machine is for
# benchmarks/engine.py's tile rows to show: on the shared one they ran both 1.73x faster and 1.4x slower).
# fp32: the largest window whose activations stay near 1 GB for the paper-size network (its 4x upsampling layers hold
# 64 x 1024 x 1024 floats per tensor at 256 px), since larger windows recompute fewer shared pixels; batching does not
# speed up convolutions this large on a CPU. Measured (benchmarks/RESULTS.md, "Inference engine"): on a 256 px input
# 12.9 s at tile 256 against 19.7 s at tile 128 with the same overlap, and as fast as one whole-image forward. CUDA:
# not measured (no GPU was lent); 384 px in batches of 4 keeps the paper-size network within a few GB in fp16.
DEVICE_DEFAULTS = {
    "cpu": TileDefaults(tile=256, overlap=32, batch=1),
    "cuda": TileDefaults(tile=384, overlap=32, batch=4),
}
PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
# LR pixels of reflection around the whole image before tiling, cropped off afterwards (Real-ESRGAN's pre_pad), for a
# pair blended with any of its GAN end: the GAN end draws a line along the image border, and the reflection moves it
# outside the crop. Measured on every Set5/Set14 photo (benchmarks/cpu_quality.py --borders; benchmarks/RESULTS.md,
# "CPU precision, runtimes and previews"), PSNR-Y of the outer 8 output pixels against HR: +1.2 to +2.2 dB at alpha
# 0.2 to 1 with 4 px (8 px is no better), but -1.0 dB at alpha 0, where the PSNR network handles its border itself.
PRE_PAD = 4


@dataclass
class EngineSettings:
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    backend: str = "torch"  # torch (eager, inference_mode) | onnx (ONNX Runtime)
    tile: int | None = None  # None: DEVICE_DEFAULTS for the device
    overlap: int | None = None
    batch: int | None = None
    precision: str = "auto"  # auto (fp16 on CUDA, bf16 on a CPU that has it, else fp32) | fp32 | fp16 | bf16
    pre_pad: int | None = None  # reflected LR pixels around the image; None: PRE_PAD for a pair at alpha > 0, else 0

    def __post_init__(self) -> None:
        if self.backend not in ("torch", "onnx"):
            raise ValueError(f"backend must be 'torch' or 'onnx', not {self.backend!r}")
        if self.precision not in ("auto", *PRECISIONS):
            raise ValueError(f"precision must be auto, fp32, fp16 or bf16, not {self.precision!r}")
        if not (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")):
            raise ValueError(f"device must be auto, cpu, cuda or cuda:N, not {self.device!r}")
        for name in ("tile", "overlap", "batch", "pre_pad"):
            value = getattr(self, name)
            if value is not None and (value < 0 or (value == 0 and name in ("tile", "batch"))):
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


def tile_settings(settings: EngineSettings, device: str) -> TileDefaults:
    """The settings' tile, overlap and batch, each falling back to the device's default."""
    defaults = DEVICE_DEFAULTS["cuda" if device.startswith("cuda") else "cpu"]
    return TileDefaults(
        tile=settings.tile or defaults.tile,
        overlap=defaults.overlap if settings.overlap is None else settings.overlap,
        batch=settings.batch or defaults.batch,
    )


BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # /proc/cpuinfo names of the native bf16 dot-product instructions


def cpu_flags() -> str:
    """This CPU's feature flags as /proc/cpuinfo lists them; empty where there is no /proc (not Linux)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""
    return next((line.partition(":")[2] for line in text.splitlines() if line.startswith("flags")), "")


def cpu_has_native_bf16(flags: str | None = None) -> bool:
    """Whether the CPU executes bf16 dot products in hardware (AVX512_BF16 or AMX-BF16): there a bf16 convolution
    runs at about twice the fp32 rate; elsewhere oneDNN emulates bf16, slower than fp32."""
    return any(flag in BF16_FLAGS for flag in (cpu_flags() if flags is None else flags).split())


def resolve_precision(settings: EngineSettings, device: str, native_bf16: bool | None = None) -> str:
    """fp32, fp16 or bf16: what `settings.precision` means for the network on `device`.

    `auto` is fp16 for PyTorch on CUDA and, on the CPU, bf16 where the processor has it natively (`native_bf16`,
    detected when None), else fp32. ONNX Runtime runs the fp32 graph. Only the forward changes precision: weights and
    the alpha blend stay fp32.

    The CPU default is PyTorch eager in bf16, chosen by measurement against ONNX Runtime and OpenVINO on the same
    weights, tiles and alpha (benchmarks/RESULTS.md, "CPU precision, runtimes and previews"; family-26 EPYC, shared
    machine): bf16 ran the paper-size network 1.57x and the embedded pair 1.75x faster than fp32 per tile, and kept
    the embedded pair within 52.9 dB of fp32 on every Set5/Set14 photo at both ends. OpenVINO bf16 was 1.16x faster
    than PyTorch fp32 on the paper-size tile (PyTorch bf16: 1.57x) and 2.00x on the embedded pair's (PyTorch bf16:
    1.75x), but a new alpha costs it a reconversion (5-34 s) or, with alpha as a graph input, 1.05x / 1.67x. On an
    Intel Xeon with AMX (family 6, two quiet runs) PyTorch bf16 ran 3.8-4.1x / 2.6-2.7x fp32 and OpenVINO bf16 with
    alpha as an input 1.35-1.45x / 1.30-1.75x faster than that, after 9 s / 2.3 s of conversion per process and tile
    shape, which alone exceeds a whole `esrgan upscale` of a 256 px photo (5.8-7.6 s). No clear margin across the
    processors and uses, so it is not shipped. ONNX Runtime (fp32 only) was 1.03-1.38x.
    """
    cuda = device.startswith("cuda")
    if settings.precision != "auto":
        precision = settings.precision
    elif settings.backend == "onnx":
        precision = "fp32"
    elif cuda:
        precision = "fp16"
    else:
        precision = "bf16" if (cpu_has_native_bf16() if native_bf16 is None else native_bf16) else "fp32"
    if not cuda and precision == "fp16":
        raise ValueError("fp16 is for CUDA; the CPU runs fp32 or bf16")
    if settings.backend == "onnx" and precision != "fp32":
        raise ValueError("the ONNX backend runs fp32")
    return precision


def tune_malloc() -> None:
    """Keep glibc from returning large buffers to the OS after every convolution.

    The network allocates and frees tensors of tens of MB per layer; by default glibc serves those with mmap and
    unmaps them on free, so each layer pays page faults on fresh memory. Raising the mmap and trim thresholds lets
    freed buffers be reused: one 128x128 paper-size forward took 2.04 s instead of 2.45 s in NCHW and 1.39 s instead
    of 1.70 s in channels_last (benchmarks/RESULTS.md, "Inference engine").
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return  # not glibc
    m_trim_threshold, m_mmap_threshold = -1, -3
    libc.mallopt(m_mmap_threshold, 1 << 30)
    libc.mallopt(m_trim_threshold, 1 << 30)


class Runner(Protocol):
    """The network behind the engine: a float32 batch of tiles on the host -> the upscaled float32 batch on the host."""

    def set_alpha(self, alpha: float) -> None:
        """Blend a pair's weights for `alpha` (0 = PSNR, 1 = GAN)."""
        ...

    def __call__(self, tiles: torch.Tensor) -> torch.Tensor: ...


def make_runner(psnr: StateDict, gan: StateDict | None, backend: str, device: str, half: torch.dtype | None) -> Runner:
    """The runner for `backend`; ONNX Runtime is imported only when asked for."""
    if backend == "onnx":
        from esrgan.models.onnx_export import OnnxRunner

        return OnnxRunner.from_state_dicts(psnr, gan, device)
    return TorchRunner(psnr, gan, device, half)


class Engine:
    """One network on one device, ready to upscale, with the blend of its pair set per job."""

    def __init__(self, psnr: StateDict, gan: StateDict | None, settings: EngineSettings | None = None) -> None:
        self.settings = settings = settings or EngineSettings()
        self.device = resolve_device(settings.device, settings.backend)
        defaults = tile_settings(settings, self.device)
        self.tile, self.overlap, self.batch = defaults.tile, defaults.overlap, defaults.batch
        self.precision = resolve_precision(settings, self.device)
        half = None if self.precision == "fp32" else PRECISIONS[self.precision]
        if gan is not None:
            check_compatible(psnr, gan)
        if not self.device.startswith("cuda"):
            tune_malloc()
        self.runner = make_runner(psnr, gan, settings.backend, self.device, half)  # builds (and checks) the network
        config = check_state_dict(psnr)
        self.scale = config.scale
        self.align = config.unshuffle  # windows must be multiples of the pixel-unshuffle factor
        self.is_pair = gan is not None
        self.alpha: float | None = None

    @classmethod
    def from_pair(cls, psnr_path: str | Path, gan_path: str | Path, settings: EngineSettings | None = None) -> "Engine":
        """An engine for a PSNR/GAN pair; call `set_alpha` before upscaling (alpha 0 = PSNR model)."""
        return cls(read_state_dict(psnr_path), read_state_dict(gan_path), settings)

    @classmethod
    def from_weights(cls, path: str | Path, settings: EngineSettings | None = None) -> "Engine":
        """An engine for one weights file, used as it is (no alpha)."""
        return cls(read_state_dict(path), None, settings)

    def set_alpha(self, alpha: float) -> None:
        """Blend the pair's weights for `alpha`; nothing happens when alpha repeats."""
        alpha = check_alpha(alpha)
        if not self.is_pair:
            raise ValueError("this engine runs a single weights file: alpha needs a PSNR/GAN pair")
        if alpha == self.alpha:
            return
        self.runner.set_alpha(alpha)
        self.alpha = alpha

    def pre_pad(self) -> int:
        """LR pixels reflected around the image for the current blend: the setting, else PRE_PAD at alpha > 0."""
        if self.settings.pre_pad is not None:
            return self.settings.pre_pad
        return PRE_PAD if self.is_pair and self.alpha else 0

    def _ready(self) -> None:
        if self.is_pair and self.alpha is None:
            raise ValueError("set_alpha() first: a PSNR/GAN pair has no weights until alpha is chosen")

    def forward_tiles(self, tiles: torch.Tensor) -> torch.Tensor:
        """The network on one batch of tiles (n, 3, h, w) float32 on the host -> upscaled float32 on the host."""
        return self.runner(tiles)

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
        h, w = x.shape[2:]
        pad = max(0, min(self.pre_pad(), h - self.align, w - self.align))  # reflection needs pixels to mirror
        pad_h, pad_w = (-(h + 2 * pad)) % self.align, (-(w + 2 * pad)) % self.align
        if pad or pad_h or pad_w:  # reflect, so the border looks like image rather than a black frame to the network
            x = torch.nn.functional.pad(x, (pad, pad + pad_w, pad, pad + pad_h), mode="reflect")
        # The pre-pad is context, like the overlap: the tile grows by it, so an image that fitted one tile still does
        # (a 256 px photo padded to 264 took four 148 px windows, 1.4x the forward time: benchmarks/RESULTS.md).
        out = tiled_forward(
            x, fn, self.scale, tile + 2 * pad, overlap, self.batch, progress, cancel,
            out_dtype=out_dtype, finish=finish, align=self.align,
        )  # fmt: skip
        top, s = pad * self.scale, self.scale
        return out[:, :, top : top + h * s, top : top + w * s]

    def upscale_array(self, x: np.ndarray, tile: int | None = None) -> np.ndarray:
        """H x W x 3 float32 in [0, 1] -> the network's output, clamped to [0, 1], float32 (for evaluation)."""
        self._ready()
        if x.ndim != 3 or x.shape[2] != 3:
            raise ValueError(f"upscale_array takes an H x W x 3 array, got shape {x.shape}")
        out = self._tiled(to_batch(x), self.forward_tiles, torch.float32, None, None, None, tile)
        return out[0].clamp_(0, 1).permute(1, 2, 0).numpy()

    def upscale(
        self,
        picture: Picture,
        progress: Progress | None = None,
        cancel: Callable[[], bool] | None = None,
        tile: int | None = None,
    ) -> Picture:
        """Upscale a decoded picture; the result keeps its mode, bit depth and ICC profile (see `models.pixels`).

        Raises:
            Cancelled: `cancel()` returned true between two batches of tiles.
        """
        self._ready()
        started = time.perf_counter()
        net = network_input(picture)
        run = net.through(self.forward_tiles)
        out = self._tiled(net.tensor, run, net.out_dtype, net.finish, progress, cancel, tile)
        log.debug("upscaled %dx%d in %.2fs", picture.width, picture.height, time.perf_counter() - started)
        return net.to_picture(out)
