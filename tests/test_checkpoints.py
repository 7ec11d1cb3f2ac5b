"""Every weights layout loads from real files, converts back bit-exactly, is described from its header, and every bad
file gets a clear error."""

import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from esrgan.models import checkpoints
from esrgan.models.architectures import expected_shapes
from esrgan.models.checkpoints import (
    export_state_dict,
    load_checkpoint,
    load_generator,
    read_state_dict,
    save_generator,
)
from esrgan.models.layouts import CheckpointError, Layout, WeightsInfo, describe_weights, read_metadata
from esrgan.models.rrdbnet import RRDBConfig, RRDBNet, random_state_dict

CONFIGS = [
    RRDBConfig(nf=8, nb=2, gc=4, scale=4),
    RRDBConfig(nf=8, nb=2, gc=4, scale=2),
    RRDBConfig(nf=8, nb=1, gc=4, scale=1),
    RRDBConfig(in_ch=1, out_ch=1, nf=12, nb=3, gc=6, scale=4),
]


def assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]), k


@pytest.mark.parametrize("config", CONFIGS, ids=str)
def test_expected_shapes_match_the_network(config: RRDBConfig) -> None:
    assert expected_shapes(config) == {k: tuple(v.shape) for k, v in RRDBNet(config).state_dict().items()}


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
@pytest.mark.parametrize("layout", list(Layout))
@pytest.mark.parametrize("config", CONFIGS, ids=str)
def test_each_layout_round_trips_bit_exactly(tmp_path: Path, config: RRDBConfig, layout: Layout, suffix: str) -> None:
    sd = random_state_dict(config)
    path = tmp_path / f"net{suffix}"
    export_state_dict(path, sd, layout)
    loaded = load_checkpoint(path)
    assert loaded.layout is layout
    assert loaded.config == config
    assert_same(loaded.state_dict, sd)


def test_foreign_layouts_use_the_published_key_names(tmp_path: Path) -> None:
    sd = random_state_dict(RRDBConfig(nf=8, nb=2, gc=4))
    export_state_dict(tmp_path / "new.pth", sd, Layout.ESRGAN)
    export_state_dict(tmp_path / "old.pth", sd, Layout.ESRGAN_OLD)
    export_state_dict(tmp_path / "basicsr.pth", sd, Layout.BASICSR)
    new = torch.load(tmp_path / "new.pth", weights_only=True)
    old = torch.load(tmp_path / "old.pth", weights_only=True)
    basicsr = torch.load(tmp_path / "basicsr.pth", weights_only=True)
    assert set(basicsr) == {"params"} and basicsr["params"].keys() == sd.keys()
    for key in ("conv_first.weight", "RRDB_trunk.1.RDB3.conv5.bias", "trunk_conv.weight", "upconv1.weight"):
        assert key in new
    for key in ("upconv2.bias", "HRconv.weight", "conv_last.weight"):
        assert key in new
    assert torch.equal(new["RRDB_trunk.1.RDB3.conv5.bias"], sd["body.1.rdb3.conv5.bias"])
    old_pairs = {
        "model.0.weight": "conv_first.weight",
        "model.1.sub.0.RDB1.conv1.0.weight": "body.0.rdb1.conv1.weight",
        "model.1.sub.1.RDB2.conv5.0.bias": "body.1.rdb2.conv5.bias",
        "model.1.sub.2.weight": "conv_body.weight",  # the trunk conv sits right after the nb blocks
        "model.3.weight": "conv_up1.weight",
        "model.6.bias": "conv_up2.bias",
        "model.8.weight": "conv_hr.weight",
        "model.10.bias": "conv_last.bias",
    }
    for old_key, ours in old_pairs.items():
        assert torch.equal(old[old_key], sd[ours]), old_key
    assert len(old) == len(new) == len(sd)


def test_conversion_chain_is_bit_exact_and_runs_the_same(tmp_path: Path) -> None:
    config = RRDBConfig(nf=8, nb=2, gc=4, scale=2)
    sd = random_state_dict(config, seed=3)
    save_generator(tmp_path / "ours.safetensors", sd, stage="gan", provenance="test")
    export_state_dict(tmp_path / "old.pth", read_state_dict(tmp_path / "ours.safetensors"), Layout.ESRGAN_OLD)
    export_state_dict(tmp_path / "new.safetensors", read_state_dict(tmp_path / "old.pth"), Layout.ESRGAN)
    export_state_dict(tmp_path / "basicsr.pth", read_state_dict(tmp_path / "new.safetensors"), Layout.BASICSR)
    back = read_state_dict(tmp_path / "basicsr.pth")
    save_generator(tmp_path / "back.safetensors", back, stage="gan", provenance="x")
    assert_same(read_state_dict(tmp_path / "back.safetensors"), sd)
    x = torch.rand(1, 3, 8, 8)
    with torch.inference_mode():
        outputs = [load_generator(tmp_path / name)(x) for name in ("ours.safetensors", "old.pth", "new.safetensors")]
    assert all(torch.equal(outputs[0], out) for out in outputs[1:])
    assert outputs[0].shape == (1, 3, 16, 16)


def test_our_metadata_is_written_and_read(tmp_path: Path) -> None:
    config = RRDBConfig(nf=8, nb=1, gc=4)
    save_generator(
        tmp_path / "g.safetensors", random_state_dict(config), stage="psnr", provenance="unit test", extra={"it": 5}
    )
    meta = read_metadata(tmp_path / "g.safetensors")
    assert meta["stage"] == "psnr" and meta["provenance"] == "unit test" and meta["scale"] == "4"
    loaded = load_checkpoint(tmp_path / "g.safetensors")
    assert loaded.metadata == meta and loaded.layout is Layout.BASICSR and loaded.wrapper is None
    with pytest.raises(ValueError, match="stage"):
        save_generator(tmp_path / "h.safetensors", random_state_dict(config), stage="best", provenance="")


def test_wrappers_are_unwrapped_preferring_ema(tmp_path: Path) -> None:
    config = RRDBConfig(nf=8, nb=1, gc=4)
    ema, plain = random_state_dict(config, 1), random_state_dict(config, 2)
    torch.save({"params": plain, "params_ema": ema}, tmp_path / "both.pth")
    torch.save({"params": plain}, tmp_path / "params.pth")
    torch.save({"state_dict": {f"module.{k}": v for k, v in plain.items()}, "epoch": 3}, tmp_path / "ddp.pth")
    both = load_checkpoint(tmp_path / "both.pth")
    assert both.wrapper == "params_ema"
    assert_same(both.state_dict, ema)
    assert load_checkpoint(tmp_path / "params.pth").wrapper == "params"
    ddp = load_checkpoint(tmp_path / "ddp.pth")
    assert ddp.wrapper == "state_dict"
    assert_same(ddp.state_dict, plain)


def test_pre_1_6_torch_format_of_the_official_files(tmp_path: Path) -> None:
    """The 2018 ESRGAN releases were saved before torch's zip format; they load, and a cut one says it is damaged."""
    sd = random_state_dict(RRDBConfig(nf=8, nb=2, gc=4))
    export_state_dict(tmp_path / "zip.pth", sd, Layout.ESRGAN_OLD)
    old = torch.load(tmp_path / "zip.pth", weights_only=True)
    torch.save(old, tmp_path / "legacy.pth", _use_new_zipfile_serialization=False)
    assert (tmp_path / "legacy.pth").read_bytes()[:2] == b"\x80\x02"  # a plain pickle, not a zip archive
    loaded = load_checkpoint(tmp_path / "legacy.pth")
    assert loaded.layout is Layout.ESRGAN_OLD
    assert_same(loaded.state_dict, sd)
    data = (tmp_path / "legacy.pth").read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"cut\.pth: a damaged or truncated PyTorch file"):
        read_state_dict(tmp_path / "cut.pth")


def test_half_precision_is_kept(tmp_path: Path) -> None:
    sd = {k: v.half() for k, v in random_state_dict(RRDBConfig(nf=8, nb=1, gc=4)).items()}
    export_state_dict(tmp_path / "half.pth", sd, Layout.ESRGAN)
    assert_same(read_state_dict(tmp_path / "half.pth"), sd)


def test_content_not_name_decides_the_reader(tmp_path: Path) -> None:
    sd = random_state_dict(RRDBConfig(nf=8, nb=1, gc=4))
    export_state_dict(tmp_path / "net.safetensors", sd, Layout.ESRGAN)
    (tmp_path / "net.weights").write_bytes((tmp_path / "net.safetensors").read_bytes())
    assert_same(read_state_dict(tmp_path / "net.weights"), sd)


# --- a description without the tensors ------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
@pytest.mark.parametrize("layout", list(Layout))
def test_a_description_says_what_a_load_finds(tmp_path: Path, layout: Layout, suffix: str) -> None:
    config = RRDBConfig(nf=8, nb=2, gc=4, scale=2)
    sd = random_state_dict(config)
    path = tmp_path / f"net{suffix}"
    export_state_dict(path, sd, layout)
    wrapper = "params" if layout is Layout.BASICSR and suffix == ".pth" else None
    parameters = sum(v.numel() for v in sd.values())
    described = describe_weights(path)
    assert described == WeightsInfo(layout, config, wrapper, {}, parameters, ("float32",))
    loaded = load_checkpoint(path)
    assert described == WeightsInfo(
        loaded.layout, loaded.config, loaded.wrapper, loaded.metadata, loaded.parameters, loaded.dtypes
    )


def test_safetensors_are_described_from_their_header_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sd = random_state_dict(RRDBConfig(nf=8, nb=1, gc=4))
    save_generator(tmp_path / "g.safetensors", sd, stage="gan", provenance="test")
    export_state_dict(tmp_path / "half.safetensors", {k: v.half() for k, v in sd.items()}, Layout.ESRGAN)

    def no_reading(*args: object, **kwargs: object) -> None:
        raise AssertionError("tensor data was read")

    monkeypatch.setattr(checkpoints, "load_file", no_reading)
    monkeypatch.setattr(torch, "load", no_reading)
    ours = describe_weights(tmp_path / "g.safetensors")
    assert ours.metadata == read_metadata(tmp_path / "g.safetensors") and ours.metadata["stage"] == "gan"
    assert ours.parameters == sum(v.numel() for v in sd.values()) and ours.dtypes == ("float32",)
    half = describe_weights(tmp_path / "half.safetensors")
    assert half.layout is Layout.ESRGAN and half.dtypes == ("float16",) and half.config == ours.config


def test_a_description_is_as_strict_as_a_load(tmp_path: Path) -> None:
    sd = random_state_dict(RRDBConfig(nf=8, nb=2, gc=4))
    save_file({k: v for k, v in sd.items() if k != "body.1.rdb2.conv3.bias"}, str(tmp_path / "missing.safetensors"))
    save_file(sd | {"conv_hr.weight": torch.zeros(8, 8, 1, 1)}, str(tmp_path / "shape.safetensors"))
    save_file({k: v.to(torch.int32) for k, v in sd.items()}, str(tmp_path / "ints.safetensors"))
    save_file(sd, str(tmp_path / "full.safetensors"))
    data = (tmp_path / "full.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
    (tmp_path / "junk.safetensors").write_bytes(os.urandom(1000))
    _save(tmp_path / "evil.pth", {"params": sd, "hook": _Exploit(tmp_path / "pwned")})
    cases = {
        "missing.safetensors": r"missing keys \['body\.1\.rdb2\.conv3\.bias'\]",
        "shape.safetensors": r"conv_hr\.weight: expected \(8, 8, 3, 3\), found \(8, 8, 1, 1\)",
        "ints.safetensors": r"expected floating-point weights, found torch\.int32",
        "cut.safetensors": r"not a readable safetensors file",
        "junk.safetensors": r"not a readable safetensors file",
        "evil.pth": r"refused to unpickle it",
        "nope.safetensors": r"no such file",
    }
    for name, message in cases.items():
        for reader in (describe_weights, read_state_dict):
            with pytest.raises(CheckpointError, match=rf"{name.replace('.', '[.]')}: .*{message}"):
                reader(tmp_path / name)
    assert not (tmp_path / "pwned").exists()


# --- every bad file gets its own error, naming the file --------------------------------------------------------------


def _save(path: Path, obj: object) -> Path:
    torch.save(obj, path)
    return path


def test_missing_key(tmp_path: Path) -> None:
    sd = random_state_dict(RRDBConfig(nf=8, nb=2, gc=4))
    del sd["body.1.rdb2.conv3.bias"]
    path = _save(tmp_path / "missing.pth", sd)
    with pytest.raises(CheckpointError, match=r"missing\.pth.*missing keys \['body\.1\.rdb2\.conv3\.bias'\]"):
        read_state_dict(path)


def test_wrong_shape(tmp_path: Path) -> None:
    sd = random_state_dict(RRDBConfig(nf=8, nb=2, gc=4))
    sd["conv_hr.weight"] = torch.zeros(8, 8, 1, 1)
    path = _save(tmp_path / "shape.pth", sd)
    expected = r"shape\.pth.*wrong shapes \[conv_hr\.weight: expected \(8, 8, 3, 3\), found \(8, 8, 1, 1\)"
    with pytest.raises(CheckpointError, match=expected):
        read_state_dict(path)


def test_unexpected_key_in_each_layout(tmp_path: Path) -> None:
    sd = random_state_dict(RRDBConfig(nf=8, nb=1, gc=4))
    export_state_dict(tmp_path / "new.pth", sd, Layout.ESRGAN)
    new = torch.load(tmp_path / "new.pth", weights_only=True) | {"RRDB_trunk.0.RDB1.conv1x1.weight": torch.zeros(1)}
    with pytest.raises(CheckpointError, match=r"unexpected keys.*conv1x1"):
        read_state_dict(_save(tmp_path / "plus.pth", new))
    with pytest.raises(CheckpointError, match=r"unexpected keys \['extra\.weight'\]"):
        read_state_dict(_save(tmp_path / "extra.pth", sd | {"extra.weight": torch.zeros(1)}))


def test_old_arch_with_other_upsampling_is_refused(tmp_path: Path) -> None:
    sd = random_state_dict(RRDBConfig(nf=8, nb=1, gc=4))
    export_state_dict(tmp_path / "old.pth", sd, Layout.ESRGAN_OLD)
    old = torch.load(tmp_path / "old.pth", weights_only=True)
    x8 = {k: v for k, v in old.items() if not k.startswith(("model.8.", "model.10."))}
    for param in ("weight", "bias"):  # a third (Upsample, conv, LeakyReLU) stage: upconvs 3/6/9, HR 11, last 13
        x8[f"model.9.{param}"] = old[f"model.6.{param}"]
        x8[f"model.11.{param}"] = old[f"model.8.{param}"]
        x8[f"model.13.{param}"] = old[f"model.10.{param}"]
    with pytest.raises(CheckpointError, match=r"x8\.pth: an old-arch x8 network \(3 upsampling stages\); expected 2"):
        read_state_dict(_save(tmp_path / "x8.pth", x8))


def test_unknown_layout(tmp_path: Path) -> None:
    path = _save(tmp_path / "unet.pth", {"encoder.0.weight": torch.zeros(2, 2)})
    with pytest.raises(CheckpointError, match=r"unet\.pth: not an ESRGAN/RRDBNet generator.*basicsr needs"):
        read_state_dict(path)


def test_non_tensor_values_and_non_mappings(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"expected only tensors under 'params', found int"):
        read_state_dict(_save(tmp_path / "ints.pth", {"params": {"conv_first.weight": 3}}))
    with pytest.raises(CheckpointError, match=r"expected a mapping.*found list"):
        read_state_dict(_save(tmp_path / "list.pth", [torch.zeros(1)]))


def test_garbage_bytes(tmp_path: Path) -> None:
    (tmp_path / "junk.pth").write_bytes(os.urandom(1000))
    (tmp_path / "junk.safetensors").write_bytes(os.urandom(1000))
    with pytest.raises(CheckpointError, match=r"junk\.pth: "):
        read_state_dict(tmp_path / "junk.pth")
    with pytest.raises(CheckpointError, match=r"junk\.safetensors: not a readable safetensors file"):
        read_state_dict(tmp_path / "junk.safetensors")


def test_truncated_files(tmp_path: Path) -> None:
    sd = random_state_dict(RRDBConfig(nf=8, nb=1, gc=4))
    for suffix in (".pth", ".safetensors"):
        export_state_dict(tmp_path / f"full{suffix}", sd, Layout.BASICSR)
        data = (tmp_path / f"full{suffix}").read_bytes()
        (tmp_path / f"cut{suffix}").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"cut\.pth: a damaged or truncated PyTorch file"):
        read_state_dict(tmp_path / "cut.pth")
    with pytest.raises(CheckpointError, match=r"cut\.safetensors: not a readable safetensors file"):
        read_state_dict(tmp_path / "cut.safetensors")


class _Exploit:
    """Unpickling this with weights_only=False would create a directory: the proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.mkdir, (str(self.marker),))


def test_pickle_that_would_run_code_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    sd = random_state_dict(RRDBConfig(nf=8, nb=1, gc=4))
    path = _save(tmp_path / "evil.pth", {"params": sd, "hook": _Exploit(marker)})
    with pytest.raises(CheckpointError, match=r"evil\.pth: refused to unpickle it: it asks for code.*mkdir"):
        read_state_dict(path)
    assert not marker.exists()


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"nope\.pth: no such file"):
        read_state_dict(tmp_path / "nope.pth")


def test_export_needs_a_known_suffix(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"expected a \.pth, \.pt or \.safetensors"):
        export_state_dict(tmp_path / "net.bin", random_state_dict(RRDBConfig(nf=8, nb=1, gc=4)), Layout.ESRGAN)
