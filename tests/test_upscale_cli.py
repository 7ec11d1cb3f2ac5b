"""`esrgan upscale` and `esrgan export-onnx` through typer's runner: files, folders, formats, errors."""

import numpy as np
import onnxruntime as ort
import pytest
from PIL import Image
from typer.testing import CliRunner

from esrgan.cli import app

runner = CliRunner()


@pytest.fixture()
def images(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)).save(folder / "a.png")
    Image.fromarray(rng.integers(0, 256, (16, 12), dtype=np.uint8)).save(folder / "b.jpg")
    (folder / "notes.txt").write_text("not an image, and not picked up from a folder")
    return folder


def test_a_folder_is_upscaled_with_a_summary_line_per_image(random_pair, images, tmp_path):
    out = tmp_path / "out"
    psnr, gan = random_pair
    args = ["upscale", str(images), "-o", str(out), "--psnr", str(psnr), "--gan", str(gan), "--alpha", "0.6"]
    result = runner.invoke(app, [*args, "--tile", "16", "--overlap", "4", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "a.png: 30x20 -> 120x80 in" in result.output and "b.jpg: 12x16 -> 48x64 in" in result.output
    assert Image.open(out / "a_x4.png").size == (120, 80)
    assert Image.open(out / "b_x4.png").mode == "L"


@pytest.mark.parametrize("name,fmt", [("x.webp", "WEBP"), ("x.jpg", "JPEG"), ("x.png", "PNG")])
def test_one_file_to_a_named_file_takes_its_format(random_pair, images, tmp_path, name, fmt):
    dest = tmp_path / name
    result = runner.invoke(app, ["upscale", str(images / "a.png"), "-o", str(dest), "--weights", str(random_pair[0])])
    assert result.exit_code == 0, result.output
    assert Image.open(dest).format == fmt


def test_the_onnx_backend_and_an_explicit_format(random_pair, images, tmp_path):
    args = ["upscale", str(images / "a.png"), "-o", str(tmp_path), "--weights", str(random_pair[0])]
    result = runner.invoke(app, [*args, "--backend", "onnx", "--format", "webp"])
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "a_x4.webp").size == (120, 80)


def test_a_bad_image_is_one_line_and_a_non_zero_exit_while_the_others_are_done(random_pair, images, tmp_path):
    (images / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    result = runner.invoke(app, ["upscale", str(images), "-o", str(tmp_path / "o"), "--weights", str(random_pair[0])])
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "broken.png" in errors[0] and "Traceback" not in result.output
    assert (tmp_path / "o" / "a_x4.png").exists()


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--psnr", "P"], "--psnr and --gan go together"),
        (["--weights", "W", "--model", "M"], "choose one of"),
        (["--model", "nope"], "unknown model pair"),
        (["--weights", "missing.safetensors"], "missing.safetensors"),
    ],
)
def test_bad_model_options_are_one_line_errors(images, tmp_path, extra, message):
    result = runner.invoke(app, ["upscale", str(images), "-o", str(tmp_path), *extra])
    assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output


def test_missing_input_is_a_one_line_error(tmp_path):
    result = runner.invoke(app, ["upscale", str(tmp_path / "nothing.png"), "-o", str(tmp_path)])
    assert result.exit_code == 1 and "no such file or folder" in result.output


def test_export_onnx_writes_a_model_with_alpha_as_an_input(random_pair, tmp_path):
    dest = tmp_path / "pair.onnx"
    psnr, gan = random_pair
    result = runner.invoke(app, ["export-onnx", "--psnr", str(psnr), "--gan", str(gan), "-o", str(dest)])
    assert result.exit_code == 0, result.output
    session = ort.InferenceSession(str(dest), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["input", "alpha"]


def test_outscale_resizes_the_network_output_and_names_the_file(random_pair, images, tmp_path):
    out = tmp_path / "out"
    args = ["upscale", str(images), "-o", str(out), "--weights", str(random_pair[0]), "--outscale", "2.5"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "a.png: 30x20 -> 75x50 in" in result.output
    assert Image.open(out / "a_x2.5.png").size == (75, 50)
    assert Image.open(out / "b_x2.5.png").size == (30, 40)


@pytest.mark.parametrize("scale,message", [("5", "larger than the model's own scale (x4)"), ("1", "more than 1")])
def test_an_impossible_outscale_is_refused_before_any_work(random_pair, images, tmp_path, scale, message):
    args = ["upscale", str(images), "-o", str(tmp_path / "o"), "--weights", str(random_pair[0]), "--outscale", scale]
    result = runner.invoke(app, args)
    assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "o").exists()


def test_recursive_keeps_the_layout_under_the_output(random_pair, images, tmp_path):
    deep = images / "trip" / "day 2"
    deep.mkdir(parents=True)
    Image.fromarray(np.zeros((8, 10, 3), np.uint8)).save(images / "trip" / "c.webp")
    Image.fromarray(np.zeros((6, 6, 3), np.uint8)).save(deep / "d.png")
    out = images / "upscaled"  # inside the input: its files must not be picked up as inputs
    base = ["upscale", str(images), "-o", str(out), "--weights", str(random_pair[0])]

    flat = runner.invoke(app, base)
    assert flat.exit_code == 0, flat.output
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png")) == ["a_x4.png", "b_x4.png"]

    result = runner.invoke(app, [*base, "--recursive", "--outscale", "2"])
    assert result.exit_code == 0, result.output
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*_x2.png"))
    assert written == ["a_x2.png", "b_x2.png", "trip/c_x2.png", "trip/day 2/d_x2.png"]
    assert Image.open(out / "trip" / "day 2" / "d_x2.png").size == (12, 12)
    read = [line.split(": ")[0] for line in result.output.splitlines() if " -> " in line]
    assert len(read) == 4 and not any(name.startswith(str(out)) for name in read)  # no result read back as input
