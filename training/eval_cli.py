"""`esrgan eval`: PSNR/SSIM/NIQE and flat-area artifacts of a PSNR/GAN pair across interpolation weights, with a
perception-distortion plot."""

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer()


def parse_alphas(text: str) -> list[float]:
    try:
        return [float(part) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise typer.BadParameter(f"expected comma-separated numbers such as 0,0.5,1, got {text!r}") from exc


def pair_files(model: str | None, psnr: Path | None, gan: Path | None) -> tuple[Path, Path]:
    """The two files to score: --psnr/--gan together, else the registry pair --model names (default: ours)."""
    from esrgan.models.registry import DEFAULT_PAIR, resolve_pair

    if psnr is None and gan is None:
        return resolve_pair(model or DEFAULT_PAIR)
    if model is not None:
        raise ValueError("choose --model or --psnr/--gan, not both")
    if psnr is None or gan is None:
        raise ValueError("--psnr and --gan go together")
    return psnr, gan


@app.command("eval")
def eval_command(
    data: Annotated[Path, typer.Option(help="folder of HR images (LR is made with MATLAB bicubic)", file_okay=False)],
    model: Annotated[
        str | None, typer.Option(help="a known pair (`esrgan weights list`) [default: the embedded pair]")
    ] = None,
    psnr: Annotated[
        Path | None, typer.Option(help="PSNR-oriented generator (alpha 0), with --gan", exists=True, dir_okay=False)
    ] = None,
    gan: Annotated[
        Path | None, typer.Option(help="GAN generator (alpha 1), with --psnr", exists=True, dir_okay=False)
    ] = None,
    alphas: Annotated[str, typer.Option(help="weights to run; 0 and 1 are always added")] = "0,0.2,0.4,0.6,0.8,1",
    out: Annotated[Path, typer.Option(help="where metrics.csv, the plot and crops/ go")] = Path("eval"),
    tile: Annotated[int | None, typer.Option(help="tile size in LR pixels (bounds memory on large images)")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda")] = "auto",
    gray: Annotated[str, typer.Option(help="gray HR: raw levels (raw, as published) or RGB Y (rgb)")] = "raw",
) -> None:
    """Score bicubic, network interpolation and image interpolation of a pair on every image of DATA (crop = scale)."""
    from esrgan.training.evaluate import evaluate

    try:
        psnr, gan = pair_files(model, psnr, gan)
        report = evaluate(psnr, gan, data, out, parse_alphas(alphas), tile=tile, device=device, gray=gray)
    except (ValueError, FileNotFoundError) as exc:
        raise typer.BadParameter(str(exc)) from exc
    typer.echo(f"{'method':<10}{'alpha':>6}{'PSNR-Y':>9}{'SSIM-Y':>9}{'NIQE':>8}{'hatch':>7}{'colour':>7}")
    for row in report.rows:
        if row.image == "mean":
            alpha = "" if row.alpha is None else f"{row.alpha:g}"
            typer.echo(
                f"{row.method:<10}{alpha:>6}{row.psnr:>9.3f}{row.ssim:>9.4f}{row.niqe:>8.3f}"
                f"{row.hatch:>7.2f}{row.colour_shift:>7.2f}"
            )
    typer.echo(f"wrote {report.csv_path}, {report.plot_path} and {len(report.crop_paths)} crops")
