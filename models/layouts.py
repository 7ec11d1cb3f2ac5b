"""Generator weights layouts: wrappers, layout detection, key renames and the checks, on names and shapes only.

Every weights file goes the same way: `unwrap` (params_ema > params > state_dict, strip `module.`) -> `detect` the
layout from its keys -> one small `to_canonical_<layout>` rename -> `check` every key, shape and dtype against the
architecture the shapes describe (`models/architectures.py`). The renames work on any mapping, so the same rules run
on tensors (`models/checkpoints.py`, which reads and writes them) and on a safetensors header's names and shapes
(`describe_weights` here, which reads no tensor data).

Torch-free: an API whose workers run elsewhere describes its model files at start without importing torch. Only a
PyTorch pickle (`.pth`) has no header to read; describing one loads it through `models.checkpoints`, and so torch.
"""

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

from safetensors import SafetensorError, safe_open

from esrgan.models.architectures import ArchConfig, ArchitectureError, block_count, check_shapes

V = TypeVar("V")


class CheckpointError(ValueError):
    """A weights file that cannot be used; the message names the file, what was expected and what was found."""


class Layout(StrEnum):
    """Key layouts of generators in the wild. BasicSR's keys are our canonical keys."""

    BASICSR = "basicsr"  # BasicSR / Real-ESRGAN / ours: conv_first, body.N.rdb1.conv1; body.N (SRVGGNetCompact)
    ESRGAN = "esrgan"  # official ESRGAN "new arch" (also BSRGAN, RealSR): RRDB_trunk.N.RDB1.conv1, trunk_conv, HRconv
    ESRGAN_OLD = "esrgan-old"  # official ESRGAN "old arch" nn.Sequential: model.0, model.1.sub.N.RDB1.conv1.0, model.10


# Declarative detection, as spandrel does it: a layout is recognised by keys it must contain, per architecture.
# SRVGGNetCompact is recognised by its PReLU slopes at body.1, so its relu/leakyrelu variants are not (see SRVGGConfig).
SIGNATURES: tuple[tuple[Layout, str, tuple[str, ...]], ...] = (
    (Layout.BASICSR, "RRDBNet", ("conv_first.weight", "body.0.rdb1.conv1.weight", "conv_body.weight")),
    (Layout.BASICSR, "SRVGGNetCompact", ("body.0.weight", "body.1.weight")),
    (Layout.ESRGAN, "RRDBNet", ("conv_first.weight", "RRDB_trunk.0.RDB1.conv1.weight", "trunk_conv.weight")),
    (Layout.ESRGAN_OLD, "RRDBNet", ("model.0.weight", "model.1.sub.0.RDB1.conv1.0.weight")),
)

# Wrappers that training frameworks put around the weights, in order of preference (EMA weights are the good ones).
WRAPPERS = ("params_ema", "params", "state_dict")


@dataclass(frozen=True)
class TensorSpec:
    """What a check needs of a tensor: its shape and its dtype's PyTorch name without `torch.` (e.g. "float32")."""

    shape: tuple[int, ...]
    dtype: str

    @property
    def numel(self) -> int:
        count = 1
        for side in self.shape:
            count *= side
        return count


FLOAT_DTYPES = {"float64", "float32", "float16", "bfloat16", "float8_e4m3fn", "float8_e5m2"}
# safetensors dtype names -> PyTorch's, for a description from the header alone
SAFETENSORS_DTYPES = {
    "F64": "float64",
    "F32": "float32",
    "F16": "float16",
    "BF16": "bfloat16",
    "F8_E4M3": "float8_e4m3fn",
    "F8_E5M2": "float8_e5m2",
    "I64": "int64",
    "I32": "int32",
    "I16": "int16",
    "I8": "int8",
    "U8": "uint8",
    "BOOL": "bool",
}


def unwrap(obj: Mapping[str, Any], path: str | Path, leaf: type[V]) -> tuple[dict[str, V], str | None]:
    """Remove training wrappers (params_ema > params > state_dict) and `module.` prefixes; return the wrapper used.
    Every value must be a `leaf` (a tensor, or a TensorSpec for a header)."""
    wrapper = next((w for w in WRAPPERS if isinstance(obj.get(w), Mapping)), None)
    inner = obj[wrapper] if wrapper else obj
    sd: dict[str, V] = {}
    for key, value in inner.items():
        if not isinstance(value, leaf):
            raise CheckpointError(
                f"{path}: expected only tensors{f' under {wrapper!r}' if wrapper else ''}, "
                f"found {type(value).__name__} at {key!r} (top-level keys: {sorted(obj)[:8]})"
            )
        sd[key.removeprefix("module.")] = value
    return sd, wrapper


def detect(keys: Mapping[str, Any], path: str | Path = "<state dict>") -> Layout:
    """The layout whose signature keys are all present; otherwise an error listing what each layout lacks."""
    for layout, _, signature in SIGNATURES:
        if all(k in keys for k in signature):
            return layout
    lacking = "; ".join(
        f"{layout.value} needs {[k for k in wanted if k not in keys]} ({arch})" for layout, arch, wanted in SIGNATURES
    )
    found = sorted(keys)
    shown = f"{found[:6]}{f' and {len(found) - 6} more' if len(found) > 6 else ''}"
    raise CheckpointError(
        f"{path}: not an ESRGAN/RRDBNet generator nor a Real-ESRGAN SRVGGNetCompact in any known layout ({lacking}); "
        f"found {shown}"
    )


# --- key renames, one small pure function per layout ------------------------------------------------------------------

# Official new arch -> ours: literal prefixes, then the dense-block names inside the trunk.
_ESRGAN_PREFIXES = {
    "conv_first.": "conv_first.",
    "RRDB_trunk.": "body.",
    "trunk_conv.": "conv_body.",
    "upconv1.": "conv_up1.",
    "upconv2.": "conv_up2.",
    "HRconv.": "conv_hr.",
    "conv_last.": "conv_last.",
}
_ESRGAN_BLOCKS = {".RDB1.": ".rdb1.", ".RDB2.": ".rdb2.", ".RDB3.": ".rdb3."}

# Old sequential arch -> ours, for the two-stage (x4) network: model.2/5 are the Upsample layers, 4/7/9 the LeakyReLUs.
_OLD_PREFIXES = {"model.0.": "conv_first.", "model.3.": "conv_up1.", "model.6.": "conv_up2.", "model.8.": "conv_hr."}
_OLD_LAST = "model.10."
_OLD_TRUNK = "model.1.sub."


def _rename(sd: Mapping[str, V], rename: Callable[[str], str | None], path: str | Path, layout: Layout) -> dict[str, V]:
    out: dict[str, V] = {}
    unexpected = []
    for key, value in sd.items():
        new = rename(key)
        if new is None:
            unexpected.append(key)
        else:
            out[new] = value
    if unexpected:
        raise CheckpointError(f"{path}: unexpected keys for the {layout.value} layout: {unexpected[:8]}")
    return out


def _swap_prefix(key: str, table: Mapping[str, str]) -> str | None:
    for old, new in table.items():
        if key.startswith(old):
            return new + key[len(old) :]
    return None


def _replace_all(key: str, table: Mapping[str, str]) -> str:
    for old, new in table.items():
        key = key.replace(old, new)
    return key


def to_canonical_basicsr(sd: Mapping[str, V], path: str | Path = "<state dict>") -> dict[str, V]:
    return dict(sd)


def from_canonical_basicsr(sd: Mapping[str, V]) -> dict[str, V]:
    return dict(sd)


def to_canonical_esrgan(sd: Mapping[str, V], path: str | Path = "<state dict>") -> dict[str, V]:
    def rename(key: str) -> str | None:
        new = _swap_prefix(key, _ESRGAN_PREFIXES)
        return _replace_all(new, _ESRGAN_BLOCKS) if new and new.startswith("body.") else new

    return _rename(sd, rename, path, Layout.ESRGAN)


def from_canonical_esrgan(sd: Mapping[str, V]) -> dict[str, V]:
    back = {new: old for old, new in _ESRGAN_PREFIXES.items()}
    blocks = {new: old for old, new in _ESRGAN_BLOCKS.items()}
    out: dict[str, V] = {}
    for key, value in sd.items():
        old = _swap_prefix(key, back)
        if old is None:
            raise CheckpointError(f"<state dict>: {key!r} has no place in the esrgan layout")
        out[_replace_all(old, blocks) if old.startswith("RRDB_trunk.") else old] = value
    return out


def upsample_stages_old(keys: Mapping[str, Any]) -> int:
    """Upsampling stages of an old-arch net: conv, trunk, then (Upsample, conv, LeakyReLU) per stage, then
    conv_hr, LeakyReLU, conv_last; so stages = (sequence length - 5) / 3, as spandrel computes it."""
    return (block_count(keys, "model.") - 5) // 3


def to_canonical_esrgan_old(sd: Mapping[str, V], path: str | Path = "<state dict>") -> dict[str, V]:
    stages = upsample_stages_old(sd)
    if stages != 2:
        raise CheckpointError(
            f"{path}: an old-arch x{2**stages} network ({stages} upsampling stages); expected 2 stages (x4, or x2/x1 "
            "with pixel-unshuffle in front), which is the only RRDBNet shape this project builds"
        )
    nb = block_count(sd, _OLD_TRUNK) - 1  # the last child of the trunk is conv_body
    trunk_conv = f"{_OLD_TRUNK}{nb}."

    def rename(key: str) -> str | None:
        if key.startswith(trunk_conv):
            return "conv_body." + key[len(trunk_conv) :]
        if key.startswith(_OLD_LAST):
            return "conv_last." + key[len(_OLD_LAST) :]
        if key.startswith(_OLD_TRUNK):  # model.1.sub.N.RDBk.convj.0.weight -> body.N.rdbk.convj.weight
            rest = _replace_all(key[len(_OLD_TRUNK) :], _ESRGAN_BLOCKS).replace(".0.weight", ".weight")
            return "body." + rest.replace(".0.bias", ".bias")
        return _swap_prefix(key, _OLD_PREFIXES)

    return _rename(sd, rename, path, Layout.ESRGAN_OLD)


def from_canonical_esrgan_old(sd: Mapping[str, V]) -> dict[str, V]:
    nb = block_count(sd, "body.")
    back = {new: old for old, new in _OLD_PREFIXES.items()} | {
        "conv_body.": f"{_OLD_TRUNK}{nb}.",
        "conv_last.": _OLD_LAST,
    }
    blocks = {new: old for old, new in _ESRGAN_BLOCKS.items()}
    out: dict[str, V] = {}
    for key, value in sd.items():
        if key.startswith("body."):
            stem, param = key.rsplit(".", 1)
            out[_OLD_TRUNK + _replace_all(stem[len("body.") :] + ".", blocks) + f"0.{param}"] = value
            continue
        old = _swap_prefix(key, back)
        if old is None:
            raise CheckpointError(f"<state dict>: {key!r} has no place in the esrgan-old layout")
        out[old] = value
    return out


TO_CANONICAL: dict[Layout, Callable[[Mapping[str, V], str | Path], dict[str, V]]] = {
    Layout.BASICSR: to_canonical_basicsr,
    Layout.ESRGAN: to_canonical_esrgan,
    Layout.ESRGAN_OLD: to_canonical_esrgan_old,
}
FROM_CANONICAL: dict[Layout, Callable[[Mapping[str, V]], dict[str, V]]] = {
    Layout.BASICSR: from_canonical_basicsr,
    Layout.ESRGAN: from_canonical_esrgan,
    Layout.ESRGAN_OLD: from_canonical_esrgan_old,
}


def to_canonical(sd: Mapping[str, V], path: str | Path) -> tuple[Layout, dict[str, V]]:
    """The layout of unwrapped `sd` and its canonical keys (values untouched)."""
    layout = detect(sd, path)
    return layout, TO_CANONICAL[layout](sd, path)


def from_canonical(sd: Mapping[str, V], layout: Layout, config: ArchConfig, path: str | Path) -> dict[str, V]:
    """Canonical `sd` in `layout`'s names; the official ESRGAN layouts hold RRDBNets only."""
    if layout is not Layout.BASICSR and config.arch != "RRDBNet":
        raise CheckpointError(
            f"{path}: the {layout.value} layout holds RRDBNets only; write a {config.arch} as basicsr (Real-ESRGAN's)"
        )
    return FROM_CANONICAL[layout](sd)


# --- checks and descriptions ------------------------------------------------------------------------------------------


def check(specs: Mapping[str, TensorSpec], path: str | Path = "<state dict>") -> ArchConfig:
    """The architecture canonical `specs` describe, after checking every key, shape and dtype (names the file)."""
    try:
        config = check_shapes({k: v.shape for k, v in specs.items()})
    except ArchitectureError as exc:
        raise CheckpointError(f"{path}: {exc}") from exc
    not_float = [k for k, v in specs.items() if v.dtype not in FLOAT_DTYPES]
    if not_float:
        key = not_float[0]
        raise CheckpointError(f"{path}: expected floating-point weights, found torch.{specs[key].dtype} at {key}")
    return config


@dataclass(frozen=True)
class WeightsInfo:
    """What a generator file holds: everything but the tensors' values."""

    layout: Layout
    config: ArchConfig
    wrapper: str | None  # "params_ema" / "params" / "state_dict" when the file had one
    metadata: dict[str, str]  # our safetensors metadata (empty for other files)
    parameters: int
    dtypes: tuple[str, ...]  # sorted, e.g. ("float32",)


def weights_info(
    layout: Layout, specs: Mapping[str, TensorSpec], wrapper: str | None, metadata: dict[str, str], path: str | Path
) -> WeightsInfo:
    """The description of canonical `specs`, checked as strictly as a load."""
    config = check(specs, path)
    parameters = sum(v.numel for v in specs.values())
    return WeightsInfo(layout, config, wrapper, metadata, parameters, tuple(sorted({v.dtype for v in specs.values()})))


def is_safetensors(path: Path) -> bool:
    """By name for the usual suffixes; otherwise by content: an 8-byte header length followed by a JSON object."""
    if path.suffix in (".safetensors", ".pth", ".pt", ".ckpt", ".bin"):
        return path.suffix == ".safetensors"
    with path.open("rb") as f:
        head = f.read(9)
    return len(head) == 9 and head[8:9] == b"{"


@contextmanager
def open_safetensors(path: str | Path) -> Iterator[Any]:
    """safetensors' lazy reader (header parsed and checked against the file size); a bad file is a CheckpointError.
    The numpy framework, so that opening one imports no torch; tensors are read only where asked for."""
    try:
        with safe_open(str(path), framework="numpy") as f:
            yield f
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from exc


def read_metadata(path: str | Path) -> dict[str, str]:
    with open_safetensors(path) as f:
        return dict(f.metadata() or {})


def read_header(path: Path) -> tuple[dict[str, TensorSpec], dict[str, str]]:
    """A safetensors file's tensor names, shapes and dtypes (no data read) and its metadata."""
    specs = {}
    with open_safetensors(path) as f:
        for key in f.keys():  # noqa: SIM118 (a safetensors reader, not a dict)
            stored = f.get_slice(key)
            dtype = stored.get_dtype()
            if dtype not in SAFETENSORS_DTYPES:
                raise CheckpointError(f"{path}: {key!r} is stored as {dtype}, not a PyTorch weight dtype")
            specs[key] = TensorSpec(tuple(stored.get_shape()), SAFETENSORS_DTYPES[dtype])
        return specs, dict(f.metadata() or {})


def describe_weights(path: str | Path) -> WeightsInfo:
    """Layout, architecture, metadata, parameter count and dtypes of a generator file, checked as strictly as a load.

    A safetensors file is described from its header (names, shapes, dtypes, metadata) without reading one tensor, and
    without torch. A PyTorch pickle has no such header: it is read whole (still with `weights_only=True`), with torch.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    if not is_safetensors(path):
        from esrgan.models.checkpoints import load_checkpoint  # torch: a pickle is only readable by loading it

        return load_checkpoint(path).info
    header, metadata = read_header(path)
    flat, wrapper = unwrap(header, path, TensorSpec)
    layout, canonical = to_canonical(flat, path)
    return weights_info(layout, canonical, wrapper, metadata, path)
