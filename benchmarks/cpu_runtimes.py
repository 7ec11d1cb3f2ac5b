"""The CPU runtimes against each other on the same weights, tile and alpha, for benchmarks/engine.py: PyTorch eager
(fp32, bf16 autocast: what the engine ships), ONNX Runtime (fp32; fixed weights, or alpha as a graph input) and
OpenVINO (f32 and bf16 inference precision; fixed weights, or alpha as a graph input), with what a new alpha costs
each of them: PyTorch blends its live parameters in place; a compiled graph with fixed weights must be rebuilt
(blend, convert, compile); a graph with alpha as an input computes the blend on every run instead.

OpenVINO is not a dependency of the product: these rows need `pip install openvino` (2026.4 was measured) and are
left out, with a line saying so, where it is not installed.
"""

import io
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch

from benchmarks.common import best_seconds, psnr, timed
from esrgan.models.checkpoints import StateDict, build_generator
from esrgan.models.engine import Engine, EngineSettings
from esrgan.models.interpolate import interpolate_state_dicts
from esrgan.models.onnx_export import export_onnx

ALPHA, NEW_ALPHA = 0.5, 0.7


@dataclass
class Row:
    name: str
    seconds: float  # one tile, best of two after a warm-up run
    out: np.ndarray
    new_alpha: str  # what a new alpha costs, in words and seconds
    once: str = ""  # what it costs once, before the first tile


def _run_row(name: str, run: Callable[[], np.ndarray], new_alpha: str, once: str = "") -> Row:
    run()
    out, seconds = best_seconds(run, repeats=2)
    return Row(name, seconds, out, new_alpha, once)


def torch_rows(psnr_sd: StateDict, gan_sd: StateDict, x: torch.Tensor) -> list[Row]:
    rows = []
    for precision in ("fp32", "bf16"):
        engine = Engine(psnr_sd, gan_sd, EngineSettings(device="cpu", precision=precision))
        engine.set_alpha(ALPHA)
        _, blend = timed(engine.set_alpha, NEW_ALPHA)
        engine.set_alpha(ALPHA)
        new = f"in-place blend {blend * 1e3:.0f} ms"
        rows.append(_run_row(f"PyTorch eager {precision}", lambda e=engine: e.forward_tiles(x).numpy(), new))
    return rows


def onnx_rows(psnr_sd: StateDict, gan_sd: StateDict, x: torch.Tensor) -> list[Row]:
    import onnxruntime as ort

    def session(psnr_w: StateDict, gan_w: StateDict | None):
        buf = io.BytesIO()
        export_onnx(psnr_w, gan_w, buf)
        return ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])

    feed = {"input": x.numpy()}
    fixed, _ = timed(session, interpolate_state_dicts(psnr_sd, gan_sd, ALPHA), None)
    _, rebuild = timed(session, interpolate_state_dicts(psnr_sd, gan_sd, NEW_ALPHA), None)
    graph, build = timed(session, psnr_sd, gan_sd)
    alpha_feed = {**feed, "alpha": np.array(ALPHA, np.float32)}
    return [
        _run_row("ONNX Runtime fp32, fixed weights", lambda: fixed.run(None, feed)[0], f"rebuild {rebuild:.2f} s"),
        _run_row("ONNX Runtime fp32, alpha as input", lambda: graph.run(None, alpha_feed)[0], "none", f"{build:.2f} s"),
    ]


def openvino_rows(psnr_sd: StateDict, gan_sd: StateDict, x: torch.Tensor) -> tuple[list[Row], str]:
    """OpenVINO rows and a note: fixed weights converted from the torch module (`convert_model(module,
    example_input=x)` under no_grad), and the alpha-input graph converted from our ONNX export."""
    try:
        import openvino as ov
    except ImportError:
        return [], "OpenVINO is not installed (pip install openvino): its rows are left out"
    core = ov.Core()
    threads = torch.get_num_threads()

    def convert(alpha: float):
        net = build_generator(interpolate_state_dicts(psnr_sd, gan_sd, alpha)).eval()
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return ov.convert_model(net, example_input=x)

    def compile_model(model, hint: str):
        return core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": hint, "INFERENCE_NUM_THREADS": threads})

    model, t_convert = timed(convert, ALPHA)
    buf = io.BytesIO()
    _, t_export = timed(export_onnx, psnr_sd, gan_sd, buf)
    graph, t_graph = timed(ov.convert_model, io.BytesIO(buf.getvalue()))
    rows = []
    for hint in ("f32", "bf16"):
        compiled, t_compile = timed(compile_model, model, hint)
        new = f"convert {t_convert:.2f} s + compile {t_compile:.2f} s"
        rows.append(_run_row(f"OpenVINO {hint}, fixed weights", lambda c=compiled: c(x.numpy())[0], new))
        with_alpha, t_compile_alpha = timed(compile_model, graph, hint)
        once = f"export {t_export:.2f} + convert {t_graph:.2f} + compile {t_compile_alpha:.2f} s"
        feed = [x.numpy(), np.array(ALPHA, np.float32)]
        rows.append(_run_row(f"OpenVINO {hint}, alpha as input", partial(_first, with_alpha, feed), "none", once))
    return rows, f"OpenVINO {ov.get_version()}"


def _first(compiled, feed: list[np.ndarray]) -> np.ndarray:
    return compiled(feed)[0]


def runtime_table(label: str, psnr_sd: StateDict, gan_sd: StateDict, x: torch.Tensor) -> None:
    """Print one table: seconds per tile, output MP/s, speed against PyTorch fp32, PSNR against it, alpha costs."""
    rows = torch_rows(psnr_sd, gan_sd, x) + onnx_rows(psnr_sd, gan_sd, x)
    ov_rows, note = openvino_rows(psnr_sd, gan_sd, x)
    rows += ov_rows
    base = rows[0]
    out_mp = base.out.shape[2] * base.out.shape[3] / 1e6
    print(f"\n{label}: one {x.shape[3]}x{x.shape[2]} tile at alpha {ALPHA}, {torch.get_num_threads()} threads ({note})")
    print(
        "| runtime | s per tile | output MP/s | vs PyTorch fp32 | PSNR vs PyTorch fp32 (dB) | new alpha costs | once |"
    )
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        quality = psnr(row.out[0].transpose(1, 2, 0), base.out[0].transpose(1, 2, 0))
        print(f"| {row.name} | {row.seconds:.3f} | {out_mp / row.seconds:.3f} | {base.seconds / row.seconds:.2f}x | "
              f"{quality:.1f} | {row.new_alpha} | {row.once} |", flush=True)  # fmt: skip
