"""Generator checkpoints: every weights file in, canonical tensors and the right network out, and back bit-exactly.

The rules (wrappers, layout detection, renames, checks) are `models/layouts.py`, which applies them to names and
shapes; this module applies them to tensors. Reading goes: open the file without running pickled code -> unwrap ->
detect -> rename to canonical keys -> check every key, shape and dtype against the architecture the tensors describe
(RRDBNet or SRVGGNetCompact, `models/architectures.py`) -> build that network and `load_state_dict(strict=True)`.
Writing runs the renames backwards.

Our own format is safetensors with metadata (safetensors allows str -> str only): the architecture and its config,
the stage (`psnr`/`gan`/...) and a provenance string.

Entry points, one per need: a network: `load_generator(path)`, or `build_generator(sd)` for tensors in memory (both
strict and validated); canonical tensors (to blend, convert or export them): `read_state_dict(path)`, with layout and
metadata beside them `load_checkpoint(path)`; a description without the tensors: `layouts.describe_weights(path)`.
"""

import json
import pickle
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from esrgan.models.architectures import ArchConfig, RRDBConfig, describe
from esrgan.models.layouts import (
    CheckpointError,
    Layout,
    TensorSpec,
    WeightsInfo,
    check,
    from_canonical,
    is_safetensors,
    read_metadata,
    to_canonical,
    unwrap,
    weights_info,
)
from esrgan.models.rrdbnet import RRDBNet
from esrgan.models.srvgg import SRVGGNetCompact

StateDict = dict[str, torch.Tensor]
Generator = RRDBNet | SRVGGNetCompact
STAGES = ("psnr", "gan", "interpolated", "unknown")
FORMAT = "esrgan-service/1"


# --- reading files -------------------------------------------------------------------------------------------------

# A pre-1.6 torch.save file (the official 2018 ESRGAN weights) opens with this pickled magic number.
_LEGACY_MAGIC = b"\x80\x02\x8a\nl\xfc\x9cF\xf9 j\xa8"


def explain_torch_load(exc: Exception, path: Path) -> str:
    """torch's own message advises `weights_only=False`, which is exactly what we must never do; keep the facts."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    facts = [ln for ln in lines if not ln.startswith(("Weights only load failed", "Please file", "Check the doc"))]
    detail = facts[0].split(". ")[0] if facts else type(exc).__name__
    if isinstance(exc, pickle.UnpicklingError) and "GLOBAL" in detail:
        return f"refused to unpickle it: it asks for code, not just tensors ({detail})"
    with path.open("rb") as f:
        head = f.read(len(_LEGACY_MAGIC))
    if head.startswith(b"PK\x03\x04") or head == _LEGACY_MAGIC:  # torch.save's zip format, or the pre-1.6 one
        return f"a damaged or truncated PyTorch file ({detail})"
    return f"not a PyTorch weights file ({detail})"


def read_raw(path: str | Path) -> Mapping[str, Any]:
    """The file's top-level mapping as stored, on the CPU. Pickles are read with `weights_only=True`: never any code."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    if is_safetensors(path):
        try:
            return load_file(str(path))
        except (SafetensorError, OSError) as exc:
            raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from exc
    # torch warns on the way to some failures (e.g. an odd pickle protocol byte); those warnings belong to the
    # error we raise, so they are shown only when the load succeeds
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError... for bad bytes
            raise CheckpointError(f"{path}: {explain_torch_load(exc, path)}") from exc
    for warning in caught:
        warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path}: expected a mapping of parameter names to tensors, found {type(obj).__name__}")
    return obj


def spec_of(tensor: torch.Tensor) -> TensorSpec:
    return TensorSpec(tuple(tensor.shape), str(tensor.dtype).removeprefix("torch."))


def specs_of(sd: Mapping[str, torch.Tensor]) -> dict[str, TensorSpec]:
    return {k: spec_of(v) for k, v in sd.items()}


def check_state_dict(sd: StateDict, path: str | Path = "<state dict>") -> ArchConfig:
    """The architecture canonical `sd` describes, after checking every key, shape and dtype against it."""
    return check(specs_of(sd), path)


@dataclass(frozen=True)
class LoadedCheckpoint(WeightsInfo):
    """A WeightsInfo with the tensors."""

    state_dict: StateDict  # canonical keys, validated against `config`

    @property
    def info(self) -> WeightsInfo:
        """The description alone, equal to what `describe_weights` says of the same file."""
        return WeightsInfo(**{k: v for k, v in vars(self).items() if k != "state_dict"})


def load_checkpoint(path: str | Path) -> LoadedCheckpoint:
    """Read any supported generator file: layout, wrapper and architecture all come from the file itself."""
    raw = read_raw(path)
    sd, wrapper = unwrap(raw, path, torch.Tensor)
    layout, canonical = to_canonical(sd, path)
    metadata = read_metadata(path) if is_safetensors(Path(path)) else {}
    info = weights_info(layout, specs_of(canonical), wrapper, metadata, path)
    return LoadedCheckpoint(**vars(info), state_dict=canonical)


def read_state_dict(path: str | Path) -> StateDict:
    """Canonical tensors of any supported generator file, on the CPU, dtypes as stored."""
    return load_checkpoint(path).state_dict


def network_for(config: ArchConfig) -> Generator:
    """An untrained network of `config`'s architecture."""
    return RRDBNet(config) if isinstance(config, RRDBConfig) else SRVGGNetCompact(config)


def build_generator(sd: StateDict, path: str | Path = "<state dict>") -> Generator:
    """The network the tensors describe (RRDBNet or SRVGGNetCompact), loaded strictly: every network is built here."""
    config = check_state_dict(sd, path)
    # Built on the CPU, init included, although the strict load overwrites every weight: the meta device would skip
    # the init but costs more in a fresh process (paper size: 0.56 s against 0.32, and 2.0 s while the init's normal_
    # on meta imported torch._refs; benchmarks/RESULTS.md, "Whole process on a family-25 EPYC").
    model = network_for(config)
    try:
        model.load_state_dict(sd, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights do not fit the {config.arch} they describe: {exc}") from exc
    return model


def load_generator(path: str | Path) -> Generator:
    """The single door from a file to a network: file in, ready network (eval mode) out."""
    return build_generator(read_state_dict(path), path).eval()


# --- writing ---------------------------------------------------------------------------------------------------------


def save_generator(
    path: str | Path,
    sd: StateDict,
    *,
    stage: str,
    provenance: str,
    extra: dict[str, Any] | None = None,
) -> None:
    """Write a generator in our format. `extra` (config, iterations, metrics, alpha...) is stored as JSON."""
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES}, not {stage!r}")
    config = check_state_dict(sd, path)
    fields = describe(config)
    metadata = {
        "format": FORMAT,
        "arch": str(fields.pop("arch")),
        "config": json.dumps(fields),
        "scale": str(config.scale),
        "stage": stage,
        "provenance": provenance,
        "extra": json.dumps(extra or {}),
    }
    tensors = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in sd.items()}
    save_file(tensors, str(path), metadata=metadata)


def export_state_dict(path: str | Path, sd: StateDict, layout: Layout) -> None:
    """Write canonical `sd` in another project's layout, dtypes untouched. `.pth` for BasicSR gets the `params`
    wrapper BasicSR's `load_network` expects; `.safetensors` files are always flat."""
    path = Path(path)
    config = check_state_dict(sd, path)
    renamed = from_canonical(sd, layout, config, path)
    tensors = {k: v.detach().cpu().contiguous() for k, v in renamed.items()}
    if path.suffix == ".safetensors":
        save_file(tensors, str(path))
    elif path.suffix in (".pth", ".pt"):
        torch.save({"params": tensors} if layout is Layout.BASICSR else tensors, path)
    else:
        raise CheckpointError(f"{path}: expected a .pth, .pt or .safetensors file name, found {path.suffix!r}")
