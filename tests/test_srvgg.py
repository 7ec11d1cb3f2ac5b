"""SRVGGNetCompact (Real-ESRGAN's compact network) through every door RRDBNet has: the published key layout and
forward, shape inference, checkpoint files as Real-ESRGAN writes them, conversion, `esrgan info`, interpolation, the
tiled engine and ONNX, on random weights in the real layout."""

import numpy as np
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from esrgan.cli import app
from esrgan.models.architectures import SRVGGConfig, check_shapes, expected_shapes
from esrgan.models.checkpoints import (
    build_generator,
    export_state_dict,
    load_checkpoint,
    load_generator,
    read_state_dict,
    save_generator,
)
from esrgan.models.engine import Engine, EngineSettings
from esrgan.models.interpolate import interpolate_into, interpolate_state_dicts
from esrgan.models.layouts import CheckpointError, Layout, describe_weights
from esrgan.models.onnx_export import export_onnx
from esrgan.models.rrdbnet import RRDBConfig
from esrgan.models.rrdbnet import random_state_dict as random_rrdb
from esrgan.models.srvgg import SRVGGNetCompact, random_state_dict

SMALL = SRVGGConfig(num_feat=8, num_conv=3, scale=4)
GENERAL_X4V3 = SRVGGConfig(num_feat=64, num_conv=32, scale=4)  # realesr-general-x4v3 and -wdn-x4v3
ANIMEVIDEO_V3 = SRVGGConfig(num_feat=64, num_conv=16, scale=4)


def assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]), k


def by_hand(sd: dict[str, torch.Tensor], x: torch.Tensor, num_conv: int, scale: int) -> torch.Tensor:
    """Real-ESRGAN's forward written out on the tensors: conv, PReLU, ..., conv, pixel shuffle, + nearest input."""
    out = x
    for i in range(num_conv + 1):
        out = F.prelu(
            F.conv2d(out, sd[f"body.{2 * i}.weight"], sd[f"body.{2 * i}.bias"], padding=1),
            sd[f"body.{2 * i + 1}.weight"],
        )
    last = 2 * num_conv + 2
    out = F.conv2d(out, sd[f"body.{last}.weight"], sd[f"body.{last}.bias"], padding=1)
    return F.pixel_shuffle(out, scale) + F.interpolate(x, scale_factor=scale, mode="nearest")


def test_the_key_layout_is_real_esrgans() -> None:
    keys = list(SRVGGNetCompact(SMALL).state_dict())
    assert keys == [
        "body.0.weight", "body.0.bias", "body.1.weight",  # first conv, its PReLU
        "body.2.weight", "body.2.bias", "body.3.weight",
        "body.4.weight", "body.4.bias", "body.5.weight",
        "body.6.weight", "body.6.bias", "body.7.weight",
        "body.8.weight", "body.8.bias",  # the last conv, to 3 x 4^2 channels for the pixel shuffle
    ]  # fmt: skip
    sd = SRVGGNetCompact(GENERAL_X4V3).state_dict()
    assert sd["body.1.weight"].shape == (64,) and sd["body.66.weight"].shape == (48, 64, 3, 3)
    assert sum(v.numel() for v in sd.values()) == 1_213_296  # realesr-general-x4v3's parameter count


@pytest.mark.parametrize("scale", [1, 2, 4])
def test_the_forward_is_real_esrgans(scale: int) -> None:
    config = SRVGGConfig(num_feat=8, num_conv=3, scale=scale)
    sd = random_state_dict(config, seed=scale)
    net = build_generator(sd).eval()
    x = torch.rand(2, 3, 9, 13)
    with torch.inference_mode():
        y = net(x)
    assert y.shape == (2, 3, 9 * scale, 13 * scale)
    torch.testing.assert_close(y, by_hand(sd, x, 3, scale))
    assert (y - F.interpolate(x, scale_factor=scale)).abs().mean() > 0.01  # the residual is not negligible


@pytest.mark.parametrize("config", [SMALL, GENERAL_X4V3, ANIMEVIDEO_V3, SRVGGConfig(1, 1, 16, 1, 2)], ids=str)
def test_hyper_parameters_are_read_off_the_shapes(config: SRVGGConfig) -> None:
    shapes = expected_shapes(config)
    assert shapes == {k: tuple(v.shape) for k, v in SRVGGNetCompact(config).state_dict().items()}
    assert check_shapes(shapes) == config


def test_a_real_esrgan_file_loads_round_trips_and_is_described_from_its_header(tmp_path) -> None:
    ema, plain = random_state_dict(SMALL, 1), random_state_dict(SMALL, 2)
    torch.save({"params_ema": ema, "params": plain}, tmp_path / "realesr.pth")  # as Real-ESRGAN's releases wrap it
    loaded = load_checkpoint(tmp_path / "realesr.pth")
    assert (loaded.layout, loaded.wrapper, loaded.config) == (Layout.BASICSR, "params_ema", SMALL)
    assert_same(loaded.state_dict, ema)
    assert describe_weights(tmp_path / "realesr.pth") == loaded.info
    save_generator(tmp_path / "ours.safetensors", ema, stage="gan", provenance="test")
    export_state_dict(tmp_path / "back.pth", read_state_dict(tmp_path / "ours.safetensors"), Layout.BASICSR)
    assert_same(torch.load(tmp_path / "back.pth", weights_only=True)["params"], ema)
    ours = describe_weights(tmp_path / "ours.safetensors")
    assert ours.config == SMALL and ours.metadata["arch"] == "SRVGGNetCompact"
    assert ours.parameters == sum(v.numel() for v in ema.values()) and ours.dtypes == ("float32",)
    x = torch.rand(1, 3, 6, 7)
    with torch.inference_mode():
        assert torch.equal(
            load_generator(tmp_path / "ours.safetensors")(x), load_generator(tmp_path / "realesr.pth")(x)
        )
    for layout in (Layout.ESRGAN, Layout.ESRGAN_OLD):
        with pytest.raises(CheckpointError, match=rf"the {layout.value} layout holds RRDBNets only"):
            export_state_dict(tmp_path / "nope.pth", ema, layout)


def test_files_it_cannot_be_are_refused_in_words(tmp_path) -> None:
    sd = random_state_dict(SMALL)
    relu = {k: v for k, v in sd.items() if v.dim() != 1 or k.endswith(".bias")}  # act_type='relu': no slopes
    gap = {k: v for k, v in sd.items() if k != "body.4.bias"}
    odd = sd | {"body.8.weight": torch.zeros(40, 8, 3, 3), "body.8.bias": torch.zeros(40)}
    slopes = sd | {"body.3.weight": torch.zeros(1)}
    cases = {
        "relu.pth": (relu, r"basicsr needs \['body\.1\.weight'\] \(SRVGGNetCompact\)"),
        "gap.pth": (gap, r"does not match the SRVGGNetCompact .*missing keys \['body\.4\.bias'\]"),
        "odd.pth": (odd, r"cannot tell the scale: the last conv gives 40 channels"),
        "slopes.pth": (slopes, r"wrong shapes \[body\.3\.weight: expected \(8,\), found \(1,\)\]"),
    }
    for name, (weights, message) in cases.items():
        torch.save({"params": weights}, tmp_path / name)
        with pytest.raises(CheckpointError, match=rf"{name.replace('.', '[.]')}: .*{message}"):
            read_state_dict(tmp_path / name)


def test_esrgan_info_names_the_architecture(tmp_path) -> None:
    torch.save({"params": random_state_dict(GENERAL_X4V3)}, tmp_path / "realesr-general-x4v3.pth")
    result = CliRunner().invoke(app, ["info", str(tmp_path / "realesr-general-x4v3.pth")])
    assert result.exit_code == 0, result.output
    assert "layout: basicsr (wrapped in 'params')" in result.stdout
    assert "architecture: SRVGGNetCompact x4 num_feat=64 num_conv=32 in_ch=3 out_ch=3" in result.stdout
    assert "parameters: 1,213,296 (float32)" in result.stdout


def test_interpolation_endpoints_and_mismatched_pairs() -> None:
    a, b = random_state_dict(SMALL, 0), random_state_dict(SMALL, 1)
    assert_same(interpolate_state_dicts(a, b, 0.0), a)
    assert_same(interpolate_state_dicts(a, b, 1.0), b)
    half = interpolate_state_dicts(a, b, 0.5)
    torch.testing.assert_close(half["body.1.weight"], (a["body.1.weight"] + b["body.1.weight"]) / 2)
    net = build_generator(a)
    interpolate_into(net, a, b, 0.5)
    assert_same(net.state_dict(), half)
    deeper = random_state_dict(SRVGGConfig(num_feat=8, num_conv=4))
    wider = random_state_dict(SRVGGConfig(num_feat=16, num_conv=3))
    rrdb = random_rrdb(RRDBConfig(nf=8, nb=1, gc=4))
    for other, message in ((deeper, "do not match"), (wider, "other shapes"), (rrdb, "do not match")):
        with pytest.raises(ValueError, match=message):
            interpolate_state_dicts(a, other, 0.5)


@pytest.fixture(scope="module")
def pair(tmp_path_factory) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    psnr = random_state_dict(SMALL, 3)
    noise = torch.Generator().manual_seed(4)
    return psnr, {k: v + 0.05 * torch.randn(v.shape, generator=noise) for k, v in psnr.items()}


@pytest.mark.parametrize("alpha", [0.0, 0.3, 1.0])
def test_the_tiled_engine_matches_the_blended_network_on_the_whole_image(pair, alpha: float) -> None:
    engine = Engine(*pair, EngineSettings(device="cpu", tile=48, overlap=22, precision="fp32", pre_pad=0))
    engine.set_alpha(alpha)
    x = torch.nn.functional.interpolate(torch.rand(1, 3, 10, 12), size=(37, 45), mode="bicubic").clamp(0, 1)
    x = torch.cat([x, x.flip(2)], 2).repeat(1, 1, 1, 2)[:, :, :70, :90]
    image = x[0].permute(1, 2, 0).numpy().copy()
    tiled = engine.upscale_array(image)  # 2 x 3 windows of at most 48 px
    with torch.inference_mode():
        whole = build_generator(interpolate_state_dicts(*pair, alpha)).eval()(x)[0].clamp(0, 1).permute(1, 2, 0)
    assert engine.scale == 4 and tiled.shape == (280, 360, 3)
    # every output pixel comes from a window where it sits a quarter-overlap (5.5 px) or more from a cut: beyond the
    # 5 px reach of this net's five 3x3 convs, so the tiles give the whole-image result
    np.testing.assert_allclose(tiled, whole.numpy(), atol=1e-5)


def test_onnx_serves_every_alpha_and_a_single_model(pair, tmp_path) -> None:
    export_onnx(*pair, tmp_path / "pair.onnx")
    export_onnx(pair[0], None, tmp_path / "one.onnx")
    x = torch.rand(1, 3, 11, 14)
    session = ort.InferenceSession(str(tmp_path / "pair.onnx"), providers=["CPUExecutionProvider"])
    for alpha in (0.0, 0.6, 1.0):
        (y,) = session.run(None, {"input": x.numpy(), "alpha": np.array(alpha, np.float32)})
        with torch.inference_mode():
            ref = build_generator(interpolate_state_dicts(*pair, alpha)).eval()(x)
        assert y.shape == (1, 3, 44, 56)
        np.testing.assert_allclose(y, ref.numpy(), atol=1e-4)
    single = ort.InferenceSession(str(tmp_path / "one.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in single.get_inputs()] == ["input"]
    with torch.inference_mode():
        ref = build_generator(pair[0]).eval()(x)
    np.testing.assert_allclose(single.run(None, {"input": x.numpy()})[0], ref.numpy(), atol=1e-4)
