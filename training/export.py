"""Exports of trained generators: our safetensors format with training metadata, and ONNX on request."""

from pathlib import Path
from typing import Any

from esrgan.models.checkpoints import save_generator
from esrgan.training.checkpoint import load_run
from esrgan.training.config import ConfigError


def save_from_state(path: Path, state: dict[str, Any], ema: bool = False) -> Path:
    """Write G (or its EMA) of a training checkpoint dict with config, iterations, data and validation metadata."""
    sd = state.get("ema") if ema else state["g"]
    if sd is None:
        raise ConfigError("this run kept no EMA of G (train.ema_decay was 0): export without --ema")
    config = state["config"]
    save_generator(
        path,
        sd,
        stage=state["stage"],
        provenance=f"esrgan train {config['name']} ({'EMA of G' if ema else 'G'}), {state['step']} iterations",
        extra={
            "config": config,
            "iterations": state["step"],
            "data": state.get("data", {}),
            "validation": state.get("val", {}),
            "ema": ema,
        },
    )
    return path


def export_generators(run_dir: Path, state: dict[str, Any], suffix: str = "") -> list[Path]:
    """The end-of-run exports: g_<stage>.safetensors, plus g_<stage>_ema.safetensors when an EMA was kept; with a
    suffix (`_<step>`), the periodic snapshots a user picks a GAN checkpoint from (its artifacts come and go)."""
    name = f"g_{state['stage']}{suffix}"
    written = [save_from_state(run_dir / f"{name}.safetensors", state)]
    if state.get("ema") is not None:
        written.append(save_from_state(run_dir / f"{name}_ema.safetensors", state, ema=True))
    return written


def export_run(run_dir: Path, output: Path, ema: bool = False, onnx: bool = False) -> list[Path]:
    """`esrgan export`: G (or its EMA) of a run's checkpoint, finished or not; optionally an ONNX model beside it."""
    state = load_run(run_dir)
    output.parent.mkdir(parents=True, exist_ok=True)
    written = [save_from_state(output, state, ema=ema)]
    if onnx:
        from esrgan.models.onnx_export import export_onnx

        onnx_path = output.with_suffix(".onnx")
        export_onnx(state["ema"] if ema else state["g"], None, onnx_path)
        written.append(onnx_path)
    return written
