"""Generator checkpoints: every ESRGAN weights layout in, canonical keys out, and back again bit-exactly.

Our canonical keys are `RRDBNet.state_dict()` keys, which are BasicSR's (`conv_first`, `body.N.rdb1.conv1`,
`conv_body`, `conv_up1/2`, `conv_hr`, `conv_last`), so `load_state_dict(strict=True)` is the final check.
Reading goes: open the file without running pickled code -> `unwrap` (params_ema > params > state_dict, strip
`module.`) -> `detect` the layout from its keys -> one small `to_canonical_<layout>` rename -> check every key and shape
against the architecture the tensors describe. Writing runs the inverse `from_canonical_<layout>`. A description
(`describe_weights`) runs the same steps on a safetensors header's names and shapes as meta tensors, reading no data.
The entry points, one per need, are listed above `WeightsInfo`.

Our own format is safetensors with metadata (safetensors allows str -> str only): the architecture, the stage
(`psnr`/`gan`/...) and a provenance string.
"""

import dataclasses
import json
import pickle
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from esrgan.models.rrdbnet import UNSHUFFLE, RRDBConfig, RRDBNet

StateDict = dict[str, torch.Tensor]
STAGES = ("psnr", "gan", "interpolated", "unknown")
FORMAT = "esrgan-service/1"


class CheckpointError(ValueError):
    """A weights file that cannot be used; the message names the file, what was expected and what was found."""


class Layout(StrEnum):
    """Key layouts of ESRGAN generators in the wild. BasicSR's keys are our canonical keys."""

    BASICSR = "basicsr"  # BasicSR / Real-ESRGAN / ours: conv_first, body.N.rdb1.conv1, conv_body, conv_up1, conv_hr
    ESRGAN = "esrgan"  # official ESRGAN "new arch" (also BSRGAN, RealSR): RRDB_trunk.N.RDB1.conv1, trunk_conv, HRconv
    ESRGAN_OLD = "esrgan-old"  # official ESRGAN "old arch" nn.Sequential: model.0, model.1.sub.N.RDB1.conv1.0, model.10


# Declarative detection, as spandrel does it: a layout is recognised by keys it must contain.
SIGNATURES: dict[Layout, tuple[str, ...]] = {
    Layout.BASICSR: ("conv_first.weight", "body.0.rdb1.conv1.weight", "conv_body.weight"),
    Layout.ESRGAN: ("conv_first.weight", "RRDB_trunk.0.RDB1.conv1.weight", "trunk_conv.weight"),
    Layout.ESRGAN_OLD: ("model.0.weight", "model.1.sub.0.RDB1.conv1.0.weight"),
}

# Wrappers that training frameworks put around the weights, in order of preference (EMA weights are the good ones).
WRAPPERS = ("params_ema", "params", "state_dict")


# --- reading files -------------------------------------------------------------------------------------------------


def _is_safetensors(path: Path) -> bool:
    """By name for the usual suffixes; otherwise by content: an 8-byte header length followed by a JSON object."""
    if path.suffix in (".safetensors", ".pth", ".pt", ".ckpt", ".bin"):
        return path.suffix == ".safetensors"
    with path.open("rb") as f:
        head = f.read(9)
    return len(head) == 9 and head[8:9] == b"{"


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
    if _is_safetensors(path):
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


def unwrap(obj: Mapping[str, Any], path: str | Path = "<state dict>") -> tuple[StateDict, str | None]:
    """Remove training wrappers (params_ema > params > state_dict) and `module.` prefixes; return the wrapper used."""
    wrapper = next((w for w in WRAPPERS if isinstance(obj.get(w), Mapping)), None)
    inner = obj[wrapper] if wrapper else obj
    sd: StateDict = {}
    for key, value in inner.items():
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(
                f"{path}: expected only tensors{f' under {wrapper!r}' if wrapper else ''}, "
                f"found {type(value).__name__} at {key!r} (top-level keys: {sorted(obj)[:8]})"
            )
        sd[key.removeprefix("module.")] = value
    return sd, wrapper


def detect(sd: StateDict, path: str | Path = "<state dict>") -> Layout:
    """The layout whose signature keys are all present; otherwise an error listing what each layout lacks."""
    for layout, keys in SIGNATURES.items():
        if all(k in sd for k in keys):
            return layout
    lacking = "; ".join(f"{lay.value} needs {[k for k in keys if k not in sd]}" for lay, keys in SIGNATURES.items())
    found = sorted(sd)
    shown = f"{found[:6]}{f' and {len(found) - 6} more' if len(found) > 6 else ''}"
    raise CheckpointError(f"{path}: not an ESRGAN/RRDBNet generator of any known layout ({lacking}); found {shown}")


# --- key renames, one small pure function per layout -----------------------------------------------------------------

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


def _rename(sd: StateDict, rename: Callable[[str], str | None], path: str | Path, layout: Layout) -> StateDict:
    out: StateDict = {}
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


def _block_count(sd: StateDict, prefix: str) -> int:
    """Number of numbered children under `prefix` (highest index + 1), like spandrel's `get_seq_len`."""
    indices = [int(k[len(prefix) :].split(".", 1)[0]) for k in sd if k.startswith(prefix)]
    return max(indices) + 1 if indices else 0


def to_canonical_basicsr(sd: StateDict, path: str | Path = "<state dict>") -> StateDict:
    return dict(sd)


def from_canonical_basicsr(sd: StateDict) -> StateDict:
    return dict(sd)


def to_canonical_esrgan(sd: StateDict, path: str | Path = "<state dict>") -> StateDict:
    def rename(key: str) -> str | None:
        new = _swap_prefix(key, _ESRGAN_PREFIXES)
        return _replace_all(new, _ESRGAN_BLOCKS) if new and new.startswith("body.") else new

    return _rename(sd, rename, path, Layout.ESRGAN)


def from_canonical_esrgan(sd: StateDict) -> StateDict:
    back = {new: old for old, new in _ESRGAN_PREFIXES.items()}
    blocks = {new: old for old, new in _ESRGAN_BLOCKS.items()}
    out: StateDict = {}
    for key, value in sd.items():
        old = _swap_prefix(key, back)
        if old is None:
            raise CheckpointError(f"<state dict>: {key!r} has no place in the esrgan layout")
        out[_replace_all(old, blocks) if old.startswith("RRDB_trunk.") else old] = value
    return out


def upsample_stages_old(sd: StateDict) -> int:
    """Upsampling stages of an old-arch net: conv, trunk, then (Upsample, conv, LeakyReLU) per stage, then
    conv_hr, LeakyReLU, conv_last; so stages = (sequence length - 5) / 3, as spandrel computes it."""
    return (_block_count(sd, "model.") - 5) // 3


def to_canonical_esrgan_old(sd: StateDict, path: str | Path = "<state dict>") -> StateDict:
    stages = upsample_stages_old(sd)
    if stages != 2:
        raise CheckpointError(
            f"{path}: an old-arch x{2**stages} network ({stages} upsampling stages); expected 2 stages (x4, or x2/x1 "
            "with pixel-unshuffle in front), which is the only RRDBNet shape this project builds"
        )
    nb = _block_count(sd, _OLD_TRUNK) - 1  # the last child of the trunk is conv_body
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


def from_canonical_esrgan_old(sd: StateDict) -> StateDict:
    nb = _block_count(sd, "body.")
    back = {new: old for old, new in _OLD_PREFIXES.items()} | {
        "conv_body.": f"{_OLD_TRUNK}{nb}.",
        "conv_last.": _OLD_LAST,
    }
    blocks = {new: old for old, new in _ESRGAN_BLOCKS.items()}
    out: StateDict = {}
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


TO_CANONICAL: dict[Layout, Callable[[StateDict, str | Path], StateDict]] = {
    Layout.BASICSR: to_canonical_basicsr,
    Layout.ESRGAN: to_canonical_esrgan,
    Layout.ESRGAN_OLD: to_canonical_esrgan_old,
}
FROM_CANONICAL: dict[Layout, Callable[[StateDict], StateDict]] = {
    Layout.BASICSR: from_canonical_basicsr,
    Layout.ESRGAN: from_canonical_esrgan,
    Layout.ESRGAN_OLD: from_canonical_esrgan_old,
}


# --- architecture from shapes ----------------------------------------------------------------------------------------


def infer_config(sd: StateDict) -> RRDBConfig:
    """Read the architecture off tensor shapes: nf, in/out channels from the end convs, nb from the block indices,
    gc from the first dense conv, and scale from the pixel-unshuffle factor folded into conv_first (in/out ratio)."""
    for key in ("conv_first.weight", "conv_last.weight", "body.0.rdb1.conv1.weight"):
        if key not in sd:
            raise CheckpointError(f"not an RRDBNet state dict: missing {key!r}")
    first, last = sd["conv_first.weight"], sd["conv_last.weight"]
    if first.dim() != 4 or last.dim() != 4 or sd["body.0.rdb1.conv1.weight"].dim() != 4:
        raise CheckpointError(f"not an RRDBNet state dict: convs must be 4-d, conv_first is {tuple(first.shape)}")
    nf, out_ch = first.shape[0], last.shape[0]
    nb = _block_count(sd, "body.")
    gc = sd["body.0.rdb1.conv1.weight"].shape[0]
    folded = first.shape[1]
    for scale, unshuffle in UNSHUFFLE.items():
        factor = unshuffle**2
        if folded % factor == 0 and folded // factor == out_ch:
            return RRDBConfig(in_ch=folded // factor, out_ch=out_ch, nf=nf, nb=nb, gc=gc, scale=scale)
    raise CheckpointError(f"cannot tell the scale: conv_first takes {folded} channels but conv_last gives {out_ch}")


def expected_shapes(config: RRDBConfig) -> dict[str, tuple[int, ...]]:
    """Every canonical key and its shape for `config`, without building (and initialising) a network."""
    nf, gc, unshuffle = config.nf, config.gc, config.unshuffle

    def conv(name: str, cin: int, cout: int) -> dict[str, tuple[int, ...]]:
        return {f"{name}.weight": (cout, cin, 3, 3), f"{name}.bias": (cout,)}

    shapes = conv("conv_first", config.in_ch * unshuffle**2, nf)
    for b in range(config.nb):
        for r in (1, 2, 3):
            for i in range(1, 6):
                shapes |= conv(f"body.{b}.rdb{r}.conv{i}", nf + (i - 1) * gc, nf if i == 5 else gc)
    for name in ("conv_body", "conv_up1", "conv_up2", "conv_hr"):
        shapes |= conv(name, nf, nf)
    return shapes | conv("conv_last", nf, config.out_ch)


def check_state_dict(sd: StateDict, path: str | Path = "<state dict>") -> RRDBConfig:
    """The architecture `sd` describes, after checking every key and shape against it (names the file on failure)."""
    try:
        config = infer_config(sd)
    except (CheckpointError, ValueError) as exc:
        raise CheckpointError(f"{path}: {exc}") from exc
    want = expected_shapes(config)
    missing = [k for k in want if k not in sd]
    unexpected = [k for k in sd if k not in want]
    wrong = [f"{k}: expected {want[k]}, found {tuple(sd[k].shape)}" for k in want if k in sd and sd[k].shape != want[k]]
    if missing or unexpected or wrong:
        parts = [
            f"missing keys {missing[:8]}" if missing else "",
            f"unexpected keys {unexpected[:8]}" if unexpected else "",
            f"wrong shapes [{'; '.join(wrong[:4])}]" if wrong else "",
        ]
        problems = ", ".join(p for p in parts if p)
        raise CheckpointError(f"{path}: does not match the RRDBNet its tensors describe ({config}): {problems}")
    not_float = [k for k, v in sd.items() if not v.is_floating_point()]
    if not_float:
        key = not_float[0]
        raise CheckpointError(f"{path}: expected floating-point weights, found {sd[key].dtype} at {key}")
    return config


# --- reading: one entry point per need -----------------------------------------------------------------------------
# A network: `load_generator(path)`, or `build_generator(sd)` for tensors in memory (both strict and validated).
# Canonical tensors (to blend, convert or export them): `read_state_dict(path)`; with layout and metadata beside
# them, `load_checkpoint(path)`. A description without the tensors: `describe_weights(path)`.


@dataclass(frozen=True)
class WeightsInfo:
    """What a generator file holds: everything but the tensors' values."""

    layout: Layout
    config: RRDBConfig
    wrapper: str | None  # "params_ema" / "params" / "state_dict" when the file had one
    metadata: dict[str, str]  # our safetensors metadata (empty for other files)
    parameters: int
    dtypes: tuple[str, ...]  # sorted, e.g. ("float32",)


@dataclass(frozen=True)
class LoadedCheckpoint(WeightsInfo):
    """A WeightsInfo with the tensors."""

    state_dict: StateDict  # canonical keys, validated against `config`


# safetensors dtype names -> torch dtypes, to describe a file from its header alone
_SAFETENSORS_DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "F8_E4M3": torch.float8_e4m3fn,
    "F8_E5M2": torch.float8_e5m2,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}


@contextmanager
def _open_safetensors(path: str | Path) -> Iterator[Any]:
    """safetensors' lazy reader (header parsed and checked against the file size); a bad file is a CheckpointError."""
    try:
        with safe_open(str(path), framework="pt") as f:
            yield f
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from exc


def _read_header(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """A safetensors file's tensors as meta tensors (names, shapes, dtypes; no data read) and its metadata."""
    tensors = {}
    with _open_safetensors(path) as f:
        names = f.keys()
        for key in names:
            stored = f.get_slice(key).get_dtype()
            if stored not in _SAFETENSORS_DTYPES:
                raise CheckpointError(f"{path}: {key!r} is stored as {stored}, not a PyTorch weight dtype")
            shape = f.get_slice(key).get_shape()
            tensors[key] = torch.empty(shape, dtype=_SAFETENSORS_DTYPES[stored], device="meta")
        return tensors, dict(f.metadata() or {})


def _parse(raw: Mapping[str, Any], path: str | Path, metadata: dict[str, str]) -> LoadedCheckpoint:
    """Unwrap, detect the layout, rename to canonical keys, and check every key and shape."""
    sd, wrapper = unwrap(raw, path)
    layout = detect(sd, path)
    canonical = TO_CANONICAL[layout](sd, path)
    config = check_state_dict(canonical, path)
    parameters = sum(t.numel() for t in canonical.values())
    dtypes = tuple(sorted({str(t.dtype).removeprefix("torch.") for t in canonical.values()}))
    return LoadedCheckpoint(layout, config, wrapper, metadata, parameters, dtypes, canonical)


def load_checkpoint(path: str | Path) -> LoadedCheckpoint:
    """Read any supported generator file: layout, wrapper and architecture all come from the file itself."""
    raw = read_raw(path)
    return _parse(raw, path, read_metadata(path) if _is_safetensors(Path(path)) else {})


def describe_weights(path: str | Path) -> WeightsInfo:
    """Layout, architecture, metadata, parameter count and dtypes of a generator file, checked as strictly as a load.

    A safetensors file is described from its header (names, shapes, dtypes, metadata) without reading one tensor.
    A PyTorch pickle has no such header: it is read whole (still with `weights_only=True`).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    if _is_safetensors(path):
        tensors, metadata = _read_header(path)
        loaded = _parse(tensors, path, metadata)
    else:
        loaded = load_checkpoint(path)
    fields = {f.name: getattr(loaded, f.name) for f in dataclasses.fields(WeightsInfo)}
    return WeightsInfo(**fields)


def read_state_dict(path: str | Path) -> StateDict:
    """Canonical (BasicSR/ours) tensors of any supported generator file, on the CPU, dtypes as stored."""
    return load_checkpoint(path).state_dict


def build_generator(sd: StateDict, path: str | Path = "<state dict>") -> RRDBNet:
    """An RRDBNet whose architecture comes from the tensors, loaded strictly: every network is built here.

    Built on the meta device and then given empty storage, since every weight is overwritten by the load: initialising
    16.7 M parameters first (twice: PyTorch's default, then the paper's scaled Kaiming) is start-up time `esrgan
    upscale` paid for nothing (benchmarks/RESULTS.md, "CPU precision, runtimes and previews").
    """
    config = check_state_dict(sd, path)
    with torch.device("meta"):
        model = RRDBNet(config)
    model = model.to_empty(device="cpu")
    try:
        model.load_state_dict(sd, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights do not fit the RRDBNet they describe: {exc}") from exc
    return model


def load_generator(path: str | Path) -> RRDBNet:
    """The single door from a file to a network: file in, ready RRDBNet (eval mode) out."""
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
    metadata = {
        "format": FORMAT,
        "arch": "RRDBNet",
        "config": json.dumps(config.__dict__),
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
    check_state_dict(sd, path)
    tensors = {k: v.detach().cpu().contiguous() for k, v in FROM_CANONICAL[layout](sd).items()}
    if path.suffix == ".safetensors":
        save_file(tensors, str(path))
    elif path.suffix in (".pth", ".pt"):
        torch.save({"params": tensors} if layout is Layout.BASICSR else tensors, path)
    else:
        raise CheckpointError(f"{path}: expected a .pth, .pt or .safetensors file name, found {path.suffix!r}")


def read_metadata(path: str | Path) -> dict[str, str]:
    with _open_safetensors(path) as f:
        return dict(f.metadata() or {})
