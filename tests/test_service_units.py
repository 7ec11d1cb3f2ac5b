"""The service's small parts: settings parsing and refusals, storage keys and atomic writes, names, messages, upload
checks, and what the API process imports."""

import io
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi import HTTPException
from PIL import Image
from pydantic import ValidationError

from esrgan.models.images import ImageError, Picture, read_image, write_image
from esrgan.service import uploads as uploads_module
from esrgan.service.job import Size
from esrgan.service.redis_queue import describe_failure
from esrgan.service.routes.responses import download_name
from esrgan.service.runner import set_threads
from esrgan.service.settings import Settings, WeightsEntry
from esrgan.service.storage_dir import DirectoryStorage
from esrgan.service.uploads import upload_size

JOB = "0123456789abcdef0123456789abcdef"


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    psnr, gan = tmp_path / "p.safetensors", tmp_path / "g.safetensors"
    psnr.write_bytes(b"x")
    gan.write_bytes(b"x")
    monkeypatch.setenv("ESRGAN_WEIGHTS", f"mine={psnr}+{gan}, realesrgan-x4plus")
    monkeypatch.setenv("ESRGAN_CORS_ORIGINS", "http://a.example, http://b.example")
    monkeypatch.setenv("ESRGAN_DEFAULT_ALPHA", "0.25")
    settings = Settings()
    assert settings.weight_entries == [WeightsEntry("mine", psnr, gan), WeightsEntry("realesrgan-x4plus")]
    assert settings.default_model == "mine" and settings.default_alpha == 0.25
    assert settings.cors_origins == ["http://a.example", "http://b.example"]
    assert settings.redis_url is None  # in-process mode unless set


@pytest.mark.parametrize(
    ("field", "value", "why"),
    [
        ("default_alpha", float("nan"), "finite"),
        ("default_alpha", 1.5, "less than or equal to 1"),
        ("weights", "mine=/no/such+/files", "is not a file"),
        ("weights", "mine=psnr-without-gan.pth+", "NAME=PSNR_FILE+GAN_FILE"),
        ("weights", "mine=no-such-single-file.pth", "is not a file"),
        ("weights", "/no/such/single.pth", "is not a file"),
        ("weights", "a,a", "unique"),
        ("api_key", "short", "at least 16 characters"),
        ("max_upload_bytes", 0, "greater than 0"),
    ],
)
def test_settings_refuse_unsafe_values(field: str, value: object, why: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(why)):
        Settings(**{field: value})


def test_workers_share_the_cores_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)))
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert Settings().torch_threads == 8
    assert Settings(worker_concurrency=3).torch_threads == 2
    assert Settings(worker_concurrency=16).torch_threads == 1
    assert Settings(worker_concurrency=4, threads=3).torch_threads == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "5")
    assert Settings(worker_concurrency=4).torch_threads == 5 and Settings(threads=3).torch_threads == 3
    before = torch.get_num_threads()
    try:
        set_threads(Settings(threads=1))  # what every worker process does first
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_settings_refuse_any_origin_with_a_key() -> None:
    with pytest.raises(ValidationError, match="any web page"):
        Settings(cors_origins=["*"], api_key="k" * 16)


def test_storage_keys_stay_inside(tmp_path: Path) -> None:
    storage = DirectoryStorage(tmp_path / "jobs")
    for job_id, name in [("../x", "input"), (JOB, "../../etc/passwd"), (JOB, "a/b"), ("ABC", "input"), (JOB, "")]:
        with pytest.raises(ValueError, match="not a storage key"):
            storage.path_for(job_id, name)
    assert storage.path_for(JOB, "result.png") == (tmp_path / "jobs" / JOB / "result.png").resolve()


def test_storage_put_is_atomic_and_expire_keeps_running_jobs(tmp_path: Path) -> None:
    storage = DirectoryStorage(tmp_path)
    other = "f" * 32
    storage.put(JOB, "input", b"abc")
    storage.put(other, "input", b"def")
    assert storage.read(JOB, "input") == b"abc" and sorted(os.listdir(tmp_path / JOB)) == ["input"]  # no temp file
    old = time.time() - 100
    for job_id in (JOB, other):
        os.utime(storage.path_for(job_id, "input"), (old, old))
    assert storage.expire(50, keep={other}) == [JOB]
    assert not (tmp_path / JOB).exists() and storage.exists(other, "input")


def test_download_names_come_from_the_stem_only() -> None:
    assert download_name("holiday photo.JPG", "png", 4) == "holiday_photo_x4.png"
    assert download_name("../../etc/passwd", "jpeg", 4) == "passwd_x4.jpg"
    assert download_name("..", "webp", 2) == "image_x2.webp"
    assert download_name(None, "png", 4) == "image_x4.png"


def test_failure_messages_for_people() -> None:
    abandoned = "Moved to FailedJobRegistry, due to AbandonedJobError, at 2026-11-25"
    assert "stopped responding" in describe_failure(abandoned)
    assert describe_failure("Traceback...\nmodels.images.ImageError: in.png: the file is empty") == (
        "in.png: the file is empty"
    )
    assert "timeout" in describe_failure("...\nrq.timeouts.JobTimeoutException: Task exceeded maximum timeout")


def test_the_api_loads_torch_only_for_in_process_workers(tmp_path: Path) -> None:
    """Redis mode: the app (routes, queue, the worker module it enqueues from) loads no torch, its workers run
    elsewhere, not even once its start-up has described the embedded pair's files for the catalog (from their
    safetensors headers). In-process mode: the worker threads bring torch, and nothing loads rq. boto3 only for an
    object store."""
    script = (
        "import asyncio, sys\n"
        "from esrgan.service.app import create_app\n"
        "from esrgan.service.settings import Settings\n"
        "app = create_app(Settings(storage_url=sys.argv[1], redis_url=sys.argv[2] or None))\n"
        "async def start_and_stop():\n"
        "    async with app.router.lifespan_context(app):\n"
        "        model = app.state.catalog['esrgan-compact-x4']\n"
        "        assert model.available and model.architecture['nf'] == 32, model\n"
        "asyncio.run(start_and_stop())\n"
        "print(','.join(m for m in ('torch', 'rq', 'boto3') if m in sys.modules))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("ESRGAN_")}

    def loaded(redis_url: str, storage: str = str(tmp_path / "jobs")) -> str:
        args = [sys.executable, "-c", script, storage, redis_url]
        done = subprocess.run(args, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=True)
        return done.stdout.strip()

    assert loaded("redis://127.0.0.1:1/0") == "rq"
    assert loaded("") == "torch"
    assert loaded("redis://127.0.0.1:1/0", "s3://some-bucket/jobs") == "rq,boto3"


def encoded(pixels: np.ndarray, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, fmt, **options)
    return out.getvalue()


def uploads() -> dict[str, bytes]:
    """Good uploads of every kind the route sizes differently: 8 and 16 bit, turned by EXIF, formats beside PNG."""
    rgb = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    turned = Image.Exif()
    turned[0x0112] = 6  # rotate 90 degrees: a 30x20 file shows as 20x30
    deep = np.random.default_rng(1).integers(0, 65536, (9, 13, 3), dtype=np.uint16)
    return {
        "png": encoded(rgb, "PNG"),
        "png 16 bit": write_image(Picture(pixels=deep, bits=16), "png"),  # read through pypng, not Pillow
        "png turned": encoded(rgb, "PNG", exif=turned.tobytes()),
        "jpeg turned": encoded(rgb, "JPEG", exif=turned.tobytes()),
        "webp": encoded(rgb, "WEBP"),
        "bmp": encoded(rgb, "BMP"),
    }


@pytest.mark.parametrize("kind", list(uploads()))
def test_an_upload_is_sized_from_its_header_as_the_decoder_sees_it(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    data = uploads()[kind]
    picture = read_image(data)
    monkeypatch.setattr(uploads_module, "read_image", None)  # a good upload is never decoded into pixels here
    assert upload_size(data, max_pixels=10_000) == Size(width=picture.width, height=picture.height)
    if kind.endswith("turned"):
        assert (picture.width, picture.height) == (20, 30)


def test_an_upload_is_refused_in_the_decoders_words() -> None:
    rgb = np.random.default_rng(2).integers(0, 256, (40, 60, 3), dtype=np.uint8)
    refused = {
        "truncated png": (encoded(rgb, "PNG")[:-30], 415),
        "truncated jpeg": (encoded(rgb, "JPEG")[:-200], 415),
        "gif": (encoded(rgb, "GIF"), 415),
        "text": (b"hello, not an image", 415),
        "too many pixels": (encoded(np.zeros((400, 300, 3), np.uint8), "PNG"), 413),
    }
    for kind, (data, status) in refused.items():
        with pytest.raises(ImageError) as decoded:
            read_image(data, max_pixels=100_000)
        with pytest.raises(HTTPException) as answer:
            upload_size(data, max_pixels=100_000)
        assert answer.value.status_code == status, kind
        assert answer.value.detail.endswith(str(decoded.value)), (kind, answer.value.detail)
    with pytest.raises(HTTPException, match="empty") as empty:
        upload_size(b"", max_pixels=100_000)
    assert empty.value.status_code == 415
