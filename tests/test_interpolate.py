"""Network interpolation: exact endpoints, linear in between, in place equal to out of place, clear refusals."""

import math

import pytest
import torch

from esrgan.models.interpolate import check_alpha, interpolate_into, interpolate_state_dicts
from esrgan.models.rrdbnet import RRDBConfig, RRDBNet, random_state_dict

CONFIG = RRDBConfig(nf=8, nb=2, gc=4)


@pytest.fixture
def pair() -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    return random_state_dict(CONFIG, 1), random_state_dict(CONFIG, 2)


def test_endpoints_are_bit_exact_copies(pair) -> None:
    psnr, gan = pair
    for alpha, want in ((0.0, psnr), (1.0, gan), (0, psnr), (1, gan)):
        out = interpolate_state_dicts(psnr, gan, alpha)
        assert out.keys() == want.keys()
        for k in want:
            assert torch.equal(out[k], want[k])
            assert out[k].data_ptr() != want[k].data_ptr()  # a copy: changing the blend never touches the inputs


@pytest.mark.parametrize("alpha", [0.2, 0.5, 0.8])
def test_blend_is_linear(pair, alpha: float) -> None:
    psnr, gan = pair
    out = interpolate_state_dicts(psnr, gan, alpha)
    for k in psnr:
        torch.testing.assert_close(out[k], (1 - alpha) * psnr[k] + alpha * gan[k], rtol=0, atol=1e-6)
    mid = interpolate_state_dicts(psnr, gan, 0.5)
    quarter = interpolate_state_dicts(psnr, mid, 0.5)
    direct = interpolate_state_dicts(psnr, gan, 0.25)
    torch.testing.assert_close(quarter["conv_last.weight"], direct["conv_last.weight"])


@pytest.mark.parametrize("alpha", [0.0, 0.37, 0.8, 1.0])
def test_in_place_equals_out_of_place_without_new_tensors(pair, alpha: float) -> None:
    psnr, gan = pair
    model = RRDBNet(CONFIG).eval()
    pointers = {k: v.data_ptr() for k, v in model.state_dict().items()}
    interpolate_into(model, psnr, gan, alpha)
    expected = interpolate_state_dicts(psnr, gan, alpha)
    got = model.state_dict()
    assert {k: v.data_ptr() for k, v in got.items()} == pointers
    for k in expected:
        assert torch.equal(got[k], expected[k]), k
    x = torch.rand(1, 3, 8, 8)
    fresh = RRDBNet(CONFIG).eval()
    fresh.load_state_dict(expected)
    with torch.inference_mode():
        assert torch.equal(model(x), fresh(x))


def test_in_place_converts_dtype(pair) -> None:
    psnr, gan = pair
    model = RRDBNet(CONFIG).double()
    interpolate_into(model, psnr, gan, 0.5)
    assert model.conv_first.weight.dtype == torch.float64
    mean = (psnr["conv_first.weight"] + gan["conv_first.weight"]) / 2
    torch.testing.assert_close(model.conv_first.weight.float(), mean)


@pytest.mark.parametrize("bad", [-0.01, 1.0001, math.nan, math.inf, -math.inf, "0.5", None, True])
def test_bad_alpha_is_refused(pair, bad) -> None:
    with pytest.raises(ValueError, match="alpha"):
        check_alpha(bad)
    with pytest.raises(ValueError, match="alpha"):
        interpolate_state_dicts(*pair, bad)
    with pytest.raises(ValueError, match="alpha"):
        interpolate_into(RRDBNet(CONFIG), *pair, bad)


def test_check_alpha_returns_float() -> None:
    assert check_alpha(1) == 1.0 and isinstance(check_alpha(1), float)


def test_mismatched_pairs_are_refused(pair) -> None:
    psnr, gan = pair
    other = random_state_dict(RRDBConfig(nf=8, nb=3, gc=4), 3)
    with pytest.raises(ValueError, match=r"different architectures.*unexpected \['body\.2\."):
        interpolate_state_dicts(psnr, other, 0.5)
    wider = random_state_dict(RRDBConfig(nf=8, nb=2, gc=6), 3)
    expected = r"other shapes.*body\.0\.rdb1\.conv1\.weight: \(4, 8, 3, 3\) vs \(6, 8, 3, 3\)"
    with pytest.raises(ValueError, match=expected):
        interpolate_state_dicts(psnr, wider, 0.5)
    with pytest.raises(ValueError, match="the model's parameters do not match"):
        interpolate_into(RRDBNet(RRDBConfig(nf=8, nb=3, gc=4)), psnr, gan, 0.5)
    ints = {k: v.to(torch.int32) for k, v in gan.items()}
    with pytest.raises(ValueError, match="non-floating-point"):
        interpolate_state_dicts(psnr, ints, 0.5)
