"""One training loop for both ESRGAN stages; the stage only decides which loss terms are added up.

Stage psnr: L = w_pix * L1. Stage gan: L_G = w_percep * L1(VGG19 conv5_4 pre-activation) + w_gan * L_G^Ra + w_pix * L1,
then one discriminator step on the relativistic average loss.

A run directory holds `config.yaml` (resolved), `checkpoint.pt` (a plain dict: weights, optimisers, step, config, RNG
states), `log.csv`, `val.csv`, and at the end the exported generator(s) `g_<stage>.safetensors` (+ `_ema`).
The learning rate is a pure function of the step and the data order a pure function of (seed, sample number), so a
checkpoint's step is all the scheduler and sampler state there is: `--resume` replays the exact same batches.
"""

import contextlib
import copy
import csv
import dataclasses
import hashlib
import logging
import math
import os
import random
import signal
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from torch import nn

from esrgan.models.checkpoints import build_generator, load_generator
from esrgan.models.discriminator import VGGDiscriminator
from esrgan.models.images import list_images
from esrgan.models.rrdbnet import RRDBNet
from esrgan.training.checkpoint import CHECKPOINT, load_run, rng_state, save_checkpoint, set_rng_state
from esrgan.training.config import Config, ConfigError, OptimConfig, from_dict, validate
from esrgan.training.data import PairedPatches, make_loader, read_rgb
from esrgan.training.export import export_generators
from esrgan.training.grow import deepened

log = logging.getLogger(__name__)
LOG_FIELDS = ["step", "lr_g", "l_pix", "l_percep", "l_gan", "l_g", "l_d", "d_real", "d_fake", "it_s", "wall_s"]
VAL_FIELDS = ["step", "psnr_y", "niqe", "psnr_y_ema", "niqe_ema"]  # NIQE in stage gan only


def lr_at(step: int, o: OptimConfig) -> float:
    """Learning rate for the iteration after `step` completed ones."""
    if o.schedule == "constant":
        return o.lr
    if o.schedule == "multistep":
        return o.lr * o.gamma ** sum(step >= m for m in o.milestones)
    start = 0  # cosine_restart, as BasicSR's CosineAnnealingRestartLR
    for period, weight in zip(o.periods, o.restart_weights, strict=True):
        if step < start + period:
            return o.eta_min + weight * 0.5 * (o.lr - o.eta_min) * (1 + math.cos(math.pi * (step - start) / period))
        start += period
    return o.eta_min


def ragan_d_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Relativistic average D loss: BCE(C(x_r) - E[C(x_f)], 1) + BCE(C(x_f) - E[C(x_r)], 0), halved as the official
    code does (the 5e-3 weight of the paper was tuned with that halving)."""
    ones, zeros = torch.ones_like(real), torch.zeros_like(fake)
    loss_real = F.binary_cross_entropy_with_logits(real - fake.mean(), ones)
    loss_fake = F.binary_cross_entropy_with_logits(fake - real.mean(), zeros)
    return (loss_real + loss_fake) / 2


def ragan_g_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """The symmetric generator form: both terms depend on C(x_f), so G learns from real and fake logits."""
    ones, zeros = torch.ones_like(real), torch.zeros_like(fake)
    loss_real = F.binary_cross_entropy_with_logits(real - fake.mean(), zeros)
    loss_fake = F.binary_cross_entropy_with_logits(fake - real.mean(), ones)
    return (loss_real + loss_fake) / 2


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"train.device is {name!r} but CUDA is not available here")
    return device


def set_threads(threads: int) -> None:
    threads = threads or int(os.environ.get("ESRGAN_THREADS", "0") or 0)
    if threads > 0:
        torch.set_num_threads(threads)


def perceptual_network(config: Config, device: torch.device) -> nn.Module | None:
    """Frozen VGG19 returning conv5_4 before its ReLU; None when the perceptual weight is 0.

    Never downloads: a missing weights file is a ConfigError, before any training, saying where to put it.
    """
    if config.loss.perceptual <= 0:
        return None
    from esrgan.models.vgg import load_vgg19

    path = Path(config.loss.vgg_weights) if config.loss.vgg_weights else None
    try:
        net = load_vgg19(("conv5_4",), path=path, download=False)
    except FileNotFoundError as exc:
        raise ConfigError(
            f"The perceptual loss needs ImageNet VGG19 weights: {exc}.\n"
            "Set loss.vgg_weights to the file, or train without the perceptual term: -s loss.perceptual=0"
        ) from None
    return PerceptualFeatures(net).to(device)


class PerceptualFeatures(nn.Module):
    """The conv5_4 tensor out of models.vgg's {layer: activation} dict."""

    def __init__(self, vgg: nn.Module) -> None:
        super().__init__()
        self.vgg = vgg

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.vgg(x)["conv5_4"]


def initial_generator(config: Config) -> RRDBNet:
    """G of a new run: the paper's random init, or the weights of `train.init_g`, which must be the `model` asked or,
    in stage psnr, the same network with fewer RRDBs (grown function-preservingly, `training/grow.py`)."""
    if not config.train.init_g:
        return RRDBNet(config.model)
    path = Path(config.train.init_g)
    if path.is_dir():
        path = path / "g_psnr.safetensors"
    if not path.is_file():
        raise ConfigError(f"train.init_g: {path} does not exist (train stage 1 first, or point at G_PSNR)")
    g = load_generator(path)
    if g.config == config.model:
        return g
    same_but_nb = isinstance(g, RRDBNet) and dataclasses.replace(g.config, nb=config.model.nb) == config.model
    if same_but_nb and g.config.nb < config.model.nb and config.train.stage == "psnr":
        log.info("train.init_g: %s has %d RRDBs; the %d asked start from it (same function)", path, g.config.nb,
                 config.model.nb)  # fmt: skip
        return deepened(g, config.model.nb)
    raise ConfigError(
        f"train.init_g: {path} holds {g.config}, the config asks for {config.model}"
        " (stage psnr can start a deeper trunk from a shallower one; nothing else changes shape)"
    )


def resumed_config(config: Config, saved: Config, source: str) -> Config:
    """`config` with the networks of the checkpoint's own config, as nanoGPT resumes from its `model_args`: a resumed
    run continues the networks it trained, whatever the YAML says now. Another stage is refused."""
    if saved.train.stage != config.train.stage:
        raise ConfigError(
            f"--resume: {source} is a stage {saved.train.stage} run; the config asks for stage {config.train.stage}"
        )
    if (saved.model, saved.discriminator) != (config.model, config.discriminator):
        log.warning(
            "--resume: %s continues its own networks (model %s, discriminator %s), not the config's (%s, %s)",
            source, saved.model, saved.discriminator, config.model, config.discriminator,
        )  # fmt: skip
    resumed = dataclasses.replace(config, model=saved.model, discriminator=saved.discriminator)
    validate(resumed, source)
    return resumed


class Validator:
    """PSNR-Y (crop = scale) of the generator on a folder of HR images, their LR made with MATLAB bicubic once; with
    `niqe`, also the mean NIQE of its outputs, the perceptual measure a GAN stage is judged by (lower is better), over
    the images large enough for it."""

    def __init__(self, folder: Path, scale: int, max_images: int = 0, niqe: bool = False) -> None:
        from esrgan.training.bicubic import downscale_uint8

        images = list_images(folder)[: max_images or None]
        if not images:
            raise ConfigError(f"data.val_dir: {folder} holds no images")
        self.scale, self.niqe = scale, niqe
        self.pairs = []
        for path in images:
            hr = read_rgb(path)
            hr = hr[: hr.shape[0] - hr.shape[0] % scale, : hr.shape[1] - hr.shape[1] % scale]
            self.pairs.append((downscale_uint8(hr, scale), hr))

    @torch.no_grad()
    def __call__(self, g: nn.Module, device: torch.device, channels_last: bool) -> dict[str, float]:
        from esrgan.training.metrics import niqe, psnr_y

        was_training = g.training
        g.eval()
        scores: dict[str, list[float]] = {"psnr_y": [], "niqe": []}
        for lr, hr in self.pairs:
            x = torch.from_numpy(lr.transpose(2, 0, 1).copy()).float().div(255).unsqueeze(0).to(device)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            sr = g(x).float().clamp(0, 1).mul(255).round().byte()[0].permute(1, 2, 0).cpu().numpy()
            scores["psnr_y"].append(psnr_y(sr, hr, crop=self.scale))
            if self.niqe:
                with contextlib.suppress(ValueError):  # under two 96 px blocks, or flat: NIQE is undefined there
                    scores["niqe"].append(niqe(sr, crop=self.scale))
        g.train(was_training)
        return {key: float(np.mean(values)) for key, values in scores.items() if values}


def data_provenance(train_dir: Path, dataset: PairedPatches) -> dict[str, Any]:
    manifest = (train_dir / "manifest.tsv").read_bytes()
    sources = sorted({s.source for s in dataset.subs})
    return {
        "train_dir": str(train_dir),
        "manifest_sha256": hashlib.sha256(manifest).hexdigest(),
        "sub_images": len(dataset.subs),
        "source_images": len(sources),
    }


class StopFlag:
    """SIGTERM or Ctrl-C asks the loop to stop after the current iteration (checkpoint first); a second Ctrl-C
    interrupts at once."""

    def __init__(self) -> None:
        self.set = False
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.set and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.set = True

    def __enter__(self) -> "StopFlag":
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(ValueError):  # not the main thread: leave signals alone
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def train(config: Config, run_dir: Path, resume: bool = False, progress: bool = True) -> dict[str, Any]:
    """Run (or continue) training to `config.train.iters`; returns the final checkpoint dict."""
    from tqdm import tqdm

    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = run_dir / CHECKPOINT
    checkpoint = None
    if resume:
        if not ckpt_path.is_file():
            raise ConfigError(f"--resume: {ckpt_path} does not exist")
        checkpoint = load_run(run_dir)
        config = resumed_config(config, from_dict(checkpoint["config"], str(ckpt_path)), str(ckpt_path))
    elif ckpt_path.exists():
        raise ConfigError(f"{run_dir} already holds a run: pass --resume to continue it or choose another --run-dir")
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))

    t, d_cfg, loss_w = config.train, config.data, config.loss
    pixel_loss = {"l1": F.l1_loss, "l2": F.mse_loss}[loss_w.pixel_criterion]  # validate() named the choices
    set_threads(t.threads)
    device = pick_device(t.device)
    torch.manual_seed(t.seed)
    np.random.seed(t.seed)
    random.seed(t.seed)
    memory_format = torch.channels_last if t.channels_last else torch.contiguous_format
    # Mixed precision keeps fp32 weights and optimiser state; on CPU it is opt-in because only some CPUs have bf16
    # dot products (on the AVX512_BF16 EPYC here 1.8-2.2x faster per step, benchmarks/RESULTS.md).
    amp = (t.amp and device.type == "cuda") or (t.amp_cpu and device.type == "cpu")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed patch sizes: let cuDNN pick its fastest kernels once
    tensorboard = tensorboard_writer(run_dir)

    if not d_cfg.train_dir:
        raise ConfigError("data.train_dir is empty: prepare data with `esrgan data prepare` and point at it")
    train_dir = Path(d_cfg.train_dir)
    dataset = PairedPatches(
        train_dir,
        config.model.scale,
        d_cfg.patch,
        seed=t.seed,
        flip=d_cfg.flip,
        rotate=d_cfg.rotate,
        min_gradient=d_cfg.min_gradient,
        max_redraws=d_cfg.max_redraws,
    )
    validator = None
    if d_cfg.val_dir:
        validator = Validator(Path(d_cfg.val_dir), config.model.scale, d_cfg.val_max_images, niqe=t.stage == "gan")
    vgg = perceptual_network(config, device)

    g = initial_generator(config) if checkpoint is None else build_generator(checkpoint["g"], ckpt_path)
    g = g.to(device).to(memory_format=memory_format)
    use_d = t.stage == "gan" and loss_w.gan > 0
    d = VGGDiscriminator(3, config.discriminator.nf).to(device).to(memory_format=memory_format) if use_d else None
    ema = copy.deepcopy(g).eval().requires_grad_(False) if t.ema_decay > 0 else None
    opt_g = torch.optim.Adam(g.parameters(), lr=config.optim_g.lr, betas=tuple(config.optim_g.betas))
    opt_d = torch.optim.Adam(d.parameters(), lr=config.optim_d.lr, betas=tuple(config.optim_d.betas)) if d else None
    step, val_metrics = 0, {}
    if checkpoint is not None:
        opt_g.load_state_dict(checkpoint["opt_g"])
        if d is not None:
            d.load_state_dict(checkpoint["d"])
            opt_d.load_state_dict(checkpoint["opt_d"])
        if ema is not None and checkpoint.get("ema") is not None:
            ema.load_state_dict(checkpoint["ema"])
        step, val_metrics = checkpoint["step"], checkpoint.get("val", {})
        set_rng_state(checkpoint["rng"])
    g.train()

    provenance = data_provenance(train_dir, dataset)  # the data does not change during a run: hash its manifest once

    def state() -> dict[str, Any]:
        return {
            "stage": t.stage,
            "step": step,
            "config": config.to_dict(),
            "g": g.state_dict(),
            "d": d.state_dict() if d else None,
            "ema": ema.state_dict() if ema else None,
            "opt_g": opt_g.state_dict(),
            "opt_d": opt_d.state_dict() if opt_d else None,
            "rng": rng_state(),
            "val": val_metrics,
            "data": provenance,
        }

    def validate() -> None:
        if validator is None:
            return
        val_metrics.update(step=step, **validator(g, device, t.channels_last))
        if ema is not None:
            val_metrics.update({f"{k}_ema": v for k, v in validator(ema, device, t.channels_last).items()})
        _append_csv(run_dir / "val.csv", VAL_FIELDS, val_metrics)
        if tensorboard is not None:
            for key in VAL_FIELDS[1:]:
                if key in val_metrics:
                    tensorboard.add_scalar(f"val/{key}", val_metrics[key], step)

    loader = make_loader(dataset, d_cfg.batch, step, d_cfg.workers, d_cfg.prefetch, pin_memory=device.type == "cuda")
    batches = iter(loader)
    # a redirected log gets a line a minute, not a carriage-return redraw per step (log.csv holds every log_every row)
    bar = tqdm(
        total=t.iters,
        initial=step,
        desc=f"{config.name} ({t.stage})",
        disable=not progress,
        smoothing=0.05,
        mininterval=0.1 if sys.stderr.isatty() else 60.0,
    )
    last_log_time, last_log_step, start_time = time.perf_counter(), step, time.perf_counter()
    with StopFlag() as stop:
        while step < t.iters and not stop.set:
            lr_img, hr = next(batches)
            lr_img = lr_img.to(device, non_blocking=True).contiguous(memory_format=memory_format)
            hr = hr.to(device, non_blocking=True).contiguous(memory_format=memory_format)
            for group in opt_g.param_groups:
                group["lr"] = lr_at(step, config.optim_g)
            if opt_d is not None:
                for group in opt_d.param_groups:
                    group["lr"] = lr_at(step, config.optim_d)

            # Generator step.
            losses: dict[str, torch.Tensor] = {}
            if d is not None:
                d.requires_grad_(False)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                sr = g(lr_img)
                total = torch.zeros((), device=device)
                if loss_w.pixel > 0:
                    losses["l_pix"] = pixel_loss(sr.float(), hr)
                    total = total + loss_w.pixel * losses["l_pix"]
                if vgg is not None:
                    with torch.no_grad():
                        target_features = vgg(hr)
                    losses["l_percep"] = F.l1_loss(vgg(sr).float(), target_features.float())
                    total = total + loss_w.perceptual * losses["l_percep"]
                if d is not None:
                    with torch.no_grad():
                        real_logits = d(hr).float()
                    losses["l_gan"] = ragan_g_loss(real_logits, d(sr).float())
                    total = total + loss_w.gan * losses["l_gan"]
            losses["l_g"] = total
            opt_g.zero_grad(set_to_none=True)
            total.backward()
            opt_g.step()

            # Discriminator step, one per G step.
            if d is not None:
                d.requires_grad_(True)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                    real_logits = d(hr).float()
                    fake_logits = d(sr.detach()).float()
                    losses["l_d"] = ragan_d_loss(real_logits, fake_logits)
                opt_d.zero_grad(set_to_none=True)
                losses["l_d"].backward()
                opt_d.step()
                losses["d_real"], losses["d_fake"] = real_logits.mean().detach(), fake_logits.mean().detach()

            if ema is not None:
                with torch.no_grad():
                    for e, p in zip(ema.parameters(), g.parameters(), strict=True):
                        e.lerp_(p, 1 - t.ema_decay)
                    for e, b in zip(ema.buffers(), g.buffers(), strict=True):
                        e.copy_(b)
            step += 1
            bar.update(1)

            if step % t.log_every == 0 or step == t.iters:
                now = time.perf_counter()
                values = {k: float(v.detach()) for k, v in losses.items()}
                if not all(math.isfinite(v) for v in values.values()):
                    save_checkpoint(run_dir / "checkpoint_nonfinite.pt", state())
                    raise FloatingPointError(f"step {step}: non-finite loss {values}; state saved for inspection")
                row = {
                    "step": step,
                    "lr_g": opt_g.param_groups[0]["lr"],
                    **values,
                    "it_s": (step - last_log_step) / max(now - last_log_time, 1e-9),
                    "wall_s": now - start_time,
                }
                _append_csv(run_dir / "log.csv", LOG_FIELDS, row)
                if tensorboard is not None:
                    for key, value in row.items():
                        if key != "step":
                            tensorboard.add_scalar(f"train/{key}", value, step)
                bar.set_postfix({k: f"{v:.4g}" for k, v in values.items() if k in ("l_pix", "l_g", "l_d")})
                last_log_time, last_log_step = now, step
            if step % t.val_every == 0 or step == t.iters:
                validate()
            if step % t.ckpt_every == 0:
                save_checkpoint(ckpt_path, state())
            if t.snapshot_every and step % t.snapshot_every == 0:
                export_generators(run_dir, state(), suffix=f"_{step:07d}")
    bar.close()
    if tensorboard is not None:
        tensorboard.close()
    final = state()
    save_checkpoint(ckpt_path, final)
    if step >= t.iters:
        export_generators(run_dir, final)
    return final


def tensorboard_writer(run_dir: Path) -> Any:
    """A TensorBoard writer into the run directory when the `tensorboard` package is installed; CSV logs always."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(run_dir / "tensorboard"))


def _append_csv(path: Path, fields: list[str], row: dict[str, Any]) -> None:
    """Append a row; a file that exists keeps its own header (a run resumed by a newer version stays one table)."""
    new = not path.exists()
    if not new:
        with open(path, newline="") as f:
            fields = next(csv.reader(f), fields)
    with open(path, "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        if new:
            writer.writeheader()
        writer.writerow(row)
