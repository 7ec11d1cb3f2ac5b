"""ONNX export of a PSNR/GAN pair that serves any alpha, and the ONNX Runtime side of the engine.

Alpha is a graph input: the file holds the PSNR weights and the GAN-minus-PSNR deltas, and the graph computes
w = psnr + alpha * delta for every parameter on each run. The alternative is one session per alpha with the blend
folded into constant weights, kept in a small cache. Measured (benchmarks/engine.py; benchmarks/RESULTS.md,
"Inference engine", paper-size net, 128 px tile, CPU): the alpha input costs 3.9 s per tile against 3.2 s with fixed
weights (likely because ONNX Runtime can prepack only constant weights), while a session for a new alpha costs
2.7 s (blend + export + load). So a session per alpha is faster from about 4 tiles at one alpha on; the input is
faster below that, as for small preview crops whose alpha changes with every slider move, and it keeps
one copy of the weights resident whatever the alphas. The input was kept for that; `--backend torch` (the default)
blends in place in 15 ms and has neither cost.
"""

import ctypes
import io
import logging
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from torch import nn
from torch.nn.utils import parametrize

from esrgan.models.checkpoints import StateDict, build_generator
from esrgan.models.interpolate import check_alpha, check_compatible

log = logging.getLogger(__name__)

OPSET = 17


class _Blend(nn.Module):
    """A parametrization: the stored (PSNR) tensor plus alpha times its GAN delta."""

    def __init__(self, delta: torch.Tensor, owner: list["AlphaBlendNet"]) -> None:
        super().__init__()
        self.register_buffer("delta", delta)
        self.owner = owner  # a list, so the parent is not registered as a submodule of its own parametrization

    def forward(self, original: torch.Tensor) -> torch.Tensor:
        return original + self.owner[0].alpha * self.delta


class AlphaBlendNet(nn.Module):
    """A generator (either architecture) whose parameters are psnr + alpha * (gan - psnr), alpha a graph input."""

    def __init__(self, psnr: StateDict, gan: StateDict) -> None:
        super().__init__()
        check_compatible(psnr, gan)
        self.net = build_generator(psnr).eval()
        self.alpha = torch.tensor(0.0)
        for key in psnr:
            module_name, _, name = key.rpartition(".")
            delta = gan[key].float() - psnr[key].float()
            parametrize.register_parametrization(self.net.get_submodule(module_name), name, _Blend(delta, [self]))

    def forward(self, x: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        self.alpha = alpha
        return self.net(x)


def export_onnx(psnr: StateDict, gan: StateDict | None, dest: Path | io.BytesIO) -> None:
    """Write an ONNX model: inputs `input` (N, C, H, W) float32 [0, 1] and, for a pair, `alpha` (a 0-d float32).

    H and W are dynamic; the output is `output` (N, C, H*scale, W*scale), unclamped like the PyTorch model.
    """
    with torch.no_grad(), warnings.catch_warnings():
        # The TorchScript exporter (deprecated, hence the filter) handles the dynamic H/W axes; the dynamo one
        # would need the onnxscript package, which the product does not depend on.
        warnings.simplefilter("ignore", DeprecationWarning)
        if gan is None:
            model: nn.Module = build_generator(psnr).eval()
            args: tuple = (torch.rand(1, model.config.in_ch, 16, 16),)
            names = ["input"]
        else:
            model = AlphaBlendNet(psnr, gan).eval()
            args = (torch.rand(1, model.net.config.in_ch, 16, 16), torch.tensor(0.5))
            names = ["input", "alpha"]
        torch.onnx.export(
            model,
            args,
            dest if isinstance(dest, io.BytesIO) else str(dest),
            input_names=names,
            output_names=["output"],
            dynamic_axes={"input": {0: "n", 2: "h", 3: "w"}, "output": {0: "n", 2: "h4", 3: "w4"}},
            opset_version=OPSET,
            dynamo=False,
        )


def cuda_driver_present() -> bool:
    """Whether an NVIDIA driver is installed; without one, asking ONNX Runtime for CUDA only prints errors."""
    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError:
        return False
    return True


def providers_for(device: str) -> list:
    """Execution providers for `device`: CUDA first only when this onnxruntime build has it and a driver is there."""
    if device.startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers() and cuda_driver_present():
        index = int(device.split(":")[1]) if ":" in device else 0
        return [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


class OnnxRunner:
    """One ONNX Runtime session; maps a float32 batch of tiles to its upscaled batch at the current alpha."""

    def __init__(self, model: bytes | Path, device: str) -> None:
        wanted = providers_for(device)
        source = model if isinstance(model, bytes) else str(model)
        ort.set_default_logger_severity(4)  # a CUDA library that fails to load is reported below in one line
        try:
            self.session = ort.InferenceSession(source, providers=wanted)
        finally:
            ort.set_default_logger_severity(2)
        if device.startswith("cuda") and self.session.get_providers()[0] != "CUDAExecutionProvider":
            log.warning("ONNX Runtime cannot use CUDA here (no GPU, or no CUDA 13/cuDNN 9 it can load): using the CPU")
        self.inputs = {i.name for i in self.session.get_inputs()}
        self.alpha: np.ndarray | None = None

    @classmethod
    def from_state_dicts(cls, psnr: StateDict, gan: StateDict | None, device: str) -> "OnnxRunner":
        """A session for a pair (alpha as a graph input) or a single weights file, exported in memory."""
        buf = io.BytesIO()
        export_onnx(psnr, gan, buf)
        return cls(buf.getvalue(), device)

    @property
    def takes_alpha(self) -> bool:
        return "alpha" in self.inputs

    def set_alpha(self, alpha: float) -> None:
        self.alpha = np.asarray(check_alpha(alpha), dtype=np.float32)

    def __call__(self, tiles: torch.Tensor) -> torch.Tensor:
        feed = {"input": tiles.contiguous().numpy()}
        if self.takes_alpha:
            if self.alpha is None:
                raise ValueError("call set_alpha() before running a PSNR/GAN pair")
            feed["alpha"] = self.alpha
        return torch.from_numpy(self.session.run(["output"], feed)[0])
