"""The embedded default pair (issue 8): shipped, described, and better than bicubic on a real photo."""

import numpy as np
import pytest
from paths import SHARED_DATASETS

from models.checkpoints import load_checkpoint, read_metadata
from models.engine import Engine, EngineSettings
from models.registry import DEFAULT_PAIR, resolve_pair
from training.bicubic import downscale_uint8
from training.evaluate import bicubic_upscale, load_hr, modcrop, to_uint8
from training.metrics import psnr_y

PHOTO = SHARED_DATASETS / "Set14" / "lenna.png"


@pytest.fixture(scope="module")
def engine() -> Engine:
    psnr, gan = resolve_pair(DEFAULT_PAIR)
    return Engine.from_pair(psnr, gan, EngineSettings(device="cpu"))


def test_pair_is_ours_and_says_so() -> None:
    psnr, gan = resolve_pair(DEFAULT_PAIR)
    stages = [read_metadata(p)["stage"] for p in (psnr, gan)]
    assert stages == ["psnr", "gan"]
    assert load_checkpoint(psnr).config == load_checkpoint(gan).config
    assert all(read_metadata(p)["provenance"].startswith("esrgan train compact_") for p in (psnr, gan))


@pytest.mark.skipif(not PHOTO.exists(), reason=f"{PHOTO} is not beside the checkout")
@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_upscales_a_real_photo_better_than_bicubic(engine: Engine, alpha: float) -> None:
    hr = modcrop(load_hr(PHOTO)[128:384, 128:384], 4)
    lr = downscale_uint8(hr, 4)
    engine.set_alpha(alpha)
    sr = to_uint8(engine.upscale_array(lr.astype(np.float32) / 255.0))
    assert sr.shape == hr.shape
    gain = psnr_y(sr, hr, 4) - psnr_y(bicubic_upscale(lr, 4), hr, 4)
    # G_PSNR must clearly beat bicubic; G_GAN trades some PSNR for detail but must not fall below bicubic here
    assert gain > (0.5 if alpha == 0 else 0.0), f"alpha={alpha}: {gain:+.2f} dB against bicubic"
