"""Commands that work on weights and pixels: info, convert, interpolate, weights download, upscale, export-onnx.

Heavy imports (torch) happen inside the commands so that `esrgan --help` stays instant. Expected failures (bad file,
bad alpha, failed download) print one line to stderr and exit 1, never a stack trace.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from esrgan.models.download import DownloadError

if TYPE_CHECKING:
    from esrgan.models.registry import FileSpec

app = typer.Typer()
weights_app = typer.Typer(
    help="Known pretrained models (PSNR/GAN pairs and single models): list them, download them.", no_args_is_help=True
)
app.add_typer(weights_app, name="weights")

CacheDir = Annotated[
    Path | None, typer.Option(help="Where downloaded weights live [default: $ESRGAN_CACHE_DIR or ~/.cache/esrgan].")
]


class Target(StrEnum):
    ours = "ours"  # safetensors with our metadata
    basicsr = "basicsr"  # BasicSR / Real-ESRGAN keys; .pth gets the `params` wrapper
    esrgan = "esrgan"  # official ESRGAN new arch (RRDB_trunk, trunk_conv, HRconv)
    esrgan_old = "esrgan-old"  # official ESRGAN old arch (model.0, model.1.sub.N...)


@contextmanager
def one_line_errors() -> Iterator[None]:
    """Turn the errors we expect from users' files and networks into one line on stderr and exit status 1."""
    try:
        yield
    except (ValueError, OSError, DownloadError) as exc:  # CheckpointError is a ValueError, FileNotFoundError an OSError
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


@app.command()
def info(path: Path) -> None:
    """Show the layout, architecture, parameter count and metadata of a weights file."""
    from esrgan.models.architectures import describe
    from esrgan.models.layouts import describe_weights

    with one_line_errors():
        weights = describe_weights(path)
    fields = describe(weights.config)
    arch, scale, in_ch, out_ch = (fields.pop(k) for k in ("arch", "scale", "in_ch", "out_ch"))
    shape = " ".join(f"{k}={v}" for k, v in fields.items())
    typer.echo(str(path))
    typer.echo(f"  layout: {weights.layout.value}" + (f" (wrapped in {weights.wrapper!r})" if weights.wrapper else ""))
    typer.echo(f"  architecture: {arch} x{scale} {shape} in_ch={in_ch} out_ch={out_ch}")
    typer.echo(f"  parameters: {weights.parameters:,} ({', '.join(weights.dtypes)})")
    for key, value in weights.metadata.items():
        typer.echo(f"  {key}: {value}")


@app.command()
def convert(
    src: Annotated[Path, typer.Argument(help="Weights in any supported layout (.pth or .safetensors).")],
    dest: Annotated[Path, typer.Argument(help="Output file; .safetensors, or .pth for the foreign layouts.")],
    to: Annotated[Target, typer.Option(help="Layout to write.")] = Target.ours,
    stage: Annotated[str | None, typer.Option(help="psnr/gan for `--to ours` [default: from SRC or unknown].")] = None,
) -> None:
    """Convert generator weights between layouts, bit-exactly (ours, BasicSR/Real-ESRGAN, official ESRGAN old/new).

    RRDBNet converts to every layout; SRVGGNetCompact to ours and basicsr (Real-ESRGAN's).
    """
    from esrgan.models.checkpoints import export_state_dict, load_checkpoint, save_generator
    from esrgan.models.layouts import Layout

    with one_line_errors():
        ckpt = load_checkpoint(src)
        if to is Target.ours:
            if dest.suffix != ".safetensors":
                raise ValueError(f"{dest}: our format is safetensors; name the output *.safetensors")
            provenance = f"converted from {src.name} ({ckpt.layout.value} layout)"
            if ckpt.metadata.get("provenance"):
                provenance += f"; {ckpt.metadata['provenance']}"
            stage = stage or ckpt.metadata.get("stage", "unknown")
            save_generator(dest, ckpt.state_dict, stage=stage, provenance=provenance)
        else:
            export_state_dict(dest, ckpt.state_dict, Layout(to.value))
    typer.echo(f"{src} ({ckpt.layout.value}) -> {dest} ({to.value})")


@app.command()
def interpolate(
    psnr: Annotated[Path, typer.Option(help="The PSNR-oriented weights (any layout).")],
    gan: Annotated[Path, typer.Option(help="The GAN weights fine-tuned from them (any layout).")],
    alpha: Annotated[float, typer.Option(help="0 = PSNR model, 1 = GAN model.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output .safetensors file.")],
) -> None:
    """Blend two generators of the same architecture and shapes: theta = (1 - alpha) * theta_PSNR + alpha * theta_GAN.

    Only a GAN model fine-tuned from this very PSNR model blends well; two unrelated models of the same
    architecture load fine and give garbage.
    """
    from esrgan.models.checkpoints import read_state_dict, save_generator
    from esrgan.models.interpolate import check_alpha, interpolate_state_dicts

    with one_line_errors():
        alpha = check_alpha(alpha)
        blend = interpolate_state_dicts(read_state_dict(psnr), read_state_dict(gan), alpha)
        provenance = f"network interpolation, alpha={alpha}, PSNR {psnr.name}, GAN {gan.name}"
        extra = {"alpha": alpha, "psnr": str(psnr), "gan": str(gan)}
        save_generator(output, blend, stage="interpolated", provenance=provenance, extra=extra)
    typer.echo(f"wrote {output} (alpha={alpha})")


@weights_app.command("list")
def weights_list(cache_dir: CacheDir = None) -> None:
    """The known models, whether their files are here, and where they come from."""
    from esrgan.models.registry import DEFAULT_PAIR, PAIRS, SINGLES, file_path

    def files(roles: tuple[tuple[str, "FileSpec"], ...]) -> None:
        for role, spec in roles:
            path = file_path(spec, cache_dir)
            how = "" if spec.url or spec.bundled else ", manual download"
            state = "present" if path.is_file() else f"missing{how}"
            typer.echo(f"  {role}: {spec.filename} [{state}] {spec.provenance}")

    for name, pair in PAIRS.items():
        typer.echo(f"{name}{' (default)' if name == DEFAULT_PAIR else ''}: x{pair.gan.scale}. {pair.note}")
        scale = pair.alpha
        typer.echo(f"  alpha: {scale.name}, 0 {scale.low} ... 1 {scale.high}; starts at {pair.default_alpha:g}")
        files((("psnr", pair.psnr), ("gan", pair.gan)))
    for name, single in SINGLES.items():
        typer.echo(f"{name}: x{single.weights.scale}. {single.note}")
        typer.echo("  alpha: none, a single model")
        files((("weights", single.weights),))


@weights_app.command("download")
def weights_download(
    name: Annotated[str, typer.Argument(help="A model from `esrgan weights list`.")],
    cache_dir: CacheDir = None,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
) -> None:
    """Fetch every file of a known model into the cache: resumes, retries, verifies checksums."""
    from esrgan.models.download import sha256_file
    from esrgan.models.registry import download_model, model_files

    with one_line_errors():
        paths = download_model(name, cache_dir, progress=not quiet)
    for spec, path in zip(model_files(name), paths, strict=True):
        checked = "verified" if spec.sha256 or spec.sha256_prefix else f"unverified, sha256 {sha256_file(path)}"
        typer.echo(f"{path} ({checked})")
