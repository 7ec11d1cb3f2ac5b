"""The engine on a tiny real pair: in-place alpha, tiled output against the interpolated network, picture modes,
premultiplied alpha, 16 bit, progress and cancel, settings. Engines compared with a by-hand fp32 reference are
asked for fp32 (`auto` is bf16 on a CPU that has it: tests/test_precision.py) and, where a blend has its GAN end in
it, for no pre-pad (the reflection around the image has its own test here)."""

import numpy as np
import pytest
import torch

import esrgan.models.torch_runner
from esrgan.models.checkpoints import build_generator, read_state_dict
from esrgan.models.engine import PRE_PAD, Cancelled, Engine, EngineSettings, resolve_precision
from esrgan.models.images import Picture
from esrgan.models.interpolate import interpolate_state_dicts
from esrgan.models.rrdbnet import RRDBConfig


@pytest.fixture()
def engine(random_pair):
    e = Engine.from_pair(*random_pair, EngineSettings(device="cpu", tile=32, overlap=8, precision="fp32", pre_pad=0))
    e.set_alpha(0.4)
    return e


def reference(pair, alpha: float, x: np.ndarray) -> np.ndarray:
    """The interpolated network on the whole image, by hand."""
    net = build_generator(interpolate_state_dicts(read_state_dict(pair[0]), read_state_dict(pair[1]), alpha)).eval()
    with torch.inference_mode():
        return net(torch.from_numpy(x).permute(2, 0, 1)[None])[0].clamp(0, 1).permute(1, 2, 0).numpy()


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1 / np.mean((a.astype(np.float64) - b) ** 2)))


def smooth_image(h: int, w: int, channels: int = 3, seed: int = 0) -> np.ndarray:
    small = torch.rand(1, channels, h // 4, w // 4, generator=torch.Generator().manual_seed(seed))
    big = torch.nn.functional.interpolate(small, size=(h, w), mode="bicubic").clamp(0, 1)
    return big[0].permute(1, 2, 0).numpy().copy()


def test_alpha_is_blended_in_place_and_a_repeat_costs_nothing(engine, monkeypatch):
    calls = []
    real = esrgan.models.torch_runner.interpolate_into
    monkeypatch.setattr(esrgan.models.torch_runner, "interpolate_into", lambda *a: calls.append(a[3]) or real(*a))
    weight = engine.runner.model.conv_first.weight
    before = weight.detach().clone()
    engine.set_alpha(0.9)
    engine.set_alpha(0.9)
    assert calls == [0.9]
    assert engine.runner.model.conv_first.weight is weight and not torch.equal(weight, before)
    with pytest.raises(ValueError, match="alpha"):
        engine.set_alpha(1.5)


@pytest.mark.parametrize("alpha", [0.0, 0.4, 1.0])
def test_tiled_output_matches_the_interpolated_network_on_the_whole_image(engine, random_pair, alpha):
    x = smooth_image(48, 60)
    engine.set_alpha(alpha)
    tiled = engine.upscale_array(x)  # 2 x 3 windows of at most 32 px
    whole = engine.upscale_array(x, tile=128)
    assert tiled.shape == (192, 240, 3)
    np.testing.assert_allclose(whole, reference(random_pair, alpha, x), atol=1e-5)
    assert psnr(tiled, whole) > 60


def test_a_blend_with_its_gan_end_is_reflect_padded_around_the_image_and_cropped(random_pair):
    e = Engine.from_pair(*random_pair, EngineSettings(device="cpu", tile=32, overlap=8, precision="fp32"))
    x = smooth_image(24, 28)
    e.set_alpha(0.0)  # the PSNR network alone handles its border better unpadded
    assert e.pre_pad() == 0
    np.testing.assert_allclose(e.upscale_array(x, tile=128), reference(random_pair, 0.0, x), atol=1e-5)
    e.set_alpha(0.7)
    assert e.pre_pad() == PRE_PAD > 0
    p, s = PRE_PAD, e.scale
    padded = np.pad(x, ((p, p), (p, p), (0, 0)), mode="reflect")
    whole = e.upscale_array(x, tile=128)
    assert whole.shape == (96, 112, 3)
    np.testing.assert_allclose(whole, reference(random_pair, 0.7, padded)[p * s : -p * s, p * s : -p * s], atol=1e-5)
    assert psnr(e.upscale_array(x), whole) > 60  # tiled the same way
    rgba = e.upscale(Picture(smooth_image(20, 28, 4), bits=16))  # pictures are cropped back the same way
    assert rgba.mode == "RGBA" and rgba.pixels.shape == (80, 112, 4) and rgba.pixels.dtype == np.uint16
    forced = Engine.from_pair(*random_pair, EngineSettings(device="cpu", precision="fp32", pre_pad=0))
    forced.set_alpha(0.7)
    np.testing.assert_allclose(forced.upscale_array(x), reference(random_pair, 0.7, x), atol=1e-5)


def test_the_pre_pad_does_not_push_an_image_of_one_tile_into_more(random_pair):
    """The pre-pad is context like the overlap: a 32 px image at tile 32 stays one window once padded to 40."""
    e = Engine.from_pair(*random_pair, EngineSettings(device="cpu", tile=32, overlap=8, precision="fp32"))
    e.set_alpha(0.7)
    assert e.pre_pad() == PRE_PAD
    seen = []
    e.upscale(Picture(smooth_image(32, 32)), progress=lambda done, total: seen.append((done, total)))
    assert seen == [(1, 1)]
    e.upscale(Picture(smooth_image(33, 32)), progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (2, 2)  # one pixel more than the tile: two windows, as without the pre-pad


def test_a_pair_needs_an_alpha_and_a_single_file_refuses_one(random_pair):
    e = Engine.from_pair(*random_pair, EngineSettings(device="cpu"))
    with pytest.raises(ValueError, match="set_alpha"):
        e.upscale_array(np.zeros((8, 8, 3), np.float32))
    single = Engine.from_weights(random_pair[0], EngineSettings(device="cpu", precision="fp32"))
    with pytest.raises(ValueError, match="single weights file"):
        single.set_alpha(0.5)
    x = smooth_image(16, 16)
    np.testing.assert_allclose(single.upscale_array(x), reference(random_pair, 0.0, x), atol=1e-5)


@pytest.mark.parametrize("channels,bits", [(1, 8), (2, 8), (3, 8), (4, 8), (3, 16), (1, 16)])
def test_pictures_keep_their_mode_and_bit_depth(engine, channels, bits):
    px = smooth_image(20, 28, channels)
    pic = Picture(px, bits=bits, icc=b"profile")
    out = engine.upscale(pic)
    assert out.mode == pic.mode and out.bits == bits and out.icc == b"profile"
    assert out.pixels.shape == (80, 112, channels)
    assert out.pixels.dtype == (np.uint16 if bits == 16 else np.uint8)


def test_grey_is_the_mean_of_the_colour_run_of_three_equal_channels(engine):
    grey = smooth_image(24, 24, 1)  # smaller than a tile: one forward
    g = engine.upscale(Picture(grey)).pixels[..., 0].astype(int)
    colour = engine.forward_tiles(torch.from_numpy(np.repeat(grey, 3, axis=2)).permute(2, 0, 1)[None])
    expected = (colour[0].mean(dim=0).clamp(0, 1) * 255).round().numpy()
    assert np.abs(g - expected).max() <= 1


def test_colour_under_full_transparency_does_not_leak_into_the_output(engine):
    rgba = smooth_image(24, 32, 4)
    rgba[..., 3] = 0.0
    rgba[4:20, 6:26, 3] = 1.0  # an opaque patch in a transparent frame
    other = rgba.copy()
    other[rgba[..., 3] == 0, :3] = np.random.default_rng(0).random((int((rgba[..., 3] == 0).sum()), 3))
    a, b = engine.upscale(Picture(rgba)), engine.upscale(Picture(other))
    assert a.mode == "RGBA"
    np.testing.assert_array_equal(a.pixels, b.pixels)


def test_an_opaque_alpha_channel_stays_fully_opaque(engine):
    rgba = smooth_image(16, 16, 4)
    rgba[..., 3] = 1.0
    out = engine.upscale(Picture(rgba))
    assert out.pixels.shape == (64, 64, 4) and (out.pixels[..., 3] == 255).all()


def test_progress_and_cancel_reach_the_tiles(engine):
    pic = Picture(smooth_image(40, 40))
    seen = []
    engine.upscale(pic, progress=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (seen[-1][1], seen[-1][1]) and seen[-1][1] > 1
    with pytest.raises(Cancelled):
        engine.upscale(pic, cancel=lambda: True)


def test_a_model_that_pixel_unshuffles_gets_reflect_padded_and_aligned_tiles(tmp_path, write_pair):
    psnr_path, gan_path = write_pair(tmp_path, RRDBConfig(nf=8, nb=1, gc=4, scale=2))
    e = Engine.from_pair(psnr_path, gan_path, EngineSettings(device="cpu", tile=16, overlap=4, precision="fp32"))
    e.set_alpha(0.5)
    assert e.scale == 2 and e.align == 2
    x = smooth_image(21, 31)
    tiled, whole = e.upscale_array(x), e.upscale_array(x, tile=64)
    assert tiled.shape == whole.shape == (42, 62, 3)
    assert psnr(tiled, whole) > 45


@pytest.mark.parametrize(
    "kwargs",
    [
        {"backend": "tensorrt"},
        {"precision": "fp8"},
        {"device": "tpu"},
        {"tile": 0},
        {"batch": -1},
        {"overlap": -2},
        {"pre_pad": -1},
    ],
)
def test_bad_settings_are_refused(kwargs):
    with pytest.raises(ValueError):
        EngineSettings(**kwargs)


def test_half_precision_is_refused_on_the_cpu(random_pair):
    with pytest.raises(ValueError, match="CUDA"):
        Engine.from_pair(*random_pair, EngineSettings(device="cpu", precision="fp16"))


def test_auto_precision_is_fp16_only_for_pytorch_on_cuda():
    assert resolve_precision(EngineSettings(), "cuda:1") == "fp16"
    assert resolve_precision(EngineSettings(), "cpu", native_bf16=False) == "fp32"  # bf16 where native: test_precision
    assert resolve_precision(EngineSettings(backend="onnx"), "cuda") == "fp32"  # ONNX Runtime runs the fp32 graph
    assert resolve_precision(EngineSettings(precision="bf16"), "cuda") == "bf16"
    with pytest.raises(ValueError, match="ONNX backend runs fp32"):
        resolve_precision(EngineSettings(backend="onnx", precision="fp16"), "cuda")


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_fp16_overflow_is_redone_in_fp32(random_pair):
    e = Engine.from_pair(*random_pair, EngineSettings(device="cuda", precision="fp16"))
    e.set_alpha(0.5)
    with torch.no_grad():
        e.runner.model.conv_last.weight.mul_(1e5)  # drives the output past fp16's 65504
    x = torch.rand(1, 3, 16, 16)
    out = e.forward_tiles(x)
    assert torch.isfinite(out).all() and out.abs().max() > 65504
