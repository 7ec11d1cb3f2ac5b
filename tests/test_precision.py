"""CPU precision: when `auto` means bf16, what can be forced, the quality floor of bf16 against fp32 on a real photo
with the embedded pair, and the fp32 rerun of a tile whose bf16 output overflowed."""

import logging

import numpy as np
import pytest
import torch
from paths import SHARED_DATASETS
from PIL import Image
from pydantic import ValidationError
from service_helpers import api_server, image_size, png_bytes, service_env
from typer.testing import CliRunner

from esrgan.cli import app
from esrgan.models.engine import Engine, EngineSettings, cpu_has_native_bf16, resolve_precision
from esrgan.models.registry import resolve_pair
from esrgan.service.routes.health import network_precision
from esrgan.service.settings import Settings

ZEN4_FLAGS = "fpu sse2 avx2 avx512f avx512bw avx512_bf16 avx512_vnni"  # an AMD EPYC of CPU family 25
SAPPHIRE_RAPIDS_FLAGS = "sse2 avx2 avx512f amx_bf16 amx_tile amx_int8"
OLDER_FLAGS = "fpu sse2 avx2 fma avx512f avx512bw"  # AVX-512 without its bf16 instructions: emulated, slower than fp32


def test_native_bf16_is_read_from_the_cpu_flags():
    assert cpu_has_native_bf16(ZEN4_FLAGS) and cpu_has_native_bf16(SAPPHIRE_RAPIDS_FLAGS)
    assert not cpu_has_native_bf16(OLDER_FLAGS) and not cpu_has_native_bf16("")
    assert not cpu_has_native_bf16("avx512_bf16x")  # whole flags only
    assert cpu_has_native_bf16() in (True, False)  # this machine's /proc/cpuinfo (or none) is read without error


def test_auto_is_bf16_exactly_where_the_cpu_has_it():
    auto = EngineSettings()
    assert resolve_precision(auto, "cpu", native_bf16=True) == "bf16"
    assert resolve_precision(auto, "cpu", native_bf16=False) == "fp32"
    assert resolve_precision(auto, "cuda", native_bf16=False) == "fp16"
    assert resolve_precision(EngineSettings(backend="onnx"), "cpu", native_bf16=True) == "fp32"


def test_fp32_and_bf16_can_be_forced_on_the_cpu_and_fp16_cannot():
    assert resolve_precision(EngineSettings(precision="fp32"), "cpu", native_bf16=True) == "fp32"
    assert resolve_precision(EngineSettings(precision="bf16"), "cpu", native_bf16=False) == "bf16"
    with pytest.raises(ValueError, match="fp16 is for CUDA"):
        resolve_precision(EngineSettings(precision="fp16"), "cpu", native_bf16=True)
    with pytest.raises(ValueError, match="ONNX backend runs fp32"):
        resolve_precision(EngineSettings(backend="onnx", precision="bf16"), "cpu")


def photo_crop(size: int) -> np.ndarray:
    im = Image.open(SHARED_DATASETS / "Set14" / "baboon.png").convert("RGB").crop((200, 150, 200 + size, 150 + size))
    return np.asarray(im, dtype=np.float32) / 255


def psnr_8bit(a: np.ndarray, b: np.ndarray) -> float:
    qa, qb = (np.clip(a, 0, 1) * 255).round(), (np.clip(b, 0, 1) * 255).round()
    mse = float(np.mean((qa - qb) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_bf16_output_of_the_embedded_pair_stays_within_50_db_of_fp32(alpha):
    """Both ends of the pair on a real photo crop, tiled (two windows a side), as a saved 8-bit file would be."""
    pair = resolve_pair("esrgan-compact-x4")
    engines = {p: Engine.from_pair(*pair, EngineSettings(device="cpu", precision=p, tile=48)) for p in ("fp32", "bf16")}
    x = photo_crop(80)
    out = {}
    for precision, engine in engines.items():
        assert engine.precision == precision and engine.runner.model.conv_first.weight.dtype == torch.float32
        engine.set_alpha(alpha)
        out[precision] = engine.upscale_array(x)
    assert out["bf16"].shape == (320, 320, 3)
    assert not np.array_equal(out["bf16"], out["fp32"])  # bf16 really ran
    assert psnr_8bit(out["bf16"], out["fp32"]) >= 50


def test_a_tile_whose_bf16_output_overflows_is_redone_in_fp32(random_pair, caplog):
    """A last-conv bias between bf16's largest finite value (3.39e38) and fp32's (3.40e38) is finite only in fp32."""
    engine = Engine.from_pair(*random_pair, EngineSettings(device="cpu", precision="bf16"))
    engine.set_alpha(0.5)
    with torch.no_grad():
        engine.runner.model.conv_last.weight.zero_()
        engine.runner.model.conv_last.bias.fill_(3.399e38)
    with caplog.at_level(logging.WARNING, logger="esrgan.models.torch_runner"):
        out = engine.forward_tiles(torch.rand(1, 3, 16, 16))
    assert torch.isfinite(out).all() and out.min() > 3.39e38
    assert "running it again in fp32" in caplog.text


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_the_command_line_forces_a_precision_and_says_which_ran(random_pair, tmp_path, precision):
    Image.fromarray(np.full((12, 16, 3), 90, np.uint8)).save(tmp_path / "a.png")
    args = ["upscale", str(tmp_path / "a.png"), "-o", str(tmp_path / "out.png"), "--weights", str(random_pair[0])]
    result = CliRunner().invoke(app, [*args, "--device", "cpu", "--precision", precision])
    assert result.exit_code == 0, result.output
    assert "16x12 -> 64x48 in" in result.output and f"(cpu, {precision})" in result.output
    assert Image.open(tmp_path / "out.png").size == (64, 48)


def test_the_command_line_refuses_fp16_on_the_cpu_in_one_line(random_pair, tmp_path):
    Image.fromarray(np.full((12, 16, 3), 90, np.uint8)).save(tmp_path / "a.png")
    args = ["upscale", str(tmp_path / "a.png"), "-o", str(tmp_path), "--weights", str(random_pair[0])]
    result = CliRunner().invoke(app, [*args, "--device", "cpu", "--precision", "fp16"])
    assert result.exit_code == 1 and "error: fp16 is for CUDA" in result.output and "Traceback" not in result.output
    assert not list(tmp_path.glob("*_x4.png"))


def test_the_service_setting_is_checked_and_readyz_resolves_auto_for_in_process_workers():
    with pytest.raises(ValidationError, match="precision"):
        Settings(precision="fp8")
    native = "bf16" if cpu_has_native_bf16() else "fp32"
    assert network_precision(Settings(device="cpu")) == native
    assert network_precision(Settings(device="cpu", precision="fp32")) == "fp32"
    # Redis workers may run on other machines: they resolve auto there, so the setting itself is shown.
    assert network_precision(Settings(device="cpu", redis_url="redis://127.0.0.1:1/0")) == "auto"


def test_a_server_with_forced_bf16_says_so_and_serves_the_preview(tmp_path, random_pair):
    env = service_env(tmp_path, f"tiny={random_pair[0]}+{random_pair[1]}", precision="bf16", device="cpu")
    with api_server(env, tmp_path / "serve.log") as client:
        assert client.get("/readyz").json()["precision"] == "bf16"
        files = {"file": ("crop.png", png_bytes(32, 24), "image/png")}
        response = client.post("/upscale", params={"alpha": 0.3, "wait": "true"}, files=files)
        assert response.status_code == 200, response.text
        assert image_size(response.content) == (128, 96)
