"""The PyTorch side of the engine: one network of either architecture on one device, its blend written in place.

The two ends of the blend live where the model lives, so a new alpha is one fused lerp per parameter and a worker
serving many alphas holds one network (12-13 ms per new alpha for the paper-size net on the CPU). The memory layout
is channels_last, faster for these convolutions on the CPU (3x3 conv 64->64: 522 against 288 GFLOP/s NCHW) and on
CUDA tensor cores. Both figures: benchmarks/RESULTS.md, "Inference engine". Half precision is autocast around the
forward only (fp16 or bf16 on CUDA, bf16 on a CPU with native bf16: 790 against 405 GFLOP/s fp32 for that conv).
"""

import logging

import torch

from esrgan.models.checkpoints import StateDict, build_generator
from esrgan.models.interpolate import interpolate_into

log = logging.getLogger(__name__)


class TorchRunner:
    """Maps a float32 batch of tiles on the host to its upscaled float32 batch on the host, in eager PyTorch.

    `half` (fp16 or bf16 on CUDA, bf16 on the CPU) runs the forward under autocast, with the weights and their alpha
    blend kept in fp32; a batch whose output holds NaN or Inf (fp16 overflow, or a bf16 one) is run again in fp32.
    """

    def __init__(self, psnr: StateDict, gan: StateDict | None, device: str, half: torch.dtype | None) -> None:
        self.device, self.half = device, half
        self.autocast_device = torch.device(device).type  # "cuda" or "cpu"
        self.model = build_generator(psnr).eval().to(device, memory_format=torch.channels_last)
        self._psnr = {k: v.to(device, torch.float32) for k, v in psnr.items()}
        self._gan = None if gan is None else {k: v.to(device, torch.float32) for k, v in gan.items()}

    def set_alpha(self, alpha: float) -> None:
        """Blend the pair into the model's own parameters (alpha 0 = PSNR, 1 = GAN)."""
        if self._gan is None:
            raise ValueError("this runner holds a single weights file: alpha needs a PSNR/GAN pair")
        interpolate_into(self.model, self._psnr, self._gan, alpha)

    @torch.inference_mode()
    def __call__(self, tiles: torch.Tensor) -> torch.Tensor:
        x = tiles.to(self.device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        if self.half is not None:
            with torch.autocast(self.autocast_device, dtype=self.half):
                y = self.model(x)
            if torch.isfinite(y).all():
                return y.float().cpu()
            log.warning("non-finite values in a %s tile: running it again in fp32", self.half)
        return self.model(x).float().cpu()
