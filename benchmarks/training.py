"""Training speed through the real loop (`training.train.train`) and data-pipeline throughput against its need.

    nice -n 10 .venv/bin/python -m benchmarks.training [--iters 3] [--models compact,paper] [--precisions fp32,bf16]

(Run as a module from the repository root: as a script, this file's name would shadow the `training` package.)

Each row runs `train()` for 1 + `--iters` iterations at the paper's batch 16 and HR patch 128 and times the iterations
after the first (the first pays for start-up), in fp32 and with bf16 autocast (`train.amp_cpu`: fp32 weights, bf16
convolutions; it pays only on CPUs with native bf16 dot products). Stage 2 runs the full loss: VGG19 conv5_4
perceptual (weights are random here, as no ImageNet file is on this machine; the cost is identical), RaGAN with the
VGG128 discriminator, and L1. Ratios are against stage 1 of the paper-size model in fp32 and against the same row
in fp32, both measured in the same run. The data rows time `PairedPatches` over a prepared set (`--data`, else a
synthetic one made here) in-process and through the DataLoader, and compare with the rate the fastest measured
training configuration needs.
"""

import argparse
import csv
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from esrgan.models.vgg import LAYER_NAMES
from esrgan.training.config import load_config
from esrgan.training.data import PairedPatches, make_loader, prepare
from esrgan.training.train import train

MODELS = {"compact": {"nf": 32, "nb": 6, "gc": 16}, "paper": {"nf": 64, "nb": 23, "gc": 32}}
VGG_WIDTHS = (64, 128, 256, 512, 512)


def model_label(name: str) -> str:
    arch = MODELS[name]
    return f"{name} nf={arch['nf']} nb={arch['nb']} gc={arch['gc']}"


def random_vgg19(path: Path) -> Path:
    """torchvision-keyed VGG19 `features` weights up to conv5_4, random: same cost as the real ones."""
    sd, in_ch = {}, 3
    for index, name in enumerate(LAYER_NAMES[: LAYER_NAMES.index("conv5_4") + 1]):
        if name.startswith("conv"):
            out_ch = VGG_WIDTHS[int(name[4]) - 1]
            sd[f"features.{index}.weight"] = torch.randn(out_ch, in_ch, 3, 3) * 0.05
            sd[f"features.{index}.bias"] = torch.zeros(out_ch)
            in_ch = out_ch
    torch.save(sd, path)
    return path


def synthetic_set(root: Path) -> Path:
    """Eight 480 px photos-in-miniature (smooth waves plus noise), prepared like real data."""
    rng = np.random.default_rng(0)
    hr = root / "hr"
    hr.mkdir(parents=True)
    yy, xx = np.mgrid[0:480, 0:480]
    for i in range(8):
        waves = [np.sin(rng.uniform(0.02, 0.2) * yy + rng.uniform(0.02, 0.2) * xx) for _ in range(3)]
        img = 0.5 + 0.3 * np.stack(waves, -1) + 0.05 * rng.standard_normal((480, 480, 3))
        Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8)).save(hr / f"{i}.png")
    prepare(hr, root / "sub", scale=4, fmt="npy", progress=False)
    return root / "sub"


def time_training(
    stage: str,
    arch: dict[str, int],
    data: Path,
    work: Path,
    iters: int,
    vgg: Path,
    precision: str,
    *,
    device: str = "cpu",
    batch: int = 16,
    workers: int = 1,
) -> float:
    """Seconds per iteration after the first, read from the run's own log. bf16 is autocast on either device
    (`train.amp` on CUDA, `train.amp_cpu` on the CPU); benchmarks/gpu_check.py runs this on CUDA too."""
    bf16 = precision == "bf16"
    overrides = [f"model.{k}={v}" for k, v in arch.items()] + [f"train.amp={bf16}", f"train.amp_cpu={bf16}"]
    overrides += [f"data.train_dir={data}", f"data.workers={workers}", f"data.batch={batch}", f"train.device={device}"]
    overrides += [f"train.iters={iters + 1}", "train.log_every=1"]
    overrides += ["train.val_every=1000000", "train.ckpt_every=1000000"]
    if stage == "gan":
        init = work / f"init_{arch['nf']}_{arch['nb']}"
        if not (init / "g_psnr.safetensors").exists():
            tiny = [*overrides, "train.iters=1", "data.batch=1"]
            train(load_config("esrgan_psnr_x4", tiny), init, progress=False)
        overrides += [f"train.init_g={init}", f"loss.vgg_weights={vgg}"]
    run = work / f"{stage}_{arch['nf']}_{arch['nb']}_{precision}"
    train(load_config(f"esrgan_{stage}_x4", overrides), run, progress=False)
    with open(run / "log.csv") as f:
        wall = [float(r["wall_s"]) for r in csv.DictReader(f)]
    return (wall[-1] - wall[0]) / (len(wall) - 1)


def bare_step_seconds(arch: dict[str, int], iters: int) -> float:
    """The floor: G forward + L1 + backward + Adam on random tensors in memory, channels_last, no loop around it."""
    from esrgan.models.rrdbnet import RRDBConfig, RRDBNet

    g = RRDBNet(RRDBConfig(**arch)).to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(g.parameters(), lr=2e-4)
    lr = torch.rand(16, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    hr = torch.rand(16, 3, 128, 128).contiguous(memory_format=torch.channels_last)
    times = []
    for _ in range(iters + 1):
        start = time.perf_counter()
        loss = torch.nn.functional.l1_loss(g(lr), hr)
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - start)
    return float(np.mean(times[1:]))


def patches_per_second(dataset: PairedPatches, workers: int, count: int = 96) -> float:
    if workers == 0:
        start = time.perf_counter()
        for n in range(count):
            dataset[n]
        return count / (time.perf_counter() - start)
    batches = iter(make_loader(dataset, batch=16, start_step=0, workers=workers, prefetch=4))
    next(batches)  # worker start-up
    start = time.perf_counter()
    for _ in range(count // 16):
        next(batches)
    return (count // 16) * 16 / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=3, help="timed iterations per row")
    parser.add_argument("--models", default="compact,paper")
    parser.add_argument("--stages", default="psnr,gan")
    parser.add_argument("--precisions", default="fp32,bf16", help="fp32 and/or bf16 (CPU autocast)")
    parser.add_argument("--data", type=Path, help="a prepared set (esrgan data prepare); default: synthetic")
    args = parser.parse_args()

    cpu = platform.processor() or platform.machine()
    print(f"# {cpu}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    print(f"# {time.strftime('%Y-%m-%d %H:%M')}, python {sys.version.split()[0]}, batch 16, HR patch 128, CPU")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = args.data or synthetic_set(work / "data")
        vgg = random_vgg19(work / "vgg19.pth")
        results = {}
        bare = {}
        for name in args.models.split(","):
            bare[name] = bare_step_seconds(MODELS[name], args.iters)
            print(f"  measured {name} bare G step: {bare[name]:.2f} s/iter", flush=True)
            for stage in args.stages.split(","):
                for precision in args.precisions.split(","):
                    seconds = time_training(stage, MODELS[name], data, work, args.iters, vgg, precision)
                    results[(name, stage, precision)] = seconds
                    print(f"  measured {name} {stage} {precision}: {seconds:.2f} s/iter", flush=True)
        base = results.get(("paper", "psnr", "fp32"))
        print("\n| model | stage | precision | s/iter | iter/h | patches/s needed | vs paper stage 1 fp32 | vs fp32 |"
              " vs bare G step |")  # fmt: skip
        print("|---|---|---|---|---|---|---|---|---|")
        for (name, stage, precision), seconds in results.items():
            ratio = f"{base / seconds:.2f}x" if base else "n/a"
            fp32 = results.get((name, stage, "fp32"))
            label = model_label(name)
            speed = f"{seconds:.2f} | {3600 / seconds:,.0f} | {16 / seconds:.1f}"
            vs_fp32 = f"{fp32 / seconds:.2f}x" if fp32 else "n/a"
            cells = f"{speed} | {ratio} | {vs_fp32} | {seconds / bare[name]:.2f}x"
            print(f"| {label} | {stage} | {precision} | {cells} |")
        for name, seconds in bare.items():
            speed = f"{seconds:.2f} | {3600 / seconds:,.0f}"
            print(f"| {model_label(name)} | bare G step (baseline) | fp32 | {speed} | | | | 1.00x |")

        need = 16 / min(results.values())
        print(f"\nData pipeline ({data}), patches/s; the fastest training row above needs {need:.1f}")
        print("| sampler | workers | patches/s | vs needed |")
        print("|---|---|---|---|")
        for label, kwargs in (("uniform", {}), ("texture 0.01 x5", {"min_gradient": 0.01, "max_redraws": 5})):
            dataset = PairedPatches(data, 4, 128, **kwargs)
            for workers in (0, 1, 2):
                rate = patches_per_second(dataset, workers)
                print(f"| {label} | {workers} | {rate:.0f} | {rate / need:.1f}x |")


if __name__ == "__main__":
    main()
