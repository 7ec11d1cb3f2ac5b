"""The service's small pure parts: settings parsing and refusals, storage keys and atomic writes, names, messages."""

import os
import re
import time
from pathlib import Path

import pytest
import torch
from pydantic import ValidationError

from esrgan.service.queue import describe_failure
from esrgan.service.routes.upscale import download_name
from esrgan.service.settings import Settings, WeightsEntry
from esrgan.service.storage import Storage
from esrgan.service.worker import EngineCache

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
        ("weights", "mine=only-one-file", "NAME=PSNR_FILE+GAN_FILE"),
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
        EngineCache(Settings(threads=1))  # what every worker builds first
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_settings_refuse_any_origin_with_a_key() -> None:
    with pytest.raises(ValidationError, match="any web page"):
        Settings(cors_origins=["*"], api_key="k" * 16)


def test_storage_keys_stay_inside(tmp_path: Path) -> None:
    storage = Storage(tmp_path / "jobs")
    for job_id, name in [("../x", "input"), (JOB, "../../etc/passwd"), (JOB, "a/b"), ("ABC", "input"), (JOB, "")]:
        with pytest.raises(ValueError, match="not a storage key"):
            storage.path_for(job_id, name)
    assert storage.path_for(JOB, "result.png") == (tmp_path / "jobs" / JOB / "result.png").resolve()


def test_storage_put_is_atomic_and_expire_keeps_running_jobs(tmp_path: Path) -> None:
    storage = Storage(tmp_path)
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
