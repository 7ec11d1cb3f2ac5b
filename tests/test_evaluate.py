"""`esrgan eval` end to end on a tiny real generator pair and small crops of real benchmark images."""

import csv
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from paths import SHARED_DATASETS
from PIL import Image
from typer.testing import CliRunner

from esrgan.cli import app
from esrgan.models.checkpoints import load_generator, save_generator
from esrgan.models.registry import PAIRS, FileSpec, PairSpec
from esrgan.models.rrdbnet import RRDBConfig, RRDBNet
from esrgan.training.bicubic import downscale_uint8
from esrgan.training.evaluate import bicubic_upscale, evaluate, image_rows, network_outputs, score, to_uint8
from esrgan.training.metrics import psnr_y, ssim_y

DATASETS = SHARED_DATASETS
pytestmark = pytest.mark.skipif(not DATASETS.is_dir(), reason="the shared Set5/Set14 images are not here")
TINY = RRDBConfig(nf=8, nb=1, gc=4, scale=4)


@pytest.fixture(scope="module")
def pair(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("pair")
    paths = []
    for seed, stage in ((0, "psnr"), (1, "gan")):
        torch.manual_seed(seed)
        net = RRDBNet(TINY)
        with torch.no_grad():  # a freshly initialised net outputs an almost flat image: give it texture
            net.conv_last.weight.mul_(30)
            net.conv_last.bias.fill_(0.4)
        paths.append(folder / f"{stage}.safetensors")
        save_generator(paths[-1], net.state_dict(), stage=stage, provenance="test: random tiny net")
    return paths[0], paths[1]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """Two crops big enough for NIQE (RGB and Set14's gray bridge), one too small for it; sizes not multiples of 4."""
    folder = tmp_path_factory.mktemp("hr")
    Image.open(DATASETS / "Set5/baby.png").crop((100, 150, 302, 257)).save(folder / "baby.png")
    Image.open(DATASETS / "Set14/bridge.png").crop((40, 60, 241, 165)).save(folder / "bridge.png")
    Image.open(DATASETS / "Set5/bird.png").crop((90, 80, 150, 134)).save(folder / "bird.png")
    return folder


@pytest.fixture(scope="module")
def report(pair, data, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval")
    return evaluate(pair[0], pair[1], data, out, alphas=[0.5], device="cpu", progress=False)


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def find(rows, image, method, alpha=""):
    (row,) = [r for r in rows if r["image"] == image and r["method"] == method and r["alpha"] == alpha]
    return row


def direct_sr(path: Path, lr: np.ndarray) -> np.ndarray:
    """The generator run by hand, without the engine."""
    net = load_generator(path).eval()
    with torch.no_grad():
        y = net(torch.from_numpy(lr.astype(np.float32) / 255.0).permute(2, 0, 1)[None])
    return y[0].permute(1, 2, 0).clamp(0, 1).numpy()


def test_csv_has_every_image_method_and_alpha_and_the_means(report):
    rows = read_rows(report.csv_path)
    assert list(rows[0]) == ["image", "method", "alpha", "psnr", "ssim", "niqe", "hatch", "colour_shift"]
    keys = {("hr", ""), ("bicubic", ""), *((m, a) for m in ("network", "image") for a in ("0", "0.5", "1"))}
    for image in ("baby.png", "bird.png", "bridge.png", "mean"):
        assert {(r["method"], r["alpha"]) for r in rows if r["image"] == image} == keys
    assert len(rows) == 4 * len(keys)
    for r in rows:
        if r["method"] != "hr":
            assert 0 < float(r["psnr"]) < 60 and -1 < float(r["ssim"]) <= 1


def test_alpha_endpoints_reproduce_the_pair(report, pair, data):
    hr = np.asarray(Image.open(data / "baby.png"))[:104, :200]
    lr = downscale_uint8(hr, 4)
    rows = read_rows(report.csv_path)
    for alpha, path in ((0.0, pair[0]), (1.0, pair[1])):
        sr = to_uint8(direct_sr(path, lr))
        for method in ("network", "image"):
            row = find(rows, "baby.png", method, f"{alpha:g}")
            assert float(row["psnr"]) == pytest.approx(psnr_y(sr, hr, 4), abs=1e-4)
            assert float(row["ssim"]) == pytest.approx(ssim_y(sr, hr, 4), abs=1e-4)
    assert find(rows, "baby.png", "network", "0")["psnr"] != find(rows, "baby.png", "network", "1")["psnr"]


def test_engine_outputs_match_the_generators(pair, data):
    from esrgan.models.engine import Engine, EngineSettings

    lr = downscale_uint8(np.asarray(Image.open(data / "baby.png"))[:104, :200], 4)
    engine = Engine.from_pair(pair[0], pair[1], EngineSettings(device="cpu", precision="fp32", pre_pad=0))
    outputs = network_outputs(engine, lr, [0.0, 0.5, 1.0])
    np.testing.assert_allclose(outputs[0.0], direct_sr(pair[0], lr), atol=1e-5)
    np.testing.assert_allclose(outputs[1.0], direct_sr(pair[1], lr), atol=1e-5)
    assert np.abs(outputs[0.5] - outputs[0.0]).max() > 1e-3  # interpolated weights give a third image


def test_bicubic_and_gray_rows(report, data):
    rows = read_rows(report.csv_path)
    hr = np.asarray(Image.open(data / "baby.png"))[:104, :200]
    sr = bicubic_upscale(downscale_uint8(hr, 4), 4)
    assert float(find(rows, "baby.png", "bicubic")["psnr"]) == pytest.approx(psnr_y(sr, hr, 4), abs=1e-4)
    gray = np.asarray(Image.open(data / "bridge.png"))[:104, :200]  # scored on raw gray levels
    rgb = np.repeat(gray[:, :, None], 3, axis=2)
    sr = bicubic_upscale(downscale_uint8(rgb, 4), 4)[:, :, 0]
    assert float(find(rows, "bridge.png", "bicubic")["psnr"]) == pytest.approx(psnr_y(sr, gray, 4), abs=1e-4)
    assert find(rows, "bridge.png", "hr")["psnr"] == "inf"


def test_gray_images_on_raw_levels_or_as_rgb(data):
    gray = np.asarray(Image.open(data / "bridge.png"))[:104, :200]
    rgb = np.repeat(gray[:, :, None], 3, axis=2)
    sr = bicubic_upscale(downscale_uint8(rgb, 4), 4)
    raw, as_rgb = score(sr, gray, 4), score(sr, rgb, 4)
    assert raw[0] == pytest.approx(psnr_y(sr[:, :, 0], gray, 4), abs=1e-12)
    assert as_rgb[0] - raw[0] == pytest.approx(20 * math.log10(255 / 219), abs=0.1)  # Y squeezes 0-255 into 16-235


def test_niqe_is_left_out_only_where_the_image_is_too_small(report):
    rows = read_rows(report.csv_path)
    assert all(r["niqe"] == "nan" for r in rows if r["image"] == "bird.png")
    for r in rows:
        if r["image"] != "bird.png":
            assert math.isfinite(float(r["niqe"])) and float(r["niqe"]) > 0
    baby, bridge = (float(find(rows, i, "bicubic")["niqe"]) for i in ("baby.png", "bridge.png"))
    assert float(find(rows, "mean", "bicubic")["niqe"]) == pytest.approx((baby + bridge) / 2, abs=2e-4)


def test_artifact_columns_against_alpha_0_and_nan_where_undefined(report):
    rows = read_rows(report.csv_path)
    assert all(r["hatch"] == "nan" for r in rows)  # no crop holds a flat 64 px patch 16 px inside its borders
    assert all(r["colour_shift"] == "nan" for r in rows if r["image"] == "bridge.png")  # gray
    for image in ("baby.png", "bird.png"):
        assert find(rows, image, "network", "0")["colour_shift"] == find(rows, image, "image", "0")["colour_shift"]
        assert float(find(rows, image, "network", "0")["colour_shift"]) == 0
        assert find(rows, image, "image", "1")["colour_shift"] == find(rows, image, "network", "1")["colour_shift"]
        assert float(find(rows, image, "network", "1")["colour_shift"]) > 0
    shifts = [float(find(rows, i, "network", "1")["colour_shift"]) for i in ("baby.png", "bird.png")]
    assert float(find(rows, "mean", "network", "1")["colour_shift"]) == pytest.approx(np.mean(shifts), abs=2e-4)


@pytest.mark.parametrize("gray", [False, True])
def test_rows_measure_a_hatch_and_a_tint_added_to_a_flat_sky(gray):
    """alpha 1 adds a diagonal sinusoid of 2 luma levels (and grain, which dithers the rounding as a real output's
    does) and takes 4 levels of blue away; alpha 0 is the bicubic upscale."""
    rng = np.random.default_rng(0)
    sky = np.full((200, 200), 150.0) + rng.normal(0, 1.0, (200, 200))
    hr = np.clip(np.round(sky), 0, 255).astype(np.uint8)
    rgb_hr = np.repeat(hr[:, :, None], 3, axis=2)
    bicubic = bicubic_upscale(downscale_uint8(rgb_hr, 4), 4)
    y, x = np.mgrid[:200, :200]
    hatch = 2.0 * (1.0 if gray else 255 / 219) * np.sin(2 * np.pi * 6 * (x + y) / 64)  # 8.5 cycles per 64 px
    gan = bicubic + hatch[:, :, None] + rng.normal(0, 1.5, bicubic.shape) - (0, 0, 4)
    outputs = {0.0: bicubic / 255.0, 0.5: bicubic / 255.0, 1.0: np.clip(gan / 255.0, 0, 1)}
    network_u8 = {alpha: to_uint8(out) for alpha, out in outputs.items()}
    rows = {(r.method, r.alpha): r for r in image_rows("sky", hr if gray else rgb_hr, bicubic, outputs, network_u8, 4)}
    assert rows["hr", None].hatch < 0.1 and rows["network", 0.0].hatch < 0.1
    assert rows["network", 1.0].hatch == pytest.approx(2.0, rel=0.15)
    assert rows["image", 0.5].hatch == pytest.approx(1.0, rel=0.15)
    if gray:
        assert all(math.isnan(r.colour_shift) for r in rows.values())
        return
    assert rows["network", 0.0].colour_shift == 0 and rows["bicubic", None].colour_shift == 0
    assert rows["network", 1.0].colour_shift == pytest.approx(4.0, abs=0.1)
    assert rows["image", 0.5].colour_shift == pytest.approx(2.0, abs=0.1)
    assert rows["hr", None].colour_shift < 0.5


def test_plot_and_crops_are_real_pngs(report):
    with Image.open(report.plot_path) as plot:
        assert plot.format == "PNG" and plot.width > 300 and plot.height > 200
    assert sorted(p.name for p in report.crop_paths) == ["baby.png", "bird.png", "bridge.png"]
    with Image.open(report.crop_paths[0]) as strip:  # 5 panels: bicubic | alpha 0 | 0.5 | 1 | HR
        assert strip.format == "PNG" and strip.width > 4 * strip.height - 30


def test_cli(pair, data, tmp_path):
    (tmp_path / "hr").mkdir()
    (tmp_path / "hr" / "baby.png").write_bytes((data / "baby.png").read_bytes())
    args = [
        "eval",
        "--psnr",
        str(pair[0]),
        "--gan",
        str(pair[1]),
        "--data",
        str(tmp_path / "hr"),
        "--out",
        str(tmp_path),
    ]
    result = CliRunner().invoke(app, [*args, "--alphas", "1,0.5", "--device", "cpu", "--tile", "32"])
    assert result.exit_code == 0, result.output
    assert "bicubic" in result.output and (tmp_path / "metrics.csv").is_file()
    assert (tmp_path / "perception_distortion.png").is_file()
    bad = CliRunner().invoke(app, [*args, "--alphas", "0,1.5"])
    assert bad.exit_code != 0 and "1.5" in bad.output


def test_cli_scores_a_known_pair_by_name_and_the_embedded_pair_by_default(pair, data, tmp_path, monkeypatch):
    monkeypatch.setenv("ESRGAN_CACHE_DIR", str(pair[0].parent))
    files = [FileSpec(p.name, None, "ours", 4, provenance="test", note="made by the test") for p in pair]
    monkeypatch.setitem(PAIRS, "tiny", PairSpec(psnr=files[0], gan=files[1], note="a test pair"))
    (tmp_path / "hr").mkdir()
    (tmp_path / "hr" / "baby.png").write_bytes((data / "baby.png").read_bytes())
    common = ["--data", str(tmp_path / "hr"), "--alphas", "0.5", "--device", "cpu"]
    by_files = ["--psnr", str(pair[0]), "--gan", str(pair[1])]
    for name, how in (("files", by_files), ("name", ["--model", "tiny"]), ("embedded", [])):
        result = CliRunner().invoke(app, ["eval", *how, *common, "--out", str(tmp_path / name)])
        assert result.exit_code == 0, result.output
    assert (tmp_path / "name/metrics.csv").read_text() == (tmp_path / "files/metrics.csv").read_text()
    psnr_at_1 = [
        float(find(read_rows(tmp_path / f"{n}/metrics.csv"), "baby.png", "network", "1")["psnr"])
        for n in ("embedded", "files")
    ]
    assert psnr_at_1[0] > psnr_at_1[1] + 3  # the trained pair, far better than the random one
    for how, message in (
        (["--model", "tiny", *by_files], "not both"),
        (["--psnr", str(pair[0])], "--psnr and --gan go together"),
        (["--model", "realesr-animevideov3"], "single model"),
    ):
        result = CliRunner().invoke(app, ["eval", *how, *common, "--out", str(tmp_path / "bad")])
        assert result.exit_code != 0 and message in result.output, result.output
