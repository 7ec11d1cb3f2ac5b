"""Step 4, training: seconds per iteration of both stages (stage 2 with the paper's whole loss: VGG19 conv5_4 with
random weights, as none can be downloaded, RaGAN with the VGG128 discriminator, L1) for the embedded and the
paper-size networks, with bf16 autocast (on a CPU only where it runs bf16 natively: emulated, a quick run's iteration
took 8 s on an AVX2-only EPYC) and channels_last, on the travelling photos; a run of the embedded network's stage 1
from scratch whose loss must fall; and a resumed run whose next step must equal the uninterrupted one's."""

import csv
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from benchmarks.gpu.base import PHOTOS, Recorder, Skip
from benchmarks.training import MODELS, random_vgg19, time_training
from esrgan.models.engine import cpu_has_native_bf16
from esrgan.training.config import load_config
from esrgan.training.data import prepare
from esrgan.training.train import train


class Runs:
    """Where this step's runs live, and the settings they share."""

    def __init__(self, rec: Recorder, work: Path) -> None:
        self.rec, self.work = rec, work
        self.data = work / "photos_x4"
        self.batch = 2 if rec.quick else 16  # the paper's batch on the GPU; a CPU takes seconds per patch
        self.workers = 0 if rec.quick else 4
        self.precision = "bf16" if rec.device != "cpu" or cpu_has_native_bf16() else "fp32"

    def overrides(self, iters: int) -> list[str]:
        """The embedded network's stage 1 on the photos (the paper's recipe otherwise), one log row per step."""
        arch = [f"model.{k}={v}" for k, v in MODELS["compact"].items()]
        return [
            *arch,
            f"data.train_dir={self.data}",
            f"data.batch={self.batch}",
            f"data.workers={self.workers}",
            f"train.device={self.rec.device}",
            f"train.amp_cpu={self.precision == 'bf16'}",
            f"train.iters={iters}",
            "train.log_every=1",
            "train.val_every=1000000",
            "train.ckpt_every=1000000",
        ]

    def losses(self, run: Path) -> list[float]:
        with open(run / "log.csv") as f:
            return [float(row["l_pix"]) for row in csv.DictReader(f)]


def prepare_photos(runs: Runs) -> dict[str, Any]:
    subs = prepare(PHOTOS, runs.data, scale=4, fmt="npy", progress=False)
    return {"photos": len({s.source for s in subs}), "sub_images": len(subs), "hr_side": subs[0].height}


def speed(runs: Runs, name: str, stage: str, vgg: Path) -> dict[str, Any]:
    if runs.rec.quick and name == "paper":
        raise Skip("quick mode: the paper-size rows take minutes on a CPU (the same code as the embedded rows)")
    iters = 1 if runs.rec.quick else 10
    kwargs = {"device": runs.rec.device, "batch": runs.batch, "workers": runs.workers}
    seconds = time_training(stage, MODELS[name], runs.data, runs.work, iters, vgg, runs.precision, **kwargs)
    return {"s_per_iter": seconds, "iter_per_h": 3600 / seconds, "batch": runs.batch, "timed_iters": iters}


def loss_falls(runs: Runs, iters: int) -> dict[str, Any]:
    run = runs.work / "falls"
    train(load_config("esrgan_psnr_x4", runs.overrides(iters)), run, progress=False)
    losses = runs.losses(run)
    k = max(2, iters // 10)
    first, last = sum(losses[:k]) / k, sum(losses[-k:]) / k
    figures = {"iterations": len(losses), "first_l1": first, "last_l1": last, "window": k}
    if len(losses) != iters or not last < first:
        raise AssertionError(f"the L1 loss did not fall: {figures}")
    return figures


def resume_matches(runs: Runs, k: int) -> dict[str, Any]:
    """Run A: k + 1 steps at once. Run B: k steps, then --resume to k + 1. Step k + 1 must be bit-identical."""
    straight, resumed = runs.work / "straight", runs.work / "resumed"
    train(load_config("esrgan_psnr_x4", runs.overrides(k + 1)), straight, progress=False)
    train(load_config("esrgan_psnr_x4", runs.overrides(k)), resumed, progress=False)
    train(load_config("esrgan_psnr_x4", runs.overrides(k + 1)), resumed, resume=True, progress=False)
    a, b = runs.losses(straight), runs.losses(resumed)
    figures = {"steps": k + 1, "straight_next": a[-1], "resumed_next": b[-1], "first_steps_equal": a[:k] == b[:k]}
    if len(a) != k + 1 or len(b) != k + 1 or a[-1] != b[-1]:
        cause = "" if a[:k] == b[:k] else "; the steps before differ too: not reproducible even without a resume"
        raise AssertionError(f"step {k + 1} differs after a resume: {a} vs {b}{cause}")
    return figures


def run(rec: Recorder) -> None:
    with TemporaryDirectory(prefix="gpu-check-train-") as tmp:
        runs = Runs(rec, Path(tmp))
        rec.check("data: the travelling photos, prepared (x4, npy)", prepare_photos, runs)
        vgg = random_vgg19(runs.work / "vgg19_random.pth")
        for name, label in (("compact", "embedded"), ("paper", "paper-size")):
            for stage, number in (("psnr", 1), ("gan", 2)):
                how = "bf16 autocast" if runs.precision == "bf16" else "fp32 (this CPU has no native bf16)"
                what = f"s/iter {label} stage {number}, batch {runs.batch}, HR 128, {how}, channels_last"
                rec.check(what, speed, runs, name, stage, vgg, need_s=2 if rec.quick else 15)
        iters = 6 if rec.quick else 300
        falls = f"embedded stage 1 from scratch, {iters} iterations: the loss falls"
        rec.check(falls, loss_falls, runs, iters, need_s=2 if rec.quick else 20)
        rec.check("resume from a checkpoint gives the same next step", resume_matches, runs, 2 if rec.quick else 3)
