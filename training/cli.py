"""Training commands: `esrgan data prepare|download`, `esrgan train`, `esrgan export`."""

from pathlib import Path

import typer

app = typer.Typer()
data_app = typer.Typer(help="Prepare (or download) training data.", no_args_is_help=True)
app.add_typer(data_app, name="data")


@data_app.command("prepare")
def data_prepare(
    hr_dir: Path,
    out_dir: Path,
    scale: int = typer.Option(4, help="downscale factor of the LR images"),
    crop: int = typer.Option(480, help="sub-image size (HR px)"),
    step: int = typer.Option(240, help="distance between sub-images"),
    thresh: int = typer.Option(0, help="add a border-flush sub-image when more than this many px are left over"),
    workers: int = typer.Option(1, help="processes"),
    fmt: str = typer.Option("png", "--format", help="png (compact) or npy (memory-mapped: fastest to sample)"),
) -> None:
    """Cut HR images into sub-images and write HR + MATLAB-bicubic LR PNG pairs with a manifest."""
    from esrgan.training.data import prepare

    rows = prepare(hr_dir, out_dir, scale=scale, crop=crop, step=step, thresh=thresh, workers=workers, fmt=fmt)
    typer.echo(f"{len(rows)} sub-images from {len({r.source for r in rows})} images -> {out_dir}")


@data_app.command("download")
def data_download(
    name: str = typer.Argument(..., help="div2k or flickr2k"),
    out: Path = typer.Option(Path("data"), help="folder for the archives and the unpacked images"),
    keep_archives: bool = typer.Option(True, help="keep the downloaded archives next to the images"),
) -> None:
    """Download DIV2K (train + valid HR) or Flickr2K from the official URLs, with resume and published checksums."""
    from esrgan.models.download import DownloadError
    from esrgan.training.download import DATASETS, download_dataset

    if name not in DATASETS:
        raise typer.BadParameter(f"unknown dataset {name!r}; choose from {', '.join(DATASETS)}")
    archives = DATASETS[name]
    for a in archives:
        size = f"{a.size / 1e9:.1f} GB" if a.size else "size not published"
        check = "sha256 published by TensorFlow Datasets" if a.sha256 else "no published checksum: not verified"
        typer.echo(f"{a.url} ({size}; {check})")
    try:
        folders = download_dataset(archives, out, keep_archives=keep_archives)
    except (DownloadError, ValueError) as exc:
        raise typer.BadParameter(str(exc)) from None
    for folder in folders:
        typer.echo(f"HR images: {folder}")
    typer.echo(f"next: esrgan data prepare {folders[0]} {out}/{name}_sub_x4 --scale 4 --format npy")


@app.command("train")
def train_command(
    config: str = typer.Argument(..., help="YAML config: a path, or a name in training/configs/"),
    run_dir: Path | None = typer.Option(None, help="run directory (default runs/<config name>)"),
    resume: bool = typer.Option(False, help="continue the run in --run-dir from its checkpoint"),
    iters: int | None = typer.Option(None, help="override train.iters"),
    set_: list[str] = typer.Option([], "--set", "-s", help="override any key: -s data.batch=8 -s train.seed=1"),
    progress: bool = typer.Option(True, help="show a progress bar"),
) -> None:
    """Train stage 1 (psnr) or stage 2 (gan) as the config says; Ctrl-C or SIGTERM saves a checkpoint first."""
    from esrgan.training.config import ConfigError, load_config
    from esrgan.training.train import train

    overrides = [*set_, *([f"train.iters={iters}"] if iters is not None else [])]
    try:
        cfg = load_config(config, overrides)
        run = run_dir or Path("runs") / cfg.name
        final = train(cfg, run, resume=resume, progress=progress)
    except ConfigError as exc:
        raise typer.BadParameter(str(exc)) from None
    typer.echo(f"{run}: step {final['step']}/{cfg.train.iters}, validation {final.get('val') or 'not run'}")
    if final["step"] < cfg.train.iters:
        typer.echo(f"stopped early; continue with: esrgan train {config} --run-dir {run} --resume")


@app.command("export")
def export_command(
    run_dir: Path,
    output: Path = typer.Option(..., "-o", "--output", help="the .safetensors file to write"),
    ema: bool = typer.Option(False, help="export the EMA of G instead of G"),
    onnx: bool = typer.Option(False, help="also write an ONNX model next to it (.onnx)"),
) -> None:
    """Export a run's generator (any checkpoint, finished or not) in our checkpoint format, optionally ONNX too."""
    from esrgan.training.config import ConfigError
    from esrgan.training.export import export_run

    try:
        written = export_run(run_dir, output, ema=ema, onnx=onnx)
    except ConfigError as exc:
        raise typer.BadParameter(str(exc)) from None
    for path in written:
        typer.echo(f"wrote {path}")
