"""VGG19 features on weights in torchvision's key layout, made by the test; compared with a plain functional VGG."""

import functools
import hashlib
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from esrgan.models import vgg
from esrgan.models.vgg import LAYER_NAMES, VGGFeatures, load_vgg19, vgg19_weights_path

# torchvision's cfg "E": numbers are 3x3 convs (each followed by a ReLU), "M" a 2x2 max-pool.
CFG_E = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"]


@functools.cache
def torchvision_layout() -> dict[str, torch.Tensor]:
    """Random weights under torchvision's vgg19 keys, classifier included, as the published file has them."""
    gen = torch.Generator().manual_seed(0)
    sd, index, in_ch = {}, 0, 3
    for v in CFG_E:
        if v == "M":
            index += 1
            continue
        sd[f"features.{index}.weight"] = torch.randn(v, in_ch, 3, 3, generator=gen) * (2 / (9 * in_ch)) ** 0.5
        sd[f"features.{index}.bias"] = torch.randn(v, generator=gen) * 0.1
        index, in_ch = index + 2, v
    for i, (n_in, n_out) in {0: (32, 16), 3: (16, 16), 6: (16, 10)}.items():  # shrunken, never read
        sd[f"classifier.{i}.weight"], sd[f"classifier.{i}.bias"] = torch.zeros(n_out, n_in), torch.zeros(n_out)
    return sd


def reference(sd: dict[str, torch.Tensor], x: torch.Tensor) -> dict[int, torch.Tensor]:
    """Every intermediate of torchvision's `features`, by index, written independently of models/vgg.py."""
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    x, out, index = (x - mean) / std, {}, 0
    for v in CFG_E:
        if v == "M":
            x = out[index] = F.max_pool2d(x, 2)
            index += 1
        else:
            x = out[index] = F.conv2d(x, sd[f"features.{index}.weight"], sd[f"features.{index}.bias"], padding=1)
            x = out[index + 1] = F.relu(x)
            index += 2
    return out


def test_layer_names_follow_torchvision_indices() -> None:
    assert len(LAYER_NAMES) == 37
    assert LAYER_NAMES.index("conv1_1") == 0 and LAYER_NAMES.index("pool1") == 4
    assert LAYER_NAMES.index("relu4_4") == 26 and LAYER_NAMES.index("conv5_4") == 34 and LAYER_NAMES[35] == "relu5_4"


def test_conv5_4_is_taken_before_the_relu() -> None:
    sd = torchvision_layout()
    net = VGGFeatures(sd, ["conv5_4", "relu5_4", "relu4_4", "conv1_1"])
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        got = net(x)
    want = reference(sd, x)
    assert set(got) == {"conv5_4", "relu5_4", "relu4_4", "conv1_1"}
    for name, index in (("conv5_4", 34), ("relu5_4", 35), ("relu4_4", 26), ("conv1_1", 0)):
        torch.testing.assert_close(got[name], want[index], rtol=1e-4, atol=1e-4)
    assert (got["conv5_4"] < 0).any()  # pre-activation: the ReLU has not clipped it
    assert torch.equal(got["relu5_4"], got["conv5_4"].clamp(min=0))


def test_only_layers_up_to_the_deepest_are_built() -> None:
    sd = {k: v for k, v in torchvision_layout().items() if k.startswith(("features.0.", "features.2.", "features.5."))}
    net = VGGFeatures(sd, ["relu2_1"])  # conv1_1, relu, conv1_2, relu, pool1, conv2_1, relu2_1
    assert len(net.features) == 7
    assert sum(p.numel() for p in net.parameters()) == (3 * 64 * 9 + 64) + (64 * 64 * 9 + 64) + (64 * 128 * 9 + 128)


def test_input_is_imagenet_normalised() -> None:
    net = VGGFeatures(torchvision_layout(), ["conv1_1"])
    mean_image = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1).expand(1, 3, 8, 8)
    out = net(mean_image)["conv1_1"]  # a normalised input of zeros: the output is the bias everywhere
    torch.testing.assert_close(out, torchvision_layout()["features.0.bias"].view(1, 64, 1, 1).expand_as(out))


def test_frozen_but_passes_gradients_to_its_input() -> None:
    net = VGGFeatures(torchvision_layout(), ["relu3_4"])
    assert not any(p.requires_grad for p in net.parameters())
    net.train()
    assert not net.training
    x = torch.rand(1, 3, 16, 16, requires_grad=True)
    net(x)["relu3_4"].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in net.parameters())


def test_bad_requests_and_weights() -> None:
    with pytest.raises(ValueError, match="unknown VGG19 layers \\['conv6_1'\\]"):
        VGGFeatures(torchvision_layout(), ["conv6_1"])
    partial = {k: v for k, v in torchvision_layout().items() if not k.startswith("features.34.")}
    with pytest.raises(ValueError, match=r"lack \['features\.34\.weight', 'features\.34\.bias'\]"):
        VGGFeatures(partial, ["conv5_4"])
    wrong = torchvision_layout() | {"features.0.weight": torch.zeros(64, 3, 5, 5)}
    with pytest.raises(ValueError, match="do not fit"):
        VGGFeatures(wrong, ["conv1_1"])


def test_load_from_a_local_file(tmp_path: Path) -> None:
    torch.save(torchvision_layout(), tmp_path / "vgg19.pth")
    net = load_vgg19(["relu1_2"], path=tmp_path / "vgg19.pth")
    assert torch.equal(net.features[2].weight, torchvision_layout()["features.2.weight"])


def test_missing_weights_offline_say_where_to_put_them(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(FileNotFoundError, match=rf"download {vgg.VGG19_URL} .* put it at {tmp_path}/vgg19-dcbb9e9d"):
        vgg19_weights_path(cache_dir=tmp_path, download=False)
    with pytest.raises(FileNotFoundError, match="not found at"):
        vgg19_weights_path(path=tmp_path / "elsewhere.pth")


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def test_found_in_cache_or_downloaded_and_verified(tmp_path: Path, monkeypatch) -> None:
    served = tmp_path / "served"
    served.mkdir()
    torch.save(torchvision_layout(), served / "vgg19.pth")
    handler = functools.partial(QuietHandler, directory=str(served))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
        monkeypatch.setattr(vgg, "VGG19_URL", f"http://127.0.0.1:{httpd.server_address[1]}/vgg19.pth")
        monkeypatch.setattr(vgg, "VGG19_SHA256", hashlib.sha256((served / "vgg19.pth").read_bytes()).hexdigest())
        got = vgg19_weights_path(cache_dir=tmp_path / "cache")
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert got == tmp_path / "cache" / "vgg19-dcbb9e9d.pth"
    assert got.read_bytes() == (served / "vgg19.pth").read_bytes()
    assert vgg19_weights_path(cache_dir=tmp_path / "cache", download=False) == got  # now found offline
