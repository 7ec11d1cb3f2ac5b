"""`esrgan info / convert / interpolate / weights` on real files; errors are one line on stderr with exit status 1."""

import functools
import hashlib
import json
import os
import subprocess
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from esrgan.models.checkpoints import Layout, export_state_dict, read_metadata, read_state_dict, save_generator
from esrgan.models.cli import app
from esrgan.models.interpolate import interpolate_state_dicts
from esrgan.models.registry import PAIRS, FileSpec, PairSpec
from esrgan.models.rrdbnet import RRDBConfig, random_state_dict

CONFIG = RRDBConfig(nf=8, nb=2, gc=4)
runner = CliRunner()


def assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def fails_with(args: list[str], message: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert (result.stderr.count("\n") == 1 and result.exception is None) or isinstance(result.exception, SystemExit)


def test_info_shows_layout_architecture_parameters_and_metadata(tmp_path: Path) -> None:
    sd = random_state_dict(CONFIG, 0)
    export_state_dict(tmp_path / "old.pth", sd, Layout.ESRGAN_OLD)
    result = runner.invoke(app, ["info", str(tmp_path / "old.pth")])
    assert result.exit_code == 0, result.output
    assert "layout: esrgan-old" in result.stdout
    assert "architecture: RRDBNet x4 nf=8 nb=2 gc=4 in_ch=3 out_ch=3" in result.stdout
    assert f"parameters: {sum(v.numel() for v in sd.values()):,} (float32)" in result.stdout
    save_generator(tmp_path / "ours.safetensors", sd, stage="gan", provenance="a test")
    result = runner.invoke(app, ["info", str(tmp_path / "ours.safetensors")])
    for line in ("layout: basicsr", "stage: gan", "provenance: a test"):
        assert line in result.stdout
    torch.save({"params_ema": sd}, tmp_path / "wrapped.pth")
    assert "(wrapped in 'params_ema')" in runner.invoke(app, ["info", str(tmp_path / "wrapped.pth")]).stdout


def test_convert_between_layouts_is_bit_exact(tmp_path: Path) -> None:
    sd = random_state_dict(RRDBConfig(nf=8, nb=2, gc=4, scale=2), 1)
    export_state_dict(tmp_path / "old.pth", sd, Layout.ESRGAN_OLD)
    result = runner.invoke(app, ["convert", str(tmp_path / "old.pth"), str(tmp_path / "ours.safetensors")])
    assert result.exit_code == 0, result.output
    assert_same(read_state_dict(tmp_path / "ours.safetensors"), sd)
    meta = read_metadata(tmp_path / "ours.safetensors")
    assert meta["stage"] == "unknown" and "converted from old.pth (esrgan-old layout)" in meta["provenance"]
    chain = [("basicsr", "b.pth"), ("esrgan", "n.safetensors"), ("esrgan-old", "o.pth"), ("ours", "back.safetensors")]
    src = tmp_path / "ours.safetensors"
    for target, name in chain:
        result = runner.invoke(app, ["convert", str(src), str(tmp_path / name), "--to", target, "--stage", "psnr"])
        assert result.exit_code == 0, result.output
        src = tmp_path / name
    assert set(torch.load(tmp_path / "b.pth", weights_only=True)) == {"params"}
    assert_same(read_state_dict(tmp_path / "back.safetensors"), sd)
    assert read_metadata(tmp_path / "back.safetensors")["stage"] == "psnr"


def test_convert_errors(tmp_path: Path) -> None:
    save_generator(tmp_path / "g.safetensors", random_state_dict(CONFIG, 0), stage="gan", provenance="")
    fails_with(["convert", str(tmp_path / "g.safetensors"), str(tmp_path / "g.pth")], "name the output *.safetensors")
    fails_with(["convert", str(tmp_path / "nope.pth"), str(tmp_path / "x.safetensors")], "nope.pth: no such file")
    args = ["convert", str(tmp_path / "g.safetensors"), str(tmp_path / "h.safetensors"), "--stage", "best"]
    fails_with(args, "stage must be one of")


def test_interpolate_blends_files_of_any_layout(tmp_path: Path) -> None:
    psnr, gan = random_state_dict(CONFIG, 1), random_state_dict(CONFIG, 2)
    save_generator(tmp_path / "psnr.safetensors", psnr, stage="psnr", provenance="")
    export_state_dict(tmp_path / "gan.pth", gan, Layout.ESRGAN)
    out = tmp_path / "blend.safetensors"
    args = ["--psnr", str(tmp_path / "psnr.safetensors"), "--gan", str(tmp_path / "gan.pth"), "--alpha", "0.8"]
    result = runner.invoke(app, ["interpolate", *args, "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert_same(read_state_dict(out), interpolate_state_dicts(psnr, gan, 0.8))
    meta = read_metadata(out)
    assert meta["stage"] == "interpolated" and json.loads(meta["extra"])["alpha"] == 0.8
    runner.invoke(app, ["interpolate", *args[:-1], "1", "-o", str(out)])
    assert_same(read_state_dict(out), gan)


def test_interpolate_errors(tmp_path: Path) -> None:
    save_generator(tmp_path / "a.safetensors", random_state_dict(CONFIG, 1), stage="psnr", provenance="")
    save_generator(
        tmp_path / "b.safetensors", random_state_dict(RRDBConfig(nf=8, nb=3, gc=4), 2), stage="gan", provenance=""
    )
    base = ["interpolate", "--psnr", str(tmp_path / "a.safetensors"), "-o", str(tmp_path / "o.safetensors")]
    fails_with([*base, "--gan", str(tmp_path / "a.safetensors"), "--alpha", "1.5"], "alpha must be finite and in [0, 1")
    fails_with([*base, "--gan", str(tmp_path / "a.safetensors"), "--alpha", "nan"], "alpha must be finite")
    fails_with([*base, "--gan", str(tmp_path / "b.safetensors"), "--alpha", "0.5"], "different architectures")
    assert not (tmp_path / "o.safetensors").exists()


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def served(tmp_path: Path):
    """A local HTTP server for the files the test puts in `tmp_path/served`."""
    root = tmp_path / "served"
    root.mkdir()
    handler = functools.partial(QuietHandler, directory=str(root))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_weights_list_and_download(served, tmp_path: Path, monkeypatch) -> None:
    root, base = served
    save_generator(root / "psnr.safetensors", random_state_dict(CONFIG, 1), stage="psnr", provenance="")
    save_generator(root / "gan.safetensors", random_state_dict(CONFIG, 2), stage="gan", provenance="")
    digest = hashlib.sha256((root / "gan.safetensors").read_bytes()).hexdigest()
    pair = PairSpec(
        psnr=FileSpec("psnr.safetensors", f"{base}/psnr.safetensors", "ours", 4, provenance="made by the test"),
        gan=FileSpec("gan.safetensors", f"{base}/gan.safetensors", "ours", 4, provenance="made", sha256=digest),
        note="a tiny pair",
    )
    monkeypatch.setitem(PAIRS, "tiny-x4", pair)
    cache = tmp_path / "cache"
    listing = runner.invoke(app, ["weights", "list", "--cache-dir", str(cache)]).stdout
    assert "tiny-x4: x4. a tiny pair" in listing and "psnr.safetensors [missing] made by the test" in listing
    assert "official-150ff491.pth [missing, manual download]" in listing
    result = runner.invoke(app, ["weights", "download", "tiny-x4", "--cache-dir", str(cache), "--quiet"])
    assert result.exit_code == 0, result.output
    psnr_digest = hashlib.sha256((root / "psnr.safetensors").read_bytes()).hexdigest()
    assert f"psnr.safetensors (unverified, sha256 {psnr_digest})" in result.stdout
    assert "gan.safetensors (verified)" in result.stdout
    assert (cache / "gan.safetensors").read_bytes() == (root / "gan.safetensors").read_bytes()
    assert "gan.safetensors [present]" in runner.invoke(app, ["weights", "list", "--cache-dir", str(cache)]).stdout
    (root / "gan.safetensors").write_bytes(b"tampered")
    (cache / "gan.safetensors").unlink()
    fails_with(["weights", "download", "tiny-x4", "--cache-dir", str(cache), "--quiet"], "refused and deleted")
    fails_with(["weights", "download", "no-such-pair"], "unknown model pair 'no-such-pair'")


def test_the_installed_command_prints_one_line_and_no_traceback(tmp_path: Path) -> None:
    # a pickle protocol byte torch does not expect: torch warns before failing, and the warning must not leak out
    (tmp_path / "junk.pth").write_bytes(b"\x80\x09" + os.urandom(62))
    esrgan = Path(sys.executable).parent / "esrgan"
    cmd = [str(esrgan), "info", str(tmp_path / "junk.pth")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"error: {tmp_path / 'junk.pth'}: not a PyTorch weights file")
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
