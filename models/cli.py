"""Commands that work on weights and pixels: info, convert, interpolate, weights download, upscale, export-onnx."""

import typer

app = typer.Typer()


@app.command()
def info(path: str) -> None:
    """Show the layout, architecture, parameter count and metadata of a weights file."""
    from models.checkpoints import infer_config, load_state_dict, read_metadata

    sd = load_state_dict(path)
    config = infer_config(sd)
    typer.echo(f"{path}: RRDBNet {config}, {sum(t.numel() for t in sd.values()):,} parameters")
    for key, value in read_metadata(path).items():
        typer.echo(f"  {key}: {value}")
