"""The generator architectures this project builds, as plain configs, and how each is read off tensor shapes.

Torch-free on purpose: a weights file is described from its names and shapes alone (`models/layouts.py`), so an API
whose workers run elsewhere checks its model files without importing torch. The networks themselves are
`models/rrdbnet.py` (RRDBNet) and `models/srvgg.py` (SRVGGNetCompact); `models/checkpoints.py` builds them.

Canonical keys: RRDBNet's are BasicSR's (`conv_first`, `body.N.rdb1.conv1`, ...), SRVGGNetCompact's are Real-ESRGAN's
(`body.N`, a plain list of convs and PReLUs). The two never share `conv_first.weight`, which tells them apart.
"""

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import ClassVar

Shape = tuple[int, ...]
Shapes = Mapping[str, Shape]

# Scale -> pixel-unshuffle factor: the trunk always upsamples 4x, so x2 and x1 fold 2x2 or 4x4 pixels into channels.
UNSHUFFLE = {4: 1, 2: 2, 1: 4}


class ArchitectureError(ValueError):
    """Tensors that describe no network this project builds; the message says what was expected and found."""


def _positive(config: object, names: tuple[str, ...]) -> None:
    for name in names:
        if getattr(config, name) < 1:
            raise ValueError(f"{type(config).__name__}.{name} must be positive, got {getattr(config, name)}")


@dataclass(frozen=True)
class RRDBConfig:
    in_ch: int = 3
    out_ch: int = 3
    nf: int = 64  # feature channels
    nb: int = 23  # RRDB blocks in the trunk
    gc: int = 32  # growth channels inside a dense block
    scale: int = 4  # 4 natively; 2 and 1 put a pixel-unshuffle in front, as the later official releases do

    arch: ClassVar[str] = "RRDBNet"

    def __post_init__(self) -> None:
        if self.scale not in UNSHUFFLE:
            raise ValueError(f"RRDBNet supports scale 1, 2 or 4, not {self.scale}")
        _positive(self, ("in_ch", "out_ch", "nf", "nb", "gc"))

    @property
    def unshuffle(self) -> int:
        """Pixel-unshuffle factor in front of conv_first (1 at scale 4); input sides must be multiples of it."""
        return UNSHUFFLE[self.scale]


@dataclass(frozen=True)
class SRVGGConfig:
    """Real-ESRGAN's SRVGGNetCompact with PReLU activations, as every published file has it (`act_type='prelu'`).

    realesr-general-x4v3 and its -wdn twin: num_feat 64, num_conv 32; realesr-animevideov3: num_feat 64, num_conv 16.
    The relu and leakyrelu variants carry no activation tensors, so a file cannot say which of the two it is: they are
    not recognised (`models/layouts.py` needs the PReLU weights at `body.1`).
    """

    in_ch: int = 3
    out_ch: int = 3
    num_feat: int = 64
    num_conv: int = 16  # 3x3 convs between the first and the last one
    scale: int = 4  # the pixel shuffle's factor (Real-ESRGAN's `upscale`)

    arch: ClassVar[str] = "SRVGGNetCompact"

    def __post_init__(self) -> None:
        _positive(self, ("in_ch", "out_ch", "num_feat", "num_conv", "scale"))

    @property
    def unshuffle(self) -> int:
        """No pixel-unshuffle in front: any input size works (1, as RRDBNet's at scale 4)."""
        return 1


ArchConfig = RRDBConfig | SRVGGConfig


def describe(config: ArchConfig) -> dict[str, int | str]:
    """The architecture as plain fields: its name under `arch`, then every hyper-parameter (for JSON and metadata)."""
    return {"arch": config.arch, **asdict(config)}


def block_count(keys: Iterable[str], prefix: str) -> int:
    """Number of numbered children under `prefix` (highest index + 1), like spandrel's `get_seq_len`."""
    indices = [int(k[len(prefix) :].split(".", 1)[0]) for k in keys if k.startswith(prefix)]
    return max(indices) + 1 if indices else 0


def _conv(name: str, cin: int, cout: int) -> dict[str, Shape]:
    return {f"{name}.weight": (cout, cin, 3, 3), f"{name}.bias": (cout,)}


def _require_convs(shapes: Shapes, arch: str, keys: tuple[str, ...]) -> None:
    for key in keys:
        if key not in shapes:
            raise ArchitectureError(f"not an {arch} state dict: missing {key!r}")
        if len(shapes[key]) != 4:
            raise ArchitectureError(f"not an {arch} state dict: convs must be 4-d, {key} is {shapes[key]}")


# --- RRDBNet ----------------------------------------------------------------------------------------------------------


def infer_rrdb(shapes: Shapes) -> RRDBConfig:
    """nf, in/out channels from the end convs, nb from the block indices, gc from the first dense conv, and scale from
    the pixel-unshuffle factor folded into conv_first (its in/out channel ratio)."""
    _require_convs(shapes, "RRDBNet", ("conv_first.weight", "conv_last.weight", "body.0.rdb1.conv1.weight"))
    first, last = shapes["conv_first.weight"], shapes["conv_last.weight"]
    nf, out_ch, folded = first[0], last[0], first[1]
    nb, gc = block_count(shapes, "body."), shapes["body.0.rdb1.conv1.weight"][0]
    for scale, unshuffle in UNSHUFFLE.items():
        factor = unshuffle**2
        if folded % factor == 0 and folded // factor == out_ch:
            return RRDBConfig(in_ch=folded // factor, out_ch=out_ch, nf=nf, nb=nb, gc=gc, scale=scale)
    raise ArchitectureError(f"cannot tell the scale: conv_first takes {folded} channels but conv_last gives {out_ch}")


def rrdb_shapes(config: RRDBConfig) -> dict[str, Shape]:
    nf, gc = config.nf, config.gc
    shapes = _conv("conv_first", config.in_ch * config.unshuffle**2, nf)
    for b in range(config.nb):
        for r in (1, 2, 3):
            for i in range(1, 6):
                shapes |= _conv(f"body.{b}.rdb{r}.conv{i}", nf + (i - 1) * gc, nf if i == 5 else gc)
    for name in ("conv_body", "conv_up1", "conv_up2", "conv_hr"):
        shapes |= _conv(name, nf, nf)
    return shapes | _conv("conv_last", nf, config.out_ch)


# --- SRVGGNetCompact --------------------------------------------------------------------------------------------------


def infer_srvgg(shapes: Shapes) -> SRVGGConfig:
    """`body` is conv, PReLU, num_conv x (conv, PReLU), conv: 2 * num_conv + 3 entries. num_feat and the input channels
    come from the first conv; the last conv gives out_ch * scale^2 channels to the pixel shuffle, and out_ch is taken
    equal to in_ch (as Real-ESRGAN and spandrel do: the channel count alone cannot split out_ch from scale)."""
    length = block_count(shapes, "body.")
    if length < 3 or length % 2 == 0:
        raise ArchitectureError(f"not an SRVGGNetCompact state dict: its body has {length} entries, not 2 * n + 3")
    last = f"body.{length - 1}.weight"
    _require_convs(shapes, "SRVGGNetCompact", ("body.0.weight", last))
    num_feat, in_ch = shapes["body.0.weight"][:2]
    shuffled = shapes[last][0]
    scale = math.isqrt(shuffled // in_ch) if shuffled % in_ch == 0 else 0
    if scale < 1 or scale * scale * in_ch != shuffled:
        raise ArchitectureError(
            f"cannot tell the scale: the last conv gives {shuffled} channels, not {in_ch} x a square (out_ch = in_ch)"
        )
    return SRVGGConfig(in_ch=in_ch, out_ch=in_ch, num_feat=num_feat, num_conv=(length - 3) // 2, scale=scale)


def srvgg_shapes(config: SRVGGConfig) -> dict[str, Shape]:
    nf = config.num_feat
    shapes = _conv("body.0", config.in_ch, nf)
    for i in range(config.num_conv + 1):
        shapes[f"body.{2 * i + 1}.weight"] = (nf,)  # PReLU, one slope per channel
        if i < config.num_conv:
            shapes |= _conv(f"body.{2 * i + 2}", nf, nf)
    return shapes | _conv(f"body.{2 * config.num_conv + 2}", nf, config.out_ch * config.scale**2)


# --- either -----------------------------------------------------------------------------------------------------------


def infer_config(shapes: Shapes) -> ArchConfig:
    """The architecture canonical tensors describe: RRDBNet when they have `conv_first`, else SRVGGNetCompact."""
    if "conv_first.weight" in shapes:
        return infer_rrdb(shapes)
    if "body.0.weight" in shapes:
        return infer_srvgg(shapes)
    raise ArchitectureError("neither an RRDBNet (conv_first.weight) nor an SRVGGNetCompact (body.0.weight)")


def expected_shapes(config: ArchConfig) -> dict[str, Shape]:
    """Every canonical key and its shape for `config`, without building (and initialising) a network."""
    return rrdb_shapes(config) if isinstance(config, RRDBConfig) else srvgg_shapes(config)


def check_shapes(shapes: Shapes) -> ArchConfig:
    """The architecture `shapes` describe, after checking every key and shape against it."""
    config = infer_config(shapes)
    want = expected_shapes(config)
    missing = [k for k in want if k not in shapes]
    unexpected = [k for k in shapes if k not in want]
    wrong = [f"{k}: expected {want[k]}, found {shapes[k]}" for k in want if k in shapes and shapes[k] != want[k]]
    if missing or unexpected or wrong:
        parts = [
            f"missing keys {missing[:8]}" if missing else "",
            f"unexpected keys {unexpected[:8]}" if unexpected else "",
            f"wrong shapes [{'; '.join(wrong[:4])}]" if wrong else "",
        ]
        problems = ", ".join(p for p in parts if p)
        raise ArchitectureError(f"does not match the {config.arch} its tensors describe ({config}): {problems}")
    return config
