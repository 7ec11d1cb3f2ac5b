"""`fetch` against a real HTTP server on 127.0.0.1 serving files the test makes: good, corrupt, failing, resumed."""

import hashlib
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from esrgan.models import registry
from esrgan.models.download import ChecksumError, DownloadError, fetch, name_prefix
from esrgan.models.registry import (
    DEFAULT_PAIR,
    PAIRS,
    SINGLES,
    FileSpec,
    PairSpec,
    SingleSpec,
    default_cache_dir,
    download_model,
    resolve_model,
    resolve_pair,
)

DATA = os.urandom(300_000)
DIGEST = hashlib.sha256(DATA).hexdigest()


@dataclass
class Behaviour:
    """What the server does; the test changes it and reads `requests` (path, Range header) afterwards."""

    files: dict[str, bytes] = field(default_factory=dict)
    errors: int = 0  # answer this many requests with 503 first
    cut_after: int | None = None  # send only this many body bytes once, then drop the connection
    honour_range: bool = True
    content_type: str = "application/octet-stream"
    requests: list[tuple[str, str | None]] = field(default_factory=list)


class Handler(BaseHTTPRequestHandler):
    server: "Server"

    def do_GET(self) -> None:
        b = self.server.behaviour
        b.requests.append((self.path, self.headers.get("Range")))
        if b.errors:
            b.errors -= 1
            self.send_error(503, "busy")
            return
        if self.path not in b.files:
            self.send_error(404)
            return
        data = b.files[self.path]
        start = 0
        if (spec := self.headers.get("Range")) and b.honour_range:
            start = int(spec.removeprefix("bytes=").rstrip("-"))
            if start >= len(data):
                self.send_error(416)
                return
        body = data[start:]
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Type", b.content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if b.cut_after is not None:
            body, b.cut_after = body[: b.cut_after], None
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class Server(ThreadingHTTPServer):
    behaviour: Behaviour


@pytest.fixture
def server() -> Iterator[tuple[str, Behaviour]]:
    httpd = Server(("127.0.0.1", 0), Handler)
    httpd.behaviour = Behaviour(files={"/good.pth": DATA})
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", httpd.behaviour
    httpd.shutdown()
    httpd.server_close()


def test_good_file_is_verified_cached_and_renamed(server, tmp_path: Path, capsys) -> None:
    base, b = server
    dest = tmp_path / "cache" / "good.pth"
    assert fetch(f"{base}/good.pth", dest, sha256=DIGEST, backoff=0) == dest
    assert dest.read_bytes() == DATA
    assert not dest.with_name("good.pth.part").exists()
    assert "good.pth" in capsys.readouterr().err  # the progress bar
    fetch(f"{base}/good.pth", dest, sha256=DIGEST, backoff=0)
    assert len(b.requests) == 1  # the verified copy in the cache is reused


def test_corrupt_file_is_refused_and_deleted(server, tmp_path: Path) -> None:
    base, b = server
    b.files["/bad.pth"] = DATA[:-1] + bytes([DATA[-1] ^ 1])
    dest = tmp_path / "bad.pth"
    with pytest.raises(ChecksumError, match=rf"refused and deleted.*expected {DIGEST}"):
        fetch(f"{base}/bad.pth", dest, sha256=DIGEST, progress=False, backoff=0)
    assert not dest.exists() and not (tmp_path / "bad.pth.part").exists()


def test_basicsr_name_prefix_is_verified(server, tmp_path: Path) -> None:
    base, b = server
    good, wrong = f"/net-{DIGEST[:8]}.pth", "/net-00000000.pth"
    b.files |= {good: DATA, wrong: DATA}
    assert name_prefix(good) == DIGEST[:8] and name_prefix("RealESRGAN_x4plus.pth") is None
    assert fetch(base + good, tmp_path / good[1:], progress=False, backoff=0).read_bytes() == DATA
    with pytest.raises(ChecksumError, match="expected one starting 00000000"):
        fetch(base + wrong, tmp_path / wrong[1:], progress=False, backoff=0)
    assert not (tmp_path / wrong[1:]).exists()


def test_server_errors_are_retried(server, tmp_path: Path) -> None:
    base, b = server
    b.errors = 2
    fetch(f"{base}/good.pth", tmp_path / "good.pth", sha256=DIGEST, progress=False, backoff=0)
    assert (tmp_path / "good.pth").read_bytes() == DATA
    assert len(b.requests) == 3


def test_persistent_server_error_gives_a_clear_error(server, tmp_path: Path) -> None:
    base, b = server
    b.errors = 100
    with pytest.raises(DownloadError, match=r"gave up after 3 attempts \(HTTP Error 503.*put it at"):
        fetch(f"{base}/good.pth", tmp_path / "good.pth", sha256=DIGEST, progress=False, attempts=3, backoff=0)
    assert len(b.requests) == 3 and not (tmp_path / "good.pth").exists()


def test_missing_file_is_not_retried(server, tmp_path: Path) -> None:
    base, b = server
    with pytest.raises(DownloadError, match="HTTP 404"):
        fetch(f"{base}/nothing.pth", tmp_path / "nothing.pth", progress=False, backoff=0)
    assert len(b.requests) == 1


def test_partial_file_is_resumed_with_range(server, tmp_path: Path) -> None:
    base, b = server
    (tmp_path / "good.pth.part").write_bytes(DATA[:123_456])
    fetch(f"{base}/good.pth", tmp_path / "good.pth", sha256=DIGEST, progress=False, backoff=0)
    assert b.requests == [("/good.pth", "bytes=123456-")]
    assert (tmp_path / "good.pth").read_bytes() == DATA


def test_dropped_connection_resumes_where_it_stopped(server, tmp_path: Path) -> None:
    base, b = server
    b.cut_after = 100_000
    fetch(f"{base}/good.pth", tmp_path / "good.pth", sha256=DIGEST, progress=False, backoff=0)
    assert b.requests == [("/good.pth", None), ("/good.pth", "bytes=100000-")]
    assert (tmp_path / "good.pth").read_bytes() == DATA


def test_server_without_range_support_starts_over(server, tmp_path: Path) -> None:
    base, b = server
    b.honour_range = False
    (tmp_path / "good.pth.part").write_bytes(b"stale bytes from another file")
    fetch(f"{base}/good.pth", tmp_path / "good.pth", sha256=DIGEST, progress=False, backoff=0)
    assert (tmp_path / "good.pth").read_bytes() == DATA


def test_damaged_cache_entry_is_fetched_again(server, tmp_path: Path) -> None:
    base, b = server
    (tmp_path / "good.pth").write_bytes(b"not it")
    fetch(f"{base}/good.pth", tmp_path / "good.pth", sha256=DIGEST, progress=False, backoff=0)
    assert (tmp_path / "good.pth").read_bytes() == DATA and len(b.requests) == 1


def test_web_page_instead_of_weights_is_refused(server, tmp_path: Path) -> None:
    base, b = server
    b.content_type = "text/html; charset=utf-8"
    with pytest.raises(DownloadError, match="web page"):
        fetch(f"{base}/good.pth", tmp_path / "good.pth", progress=False, backoff=0)
    assert not (tmp_path / "good.pth").exists()


# --- the registry of known pairs, downloaded from the same local server ---------------------------------------------


def test_registry_entries_are_consistent() -> None:
    assert DEFAULT_PAIR in PAIRS
    for name, pair in PAIRS.items():
        for spec in (pair.psnr, pair.gan):
            assert spec.url is None or spec.url.endswith("/" + spec.filename), name
            if prefix := name_prefix(spec.filename):
                assert (spec.sha256 or spec.sha256_prefix or "").startswith(prefix), spec.filename
            assert spec.bundled == (name == DEFAULT_PAIR)
            assert spec.url or spec.bundled or spec.note, f"{spec.filename}: no URL and no manual instructions"
        assert 0.0 <= pair.default_alpha <= 1.0 and pair.alpha.low and pair.alpha.high, name
    assert not PAIRS.keys() & SINGLES.keys()
    for name, single in SINGLES.items():  # every single model is a Real-ESRGAN release file with a full sha256
        spec = single.weights
        assert spec.url.endswith("/" + spec.filename) and len(spec.sha256 or "") == 64 and not spec.bundled, name


def test_default_cache_dir(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ESRGAN_CACHE_DIR", str(tmp_path))
    assert default_cache_dir() == tmp_path
    monkeypatch.delenv("ESRGAN_CACHE_DIR")
    assert default_cache_dir() == Path.home() / ".cache" / "esrgan"


def test_resolve_pair_says_how_to_get_missing_files(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setattr(registry, "WEIGHTS_DIR", tmp_path / "weights")
    with pytest.raises(ValueError, match="unknown model pair 'nope'; known pairs: esrgan-compact-x4"):
        resolve_pair("nope")
    with pytest.raises(FileNotFoundError, match="Run `esrgan weights download realesrgan-x4plus` first"):
        resolve_pair("realesrgan-x4plus", tmp_path)
    with pytest.raises(FileNotFoundError, match=r"official-150ff491\.pth is missing\. Hosted on Google Drive only"):
        resolve_pair("esrgan-official-x4", tmp_path)
    with pytest.raises(FileNotFoundError, match="The embedded weights have not been trained and added yet"):
        resolve_pair(DEFAULT_PAIR)
    for spec in (PAIRS[DEFAULT_PAIR].psnr, PAIRS[DEFAULT_PAIR].gan):
        (tmp_path / "weights").mkdir(exist_ok=True)
        (tmp_path / "weights" / spec.filename).write_bytes(b"x")
    assert resolve_pair(DEFAULT_PAIR) == (
        tmp_path / "weights" / PAIRS[DEFAULT_PAIR].psnr.filename,
        tmp_path / "weights" / PAIRS[DEFAULT_PAIR].gan.filename,
    )


def test_download_model_fetches_and_verifies(server, monkeypatch, tmp_path: Path) -> None:
    base, _ = server
    manual = f"psnr-{DIGEST[:8]}.pth"
    pair = PairSpec(
        psnr=FileSpec(manual, None, "basicsr", 4, provenance="test", sha256_prefix=DIGEST[:8], note="by hand"),
        gan=FileSpec("good.pth", f"{base}/good.pth", "basicsr", 4, provenance="test", sha256=DIGEST),
        note="test pair",
    )
    monkeypatch.setitem(PAIRS, "test-pair", pair)
    with pytest.raises(DownloadError, match=rf"{manual} cannot be downloaded automatically\. by hand"):
        download_model("test-pair", tmp_path, progress=False)
    assert (tmp_path / "good.pth").read_bytes() == DATA  # the downloadable half is fetched before complaining
    (tmp_path / manual).write_bytes(b"something else")
    with pytest.raises(ChecksumError, match=f"expected one starting {DIGEST[:8]}"):
        download_model("test-pair", tmp_path, progress=False)
    (tmp_path / manual).write_bytes(DATA)
    assert download_model("test-pair", tmp_path, progress=False) == (tmp_path / manual, tmp_path / "good.pth")
    assert (tmp_path / "good.pth").read_bytes() == DATA
    assert resolve_pair("test-pair", tmp_path) == (tmp_path / manual, tmp_path / "good.pth")


def test_a_single_model_downloads_and_resolves_without_a_second_file(server, monkeypatch, tmp_path: Path) -> None:
    base, _ = server
    spec = FileSpec("good.pth", f"{base}/good.pth", "basicsr", 4, provenance="test", sha256=DIGEST)
    monkeypatch.setitem(SINGLES, "test-single", SingleSpec(spec, note="a test model"))
    with pytest.raises(FileNotFoundError, match="Run `esrgan weights download test-single` first"):
        resolve_model("test-single", tmp_path)
    assert download_model("test-single", tmp_path, progress=False) == (tmp_path / "good.pth",)
    assert resolve_model("test-single", tmp_path) == (tmp_path / "good.pth", None)
    with pytest.raises(ValueError, match="'test-single' is a single model, not a PSNR/GAN pair"):
        resolve_pair("test-single", tmp_path)
    with pytest.raises(ValueError, match=r"unknown model pair 'nope'; known pairs: .*; single models: .*test-single"):
        resolve_model("nope", tmp_path)
