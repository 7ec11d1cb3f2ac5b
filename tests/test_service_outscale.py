"""Output scale over real HTTP: `esrgan serve` (in-process queue) with a tiny random pair."""

from pathlib import Path

import numpy as np
import pytest
from service_helpers import finished_job, image_size, make_pair, png_bytes, service_env

from esrgan.models.engine import Engine, EngineSettings
from esrgan.models.images import Picture, read_image, write_image
from esrgan.models.resize import resize


@pytest.fixture(scope="module")
def weights(tmp: Path) -> str:
    return make_pair(tmp / "weights", "tiny")


@pytest.fixture(scope="module")
def env(tmp: Path, weights: str) -> dict[str, str]:
    return service_env(tmp, weights, default_alpha=0.5)


@pytest.mark.parametrize(
    ("params", "size", "filename"),
    [
        ({"scale": 2}, (82, 48), "photo_x2.png"),
        ({"scale": 2.5}, (103, 60), "photo_x2.5.png"),  # 102.5 rounds up
        ({"scale": 4}, (164, 96), "photo_x4.png"),
        ({"width": 100}, (100, 59), "photo_100x59.png"),  # 24 * 100 / 41 = 58.5 -> 59
        ({"height": 30}, (51, 30), "photo_51x30.png"),  # 41 * 30 / 24 = 51.25 -> 51
        ({"width": 100, "height": 59}, (100, 59), "photo_100x59.png"),
    ],
)
def test_scale_and_target_size_set_the_output(client, params: dict, size: tuple[int, int], filename: str) -> None:
    job = finished_job(client, png_bytes(41, 24, seed=3), **params)
    assert job["input"] == {"width": 41, "height": 24}
    assert job["output"] == {"width": size[0], "height": size[1]}
    assert job["filename"] == filename
    assert {k: job[k] for k in ("scale", "width", "height")} == {k: params.get(k) for k in ("scale", "width", "height")}
    result = client.get(job["result_url"])
    assert result.status_code == 200 and f'filename="{filename}"' in result.headers["content-disposition"]
    assert image_size(result.content) == size


def expected(weights: str, data: bytes, alpha: float, size: tuple[int, int]) -> Picture:
    """Our own engine's output for the default pair at its x4, resized to `size` by `resize`."""
    psnr, gan = weights.split(",")[0].split("=")[1].split("+")
    engine = Engine.from_pair(psnr, gan, EngineSettings(device="cpu", precision="fp32"))
    engine.set_alpha(alpha)
    picture = read_image(data)
    full = engine.upscale(picture)
    assert (full.width, full.height) == (picture.width * 4, picture.height * 4)
    return resize(full, *size)


def test_the_result_is_the_network_output_resized(client, weights: str) -> None:
    """What the server sends for scale=3 is exactly our own engine's x4 output resized by `resize`: the network ran
    at its own scale and the filter came after (not, say, a resized input)."""
    data = png_bytes(30, 20, seed=4)
    job = finished_job(client, data, scale=3, alpha=0.5)
    served = read_image(client.get(job["result_url"]).content)
    assert served.pixels.shape == (60, 90, 3)
    want = expected(weights, data, 0.5, (90, 60))
    assert np.array_equal((served.pixels * 255 + 0.5).astype(np.uint8), want.pixels)


def test_16_bit_and_alpha_survive_a_scale(client, weights: str) -> None:
    rng = np.random.default_rng(5)
    pixels = rng.integers(0, 65536, (12, 16, 4), dtype=np.uint16)
    pixels[..., 3] = np.linspace(0, 65535, 16, dtype=np.uint16)[None, :]  # from transparent to opaque
    data = write_image(Picture(pixels=pixels, bits=16), "png")
    job = finished_job(client, data, scale=1.5)
    result = read_image(client.get(job["result_url"]).content)
    assert result.bits == 16 and result.mode == "RGBA" and (result.width, result.height) == (24, 18)
    want = expected(weights, data, 0.5, (24, 18))
    assert want.pixels.dtype == np.uint16
    assert np.array_equal((result.pixels * 65535 + 0.5).astype(np.uint16), want.pixels)


def test_wait_answers_the_scaled_image(client) -> None:
    response = client.post(
        "/upscale", params={"scale": 2, "wait": "true"}, files={"file": ("shot.jpg", png_bytes(10, 6), "image/png")}
    )
    assert response.status_code == 200, response.text
    assert image_size(response.content) == (20, 12)
    assert 'filename="shot_x2.png"' in response.headers["content-disposition"]


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"scale": 5}, "Model 'tiny': scale 5 is larger than the model's own scale (x4): ask for at most 4."),
        ({"scale": 4.01}, "scale 4.01 is larger than the model's own scale (x4)"),
        ({"scale": 1}, "scale 1 must be more than 1"),
        ({"scale": 0}, "scale 0 must be more than 1"),
        ({"width": 200}, "width 200 needs x4.88, more than the model's own scale (x4): at most 164"),
        ({"height": 24}, "height 24 must be larger than the image's 24"),
        ({"scale": 2, "width": 80}, "give a scale, or a target width/height, not both"),
        ({"width": 100, "height": 58}, "do not keep the image's aspect ratio (41x24): for width 100 the height is 59"),
    ],
)
def test_impossible_scales_are_422_with_the_reason(client, params: dict, words: str) -> None:
    response = client.post("/upscale", params=params, files={"file": ("a.png", png_bytes(41, 24), "image/png")})
    assert response.status_code == 422, response.text
    assert words in response.json()["detail"]


@pytest.mark.parametrize("params", [{"scale": "nan"}, {"scale": "inf"}, {"scale": "two"}, {"width": 0}, {"height": -3}])
def test_malformed_scale_values_are_422(client, params: dict) -> None:
    response = client.post("/upscale", params=params, files={"file": ("a.png", png_bytes(8, 8), "image/png")})
    assert response.status_code == 422, response.text
    assert next(iter(params)) in str(response.json()["detail"])
