"""ONNX export and the ONNX Runtime backend: one file for every alpha, dynamic sizes, agreement with PyTorch."""

import logging

import numpy as np
import onnxruntime as ort
import pytest
import torch

from esrgan.models.checkpoints import build_generator, read_state_dict
from esrgan.models.engine import Engine, EngineSettings
from esrgan.models.interpolate import interpolate_state_dicts
from esrgan.models.onnx_export import OnnxRunner, export_onnx, providers_for


@pytest.fixture(scope="module")
def onnx_file(random_pair, tmp_path_factory):
    path = tmp_path_factory.mktemp("onnx") / "pair.onnx"
    export_onnx(read_state_dict(random_pair[0]), read_state_dict(random_pair[1]), path)
    return path


def test_one_file_serves_every_alpha_at_any_size(random_pair, onnx_file):
    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["input", "alpha"]
    psnr, gan = read_state_dict(random_pair[0]), read_state_dict(random_pair[1])
    for alpha, (h, w) in [(0.0, (12, 20)), (0.3, (17, 9)), (1.0, (16, 16))]:
        x = torch.rand(2, 3, h, w)
        (y,) = session.run(None, {"input": x.numpy(), "alpha": np.array(alpha, np.float32)})
        with torch.inference_mode():
            ref = build_generator(interpolate_state_dicts(psnr, gan, alpha)).eval()(x)
        assert y.shape == (2, 3, 4 * h, 4 * w)
        np.testing.assert_allclose(y, ref.numpy(), atol=1e-4)


def test_a_single_weights_file_exports_without_alpha(random_pair, tmp_path):
    export_onnx(read_state_dict(random_pair[0]), None, tmp_path / "one.onnx")
    session = ort.InferenceSession(str(tmp_path / "one.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["input"]


@pytest.mark.parametrize("alpha", [0.0, 0.6, 1.0])
def test_backends_agree_on_the_same_weights_alpha_and_tiles(random_pair, alpha):
    settings = {"device": "cpu", "tile": 32, "overlap": 8, "precision": "fp32"}  # ONNX Runtime runs fp32
    torch_engine = Engine.from_pair(*random_pair, EngineSettings(**settings))
    onnx_engine = Engine.from_pair(*random_pair, EngineSettings(backend="onnx", **settings))
    x = np.random.default_rng(0).random((40, 56, 3), dtype=np.float32)
    torch_engine.set_alpha(alpha)
    onnx_engine.set_alpha(alpha)
    a, b = torch_engine.upscale_array(x), onnx_engine.upscale_array(x)
    assert a.shape == b.shape == (160, 224, 3)
    assert np.abs(a - b).max() <= 1e-3


def test_cpu_providers_and_a_quiet_fallback_from_cuda(onnx_file, caplog, capfd):
    assert providers_for("cpu") == ["CPUExecutionProvider"]
    assert providers_for("cuda")[-1] == "CPUExecutionProvider"
    with caplog.at_level(logging.WARNING):
        runner = OnnxRunner(onnx_file, "cuda")
    if runner.session.get_providers()[0] == "CPUExecutionProvider":
        assert "using the CPU" in caplog.text
        assert "Failed to load library" not in capfd.readouterr().err


def test_running_a_pair_without_alpha_is_refused(onnx_file):
    with pytest.raises(ValueError, match="set_alpha"):
        OnnxRunner(onnx_file, "cpu")(torch.rand(1, 3, 8, 8))
