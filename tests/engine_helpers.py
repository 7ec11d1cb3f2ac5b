"""A tiny PSNR/GAN pair on disk for the engine, ONNX and CLI tests (the GAN half a perturbed copy, as fine-tuning
would leave it), with PyTorch's default init so that the network's output depends visibly on its input."""

from pathlib import Path

import torch

from esrgan.models.checkpoints import save_generator
from esrgan.models.rrdbnet import RRDBConfig, RRDBNet

TINY = RRDBConfig(nf=8, nb=1, gc=4)


def tiny_state_dict(seed: int, config: RRDBConfig = TINY) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    net = RRDBNet(config)
    for m in net.modules():
        if isinstance(m, torch.nn.Conv2d):
            m.reset_parameters()
    return net.state_dict()


def save_tiny_pair(folder: Path, config: RRDBConfig = TINY) -> tuple[Path, Path]:
    psnr = tiny_state_dict(0, config)
    torch.manual_seed(1)
    gan = {k: v + 0.05 * torch.randn_like(v) for k, v in psnr.items()}
    paths = folder / "tiny_psnr.safetensors", folder / "tiny_gan.safetensors"
    save_generator(paths[0], psnr, stage="psnr", provenance="test")
    save_generator(paths[1], gan, stage="gan", provenance="test")
    return paths
