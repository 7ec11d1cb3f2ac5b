"""VGG19 features for the perceptual loss: conv5_4 *before* its ReLU, as ESRGAN uses (sharper, brighter textures than
after it, because the deep activations are sparse after the ReLU), or any other named layer.

Our own small module, no torchvision: it reads torchvision's published `vgg19-dcbb9e9d.pth` by its `features.N.*`
keys and builds only the layers up to the deepest one asked for. Input is RGB in [0, 1]; ImageNet normalisation
happens inside. Frozen: no gradients for its weights, and always in eval mode.
"""

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from esrgan.models.checkpoints import StateDict
from esrgan.models.download import DownloadError, fetch

VGG19_URL = "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"
VGG19_FILENAME = "vgg19-dcbb9e9d.pth"
# Full digest as published alongside this URL by several independent projects; its first 8 digits are in the name.
VGG19_SHA256 = "dcbb9e9dad569fff7a846263a77324fc34978fea2bfb039c012d710e1776ae44"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# torchvision's vgg19 `features`: conv widths per block, each block ending in a 2x2 max-pool.
_BLOCKS = ((64, 64), (128, 128), (256, 256, 256, 256), (512, 512, 512, 512), (512, 512, 512, 512))


def _layer_names() -> tuple[str, ...]:
    """Names in `features` order: conv1_1, relu1_1, conv1_2, relu1_2, pool1, conv2_1, ... (index 34 is conv5_4)."""
    names = []
    for b, widths in enumerate(_BLOCKS, start=1):
        for i in range(1, len(widths) + 1):
            names += [f"conv{b}_{i}", f"relu{b}_{i}"]
        names.append(f"pool{b}")
    return tuple(names)


LAYER_NAMES = _layer_names()


class VGGFeatures(nn.Module):
    """Runs VGG19 `features` up to the deepest requested layer and returns {name: activation} for each one."""

    def __init__(self, state_dict: StateDict, layers: Sequence[str] = ("conv5_4",)) -> None:
        super().__init__()
        unknown = [name for name in layers if name not in LAYER_NAMES]
        if not layers or unknown:
            raise ValueError(f"unknown VGG19 layers {unknown or list(layers)}; choose from {', '.join(LAYER_NAMES)}")
        self.layers = tuple(layers)
        self.depth = max(LAYER_NAMES.index(name) for name in layers) + 1
        modules: list[nn.Module] = []
        in_ch = 3
        for name in LAYER_NAMES[: self.depth]:
            if name.startswith("conv"):
                b, i = (int(n) for n in name[4:].split("_"))
                modules.append(nn.Conv2d(in_ch, _BLOCKS[b - 1][i - 1], 3, 1, 1))
                in_ch = _BLOCKS[b - 1][i - 1]
            elif name.startswith("relu"):
                modules.append(nn.ReLU(inplace=False))  # inplace would overwrite a returned pre-ReLU activation
            else:
                modules.append(nn.MaxPool2d(2, 2))
        self.features = nn.Sequential(*modules)
        wanted = self.features.state_dict().keys()
        features = {k.removeprefix("features."): v for k, v in state_dict.items() if k.startswith("features.")}
        picked = {k: v for k, v in features.items() if k in wanted}
        missing = [f"features.{k}" for k in wanted if k not in picked]
        if missing:
            raise ValueError(f"VGG19 weights lack {missing[:4]} (expected torchvision's `features.N.weight/bias` keys)")
        try:
            self.features.load_state_dict(picked, strict=True)
        except RuntimeError as exc:
            raise ValueError(f"VGG19 weights do not fit torchvision's vgg19: {exc}") from exc
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "VGGFeatures":
        """Stays in eval mode whatever the trainer asks: this network is a fixed measuring instrument."""
        return super().train(False)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = (x - self.mean) / self.std
        out = {}
        for name, module in zip(LAYER_NAMES[: self.depth], self.features, strict=True):
            x = module(x)
            if name in self.layers:
                out[name] = x
        return out


def vgg19_weights_path(path: Path | None = None, cache_dir: Path | None = None, download: bool = True) -> Path:
    """A local copy of `vgg19-dcbb9e9d.pth`: `path`, else the cache (ours, then torch hub's), else download it."""
    if path is not None:
        if not Path(path).is_file():
            raise FileNotFoundError(f"VGG19 weights not found at {path}")
        return Path(path)
    from esrgan.models.registry import default_cache_dir

    cache = cache_dir or default_cache_dir()
    torch_hub = Path(torch.hub.get_dir()) / "checkpoints" / VGG19_FILENAME
    for candidate in (cache / VGG19_FILENAME, torch_hub):
        if candidate.is_file():
            return candidate
    hint = f"download {VGG19_URL} (548 MiB) and put it at {cache / VGG19_FILENAME}, or pass its path"
    if not download:
        raise FileNotFoundError(f"VGG19 weights not found; {hint}")
    try:
        return fetch(VGG19_URL, cache / VGG19_FILENAME, sha256=VGG19_SHA256)
    except DownloadError as exc:
        raise FileNotFoundError(f"VGG19 weights could not be downloaded ({exc}); {hint}") from exc


def load_vgg19(
    layers: Sequence[str] = ("conv5_4",),
    path: Path | None = None,
    cache_dir: Path | None = None,
    download: bool = True,
) -> VGGFeatures:
    """The frozen feature extractor with torchvision's ImageNet weights (read with weights_only=True)."""
    weights = torch.load(vgg19_weights_path(path, cache_dir, download), map_location="cpu", weights_only=True)
    return VGGFeatures(weights, layers)
