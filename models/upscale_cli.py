"""`esrgan upscale` and `esrgan export-onnx`: the engine from the command line.

Expected failures (a bad image, missing weights, a bad option) print one line to stderr; `upscale` goes on with the
other inputs and exits 1 at the end if any image failed.
"""

import os
import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from esrgan.models.cli import one_line_errors
from esrgan.models.images import IMAGE_SUFFIXES, list_images

app = typer.Typer()


class Device(StrEnum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class Backend(StrEnum):
    torch = "torch"
    onnx = "onnx"


class Precision(StrEnum):
    auto = "auto"
    fp32 = "fp32"
    fp16 = "fp16"
    bf16 = "bf16"


class Format(StrEnum):
    png = "png"
    webp = "webp"
    jpeg = "jpeg"


ModelOpt = Annotated[
    str | None, typer.Option("--model", help="A known pair or single model (`esrgan weights list`) [default: ours].")
]
PsnrOpt = Annotated[Path | None, typer.Option("--psnr", help="PSNR-stage weights of your own pair (with --gan).")]
GanOpt = Annotated[Path | None, typer.Option("--gan", help="GAN-stage weights of your own pair (with --psnr).")]
WeightsOpt = Annotated[Path | None, typer.Option("--weights", help="One weights file, used as it is (no alpha).")]


def choose_weights(model: str | None, psnr: Path | None, gan: Path | None, weights: Path | None):
    """(PSNR or single weights path, GAN path or None) from the mutually exclusive model options."""
    from esrgan.models.registry import DEFAULT_PAIR, resolve_model

    chosen = sum(x is not None for x in (model, psnr or gan, weights))
    if chosen > 1:
        raise ValueError("choose one of --model, --psnr/--gan and --weights")
    if weights is not None:
        return weights, None
    if psnr is not None or gan is not None:
        if psnr is None or gan is None:
            raise ValueError("--psnr and --gan go together")
        return psnr, gan
    return resolve_model(model or DEFAULT_PAIR)


def images_below(folder: Path, skip: Path) -> list[Path]:
    """The images in `folder` and its subfolders, sorted; symlinked folders are not followed (no loops), and `skip`
    (the output folder, when it lies inside) is left out so that a second run does not upscale the first's results."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if (Path(root) / d).resolve() != skip)
        found += [Path(root) / f for f in sorted(files) if Path(f).suffix.lower() in IMAGE_SUFFIXES]
    return found


def list_inputs(inputs: list[Path], recursive: bool = False, output: Path | None = None) -> list[tuple[Path, Path]]:
    """(image, its folder relative to the input folder) pairs: files as given (folder "."), folders expanded to their
    images, sorted; with `recursive` their subfolders' too, so the relative layout can be kept under the output."""
    skip = (output or Path()).resolve()
    found = []
    for path in inputs:
        if path.is_dir():
            images = images_below(path, skip) if recursive else list_images(path)
            found += [(image, image.parent.relative_to(path)) for image in images]
        elif path.exists():
            found.append((path, Path()))
        else:
            raise FileNotFoundError(f"{path}: no such file or folder")
    if not found:
        raise ValueError("no images found in the inputs")
    return found


def output_path(src: Path, out: Path, single: bool, fmt: str, scale: float, folder: Path = Path()) -> Path:
    """`out` itself for a single input named like an image file, else `out/<folder>/<stem>_x<scale>.<ext>`."""
    from esrgan.models.images import EXTENSIONS

    if single and out.suffix.lower() in IMAGE_SUFFIXES:
        return out
    return out / folder / f"{src.stem}_x{scale:g}{EXTENSIONS[fmt]}"


@app.command()
def upscale(
    inputs: Annotated[list[Path], typer.Argument(help="Image files or folders of images.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Output folder (or file, for one input).")],
    alpha: Annotated[
        float | None, typer.Option(help="0 = PSNR model (smooth), 1 = GAN model (detail) [default: the pair's].")
    ] = None,
    model: ModelOpt = None,
    psnr: PsnrOpt = None,
    gan: GanOpt = None,
    weights: WeightsOpt = None,
    tile: Annotated[int | None, typer.Option(help="Largest tile side in input pixels [default: per device].")] = None,
    overlap: Annotated[int | None, typer.Option(help="Input pixels shared by neighbouring tiles.")] = None,
    device: Annotated[Device, typer.Option(help="Where the network runs.")] = Device.auto,
    backend: Annotated[Backend, typer.Option(help="PyTorch eager or ONNX Runtime.")] = Backend.torch,
    precision: Annotated[
        Precision, typer.Option(help="auto: fp16 on CUDA, bf16 on a CPU with native bf16, else fp32.")
    ] = Precision.auto,
    fmt: Annotated[Format | None, typer.Option("--format", help="Output format [default: from -o, else png].")] = None,
    max_pixels: Annotated[int, typer.Option(help="Refuse inputs with more pixels than this.")] = 64_000_000,
    outscale: Annotated[
        float | None,
        typer.Option(help="Output scale in (1, the model's scale]: the result is resized with Lanczos [default: x4]."),
    ] = None,
    recursive: Annotated[
        bool, typer.Option("--recursive", "-r", help="Also the images in subfolders, in the same layout under -o.")
    ] = False,
) -> None:
    """Upscale images with a PSNR/GAN pair blended at --alpha (network interpolation), tile by tile."""
    from tqdm import tqdm

    from esrgan.models.engine import Engine, EngineSettings
    from esrgan.models.images import ImageError, read_image, write_image
    from esrgan.models.registry import DEFAULT_PAIR, starting_alpha
    from esrgan.models.resize import output_size, resize

    with one_line_errors():
        sources = list_inputs(inputs, recursive, output)
        single = len(sources) == 1 and not inputs[0].is_dir()
        if fmt is None:
            suffix = output.suffix.lower().lstrip(".") if single else ""
            fmt = Format(suffix.replace("jpg", "jpeg")) if suffix in ("png", "webp", "jpg", "jpeg") else Format.png
        first, second = choose_weights(model, psnr, gan, weights)
        settings = EngineSettings(
            device=device.value, backend=backend.value, tile=tile, overlap=overlap, precision=precision.value
        )
        if second is None:
            if alpha is not None:
                raise ValueError(f"--alpha blends a PSNR/GAN pair; {first.name} is a single model, used as it is")
            engine = Engine.from_weights(first, settings)
        else:
            engine = Engine.from_pair(first, second, settings)
            engine.set_alpha(starting_alpha(None if psnr else model or DEFAULT_PAIR) if alpha is None else alpha)
        if outscale is not None:
            output_size(1, 1, engine.scale, outscale)  # refuse a scale the network cannot give before any work
    failed = 0
    for src, folder in sources:
        started = time.perf_counter()
        try:
            picture = read_image(src, max_pixels=max_pixels)
            with tqdm(desc=src.name, unit="tile", leave=False) as bar:

                def progress(done: int, total: int, bar=bar) -> None:
                    bar.total = total
                    bar.update(done - bar.n)

                result = engine.upscale(picture, progress=progress)
            if outscale is not None:
                result = resize(result, *output_size(picture.width, picture.height, engine.scale, outscale))
            dest = output_path(src, output, single, fmt.value, outscale or engine.scale, folder)
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(write_image(result, fmt.value))
        except (ImageError, OSError) as exc:
            typer.echo(f"error: {exc}", err=True)
            failed += 1
            continue
        seconds = time.perf_counter() - started
        typer.echo(
            f"{src}: {picture.width}x{picture.height} -> {result.width}x{result.height} in {seconds:.1f} s "
            f"({engine.device}, {engine.precision}) -> {dest}"
        )
    if failed:
        typer.echo(f"{failed} of {len(sources)} images failed", err=True)
        raise typer.Exit(1)


@app.command("export-onnx")
def export_onnx_command(
    output: Annotated[Path, typer.Option("-o", "--output", help="The .onnx file to write.")],
    model: ModelOpt = None,
    psnr: PsnrOpt = None,
    gan: GanOpt = None,
    weights: WeightsOpt = None,
) -> None:
    """Write an ONNX model of a PSNR/GAN pair with alpha as a graph input (one file serves every alpha)."""
    from esrgan.models.checkpoints import read_state_dict
    from esrgan.models.onnx_export import export_onnx

    with one_line_errors():
        first, second = choose_weights(model, psnr, gan, weights)
        export_onnx(read_state_dict(first), None if second is None else read_state_dict(second), output)
    inputs = "input, alpha" if second is not None else "input"
    typer.echo(f"{output}: {output.stat().st_size / 1e6:.1f} MB, inputs: {inputs} -> output")
