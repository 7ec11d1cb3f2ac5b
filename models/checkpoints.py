"""Generator checkpoints: our safetensors format, read back without anyone passing nb/nf/gc/scale by hand.

Our canonical keys are `RRDBNet.state_dict()` keys, so `load_state_dict(strict=True)` is the final check.
Metadata (safetensors allows str -> str only) holds the architecture, the stage (`psnr`/`gan`) and a provenance string.
"""

import json
import re
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from models.rrdbnet import RRDBConfig, RRDBNet

StateDict = dict[str, torch.Tensor]


class CheckpointError(ValueError):
    """A weights file that cannot be used; the message names the file, what was expected and what was found."""


def infer_config(sd: StateDict) -> RRDBConfig:
    """Read the architecture off tensor shapes: nf, in/out channels from the end convs, nb from the block indices,
    gc from the first dense conv, and scale from the pixel-unshuffle factor folded into conv_first."""
    for key in ("conv_first.weight", "conv_last.weight", "body.0.rdb1.conv1.weight"):
        if key not in sd:
            raise CheckpointError(f"not an RRDBNet state dict: missing {key!r}")
    first, last = sd["conv_first.weight"], sd["conv_last.weight"]
    nf, out_ch = first.shape[0], last.shape[0]
    blocks = {int(m.group(1)) for k in sd if (m := re.match(r"body\.(\d+)\.", k))}
    nb = max(blocks) + 1
    gc = sd["body.0.rdb1.conv1.weight"].shape[0]
    folded = first.shape[1]
    for scale, factor in ((4, 1), (2, 4), (1, 16)):
        if folded % factor == 0 and folded // factor == out_ch:
            return RRDBConfig(in_ch=folded // factor, out_ch=out_ch, nf=nf, nb=nb, gc=gc, scale=scale)
    raise CheckpointError(f"cannot tell the scale: conv_first takes {folded} channels but conv_last gives {out_ch}")


def save_generator(
    path: str | Path,
    sd: StateDict,
    *,
    stage: str,
    provenance: str,
    extra: dict[str, Any] | None = None,
) -> None:
    """Write a generator in our format. `extra` (config, iterations, metrics...) is stored as JSON."""
    if stage not in ("psnr", "gan"):
        raise ValueError(f"stage must be 'psnr' or 'gan', not {stage!r}")
    config = infer_config(sd)
    metadata = {
        "format": "esrgan-service/1",
        "arch": "RRDBNet",
        "config": json.dumps(config.__dict__),
        "scale": str(config.scale),
        "stage": stage,
        "provenance": provenance,
        "extra": json.dumps(extra or {}),
    }
    tensors = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in sd.items()}
    save_file(tensors, str(path), metadata=metadata)


def read_metadata(path: str | Path) -> dict[str, str]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return dict(f.metadata() or {})


def load_state_dict(path: str | Path) -> StateDict:
    """Tensors of one of our safetensors checkpoints, on the CPU."""
    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from exc


def build_generator(sd: StateDict, path: str | Path = "<state dict>") -> RRDBNet:
    """An RRDBNet whose architecture comes from the tensors, loaded strictly."""
    model = RRDBNet(infer_config(sd))
    try:
        model.load_state_dict(sd, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights do not fit the RRDBNet they describe: {exc}") from exc
    return model


def load_generator(path: str | Path) -> RRDBNet:
    """The single entry point for service, engine and training: file in, ready RRDBNet (eval mode) out."""
    return build_generator(load_state_dict(path), path).eval()
