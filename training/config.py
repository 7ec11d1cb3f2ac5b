"""Typed training configuration: plain dataclasses filled from YAML, checked once, before anything heavy starts.

A YAML file has the sections below (`model`, `discriminator`, `data`, `train`, `optim_g`, `optim_d`, `loss`); a key
it leaves out keeps its default, and an unknown key or a value of the wrong type is an error that names it.
Command-line overrides use the same dotted names (`train.iters=20`). `model` is the generator's `RRDBConfig` itself,
so its fields and checks live in one place (`models/rrdbnet.py`).
"""

import dataclasses
import types
import typing
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from esrgan.models.rrdbnet import RRDBConfig

CONFIG_DIR = Path(__file__).parent / "configs"


class ConfigError(ValueError):
    """A configuration that cannot run; the message names the file and the key."""


@dataclass
class DiscriminatorConfig:
    nf: int = 64  # base width of the VGG128-style discriminator (stage gan)


@dataclass
class DataConfig:
    train_dir: str = ""  # output of `esrgan data prepare`
    val_dir: str = ""  # folder of HR images for periodic validation ("" = no validation)
    val_max_images: int = 0  # validate on the first N images only (0 = all)
    patch: int = 128  # HR patch side; LR patch is patch // scale
    batch: int = 16
    workers: int = 2  # DataLoader worker processes (0 = load in the training process)
    prefetch: int = 4  # batches prefetched per worker
    flip: bool = True
    rotate: bool = True
    min_gradient: float = 0.0  # texture threshold on mean |luma gradient| in [0, 1] units (0 = off; see data.py)
    max_redraws: int = 0  # redraws of a flat patch before the most textured draw is kept


@dataclass
class OptimConfig:
    lr: float = 2e-4
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    weight_decay: float = 0.0
    schedule: str = "multistep"  # "multistep" | "cosine_restart" | "constant"
    milestones: list[int] = field(default_factory=list)  # multistep: lr *= gamma at each
    gamma: float = 0.5
    periods: list[int] = field(default_factory=list)  # cosine_restart: cycle lengths
    restart_weights: list[float] = field(default_factory=list)  # cosine_restart: peak lr factor per cycle
    eta_min: float = 1e-7  # cosine_restart: floor


@dataclass
class LossConfig:
    pixel: float = 1.0  # weight of the pixel term
    pixel_criterion: str = "l1"  # "l1" (the paper's) | "l2": PSNR is an L2 measure, for a short fine-tune at the end
    perceptual: float = 0.0  # VGG19 conv5_4 (pre-activation) L1 weight
    gan: float = 0.0  # relativistic average GAN weight
    vgg_weights: str = ""  # VGG19 ImageNet weights file ("" = models.vgg's default location)


@dataclass
class TrainConfig:
    stage: str = "psnr"  # "psnr" (pixel loss only) | "gan" (adds perceptual + RaGAN, trains a discriminator)
    iters: int = 1_000_000
    init_g: str = ""  # generator weights to start from (.safetensors or a run directory); stage gan needs one
    ema_decay: float = 0.0  # EMA of G (0 = off; 0.999 as BasicSR)
    seed: int = 0
    device: str = "auto"  # "auto" | "cpu" | "cuda" | "cuda:N"
    amp: bool = True  # bf16 autocast on CUDA
    amp_cpu: bool = False  # bf16 autocast on CPU too: pays only on CPUs with native bf16 (AVX512_BF16, AMX)
    channels_last: bool = True  # faster convs on CPU (3x3 conv 522 vs 288 GFLOP/s NCHW, benchmarks/RESULTS.md) and CUDA
    threads: int = 0  # torch intra-op threads (0 = $ESRGAN_THREADS, else torch's default)
    log_every: int = 10
    val_every: int = 5000
    ckpt_every: int = 1000
    snapshot_every: int = 0  # also export G (and its EMA) as g_<stage>_<step>.safetensors every N iterations; 0 = off


@dataclass
class Config:
    name: str = "esrgan"
    model: RRDBConfig = field(default_factory=RRDBConfig)  # the generator
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    optim_g: OptimConfig = field(default_factory=OptimConfig)
    optim_d: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _coerce(value: Any, kind: Any, where: str) -> Any:
    origin = typing.get_origin(kind)
    if origin is list:
        (item,) = typing.get_args(kind)
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return [_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin in (typing.Union, types.UnionType):
        raise ConfigError(f"{where}: union types are not supported in configs")
    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return int(value)
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if kind is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    if dataclasses.is_dataclass(kind):
        return _build(kind, value, where)
    raise ConfigError(f"{where}: unsupported type {kind}")


def _build(cls: type, data: Any, where: str) -> Any:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}")
    kwargs = {k: _coerce(v, hints[k], f"{where}.{k}" if where else k) for k, v in data.items()}
    try:
        return cls(**kwargs)
    except ValueError as exc:  # a dataclass's own check (RRDBConfig's)
        raise ConfigError(f"{where}: {exc}") from None


def from_dict(data: dict[str, Any], source: str = "<dict>") -> Config:
    try:
        config = _build(Config, data, "")
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    validate(config, source)
    return config


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """`section.key=value` pairs (values parsed as YAML) applied onto a raw config mapping."""
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r}: expected section.key=value")
        node = data
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {part} is not a section")
        node[leaf] = yaml.safe_load(raw)
    return data


def load_config(path: str | Path, overrides: list[str] | None = None) -> Config:
    """Read a YAML config (a path, or the name of one in training/configs/) and apply overrides."""
    path = Path(path)
    if not path.exists():
        shipped = CONFIG_DIR / (path.name if path.suffix in (".yaml", ".yml") else f"{path.name}.yaml")
        path = shipped if shipped.exists() else path
    if not path.is_file():
        raise ConfigError(f"{path}: no such config (shipped ones: {', '.join(p.name for p in shipped_configs())})")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config is a YAML mapping")
    return from_dict(apply_overrides(data, overrides or []), str(path))


def shipped_configs() -> list[Path]:
    return sorted(CONFIG_DIR.glob("*.yaml"))


def validate(config: Config, source: str = "<config>") -> None:
    """Refuse settings that would fail later or silently train something else than asked."""
    problems = []
    m, d, t, loss = config.model, config.data, config.train, config.loss
    if m.in_ch != 3 or m.out_ch != 3:
        problems.append(f"model.in_ch and model.out_ch must be 3: training data is RGB (got {m.in_ch}, {m.out_ch})")
    if config.discriminator.nf < 1:
        problems.append("discriminator.nf must be positive")
    if d.patch < 1 or d.patch % m.scale:
        problems.append(f"data.patch {d.patch} must be a positive multiple of model.scale {m.scale}")
    if d.batch < 1 or d.workers < 0 or d.prefetch < 1 or d.max_redraws < 0 or d.min_gradient < 0:
        problems.append("data.batch and data.prefetch must be >= 1; workers, max_redraws, min_gradient >= 0")
    if t.stage not in ("psnr", "gan"):
        problems.append(f"train.stage must be 'psnr' or 'gan', not {t.stage!r}")
    if t.iters < 1 or t.log_every < 1 or t.val_every < 1 or t.ckpt_every < 1:
        problems.append("train.iters, log_every, val_every and ckpt_every must be >= 1")
    if t.snapshot_every < 0:
        problems.append("train.snapshot_every must be >= 0 (0 = no snapshots)")
    if not 0 <= t.ema_decay < 1:
        problems.append(f"train.ema_decay must be in [0, 1), not {t.ema_decay}")
    if min(loss.pixel, loss.perceptual, loss.gan) < 0:
        problems.append("loss weights must be >= 0")
    if loss.pixel_criterion not in ("l1", "l2"):
        problems.append(f"loss.pixel_criterion must be 'l1' or 'l2', not {loss.pixel_criterion!r}")
    if t.stage == "psnr" and (loss.perceptual or loss.gan):
        problems.append(
            "stage psnr trains on the pixel loss only: set loss.perceptual and loss.gan to 0, or use stage gan"
        )
    if t.stage == "gan" and loss.gan > 0 and d.patch != 128:
        problems.append(f"the VGG128 discriminator takes 128 px HR patches: data.patch is {d.patch}")
    if t.stage == "gan" and not t.init_g:
        problems.append("stage gan starts from G_PSNR: set train.init_g to its .safetensors or run directory")
    if loss.pixel + loss.perceptual + loss.gan <= 0:
        problems.append("at least one loss weight must be positive")
    for name in ("optim_g", "optim_d"):
        o: OptimConfig = getattr(config, name)
        if o.lr <= 0 or len(o.betas) != 2 or not all(0 <= b < 1 for b in o.betas):
            problems.append(f"{name}: lr must be > 0 and betas two numbers in [0, 1)")
        if o.schedule not in ("multistep", "cosine_restart", "constant"):
            problems.append(f"{name}.schedule must be multistep, cosine_restart or constant, not {o.schedule!r}")
        if o.schedule == "cosine_restart" and (not o.periods or len(o.periods) != len(o.restart_weights)):
            problems.append(f"{name}: cosine_restart needs periods and restart_weights of the same length")
        if sorted(o.milestones) != o.milestones:
            problems.append(f"{name}.milestones must be increasing")
    if problems:
        raise ConfigError(f"{source}: " + "; ".join(problems))
