"""The storage contract on both backends (a real folder, a real S3-compatible server), and each backend's faults in
words: a read-only, full or missing folder; an object store that is gone, refuses our keys or lacks the bucket."""

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from service_helpers import S3Server, fill, s3_server, tmpfs

from esrgan.service.settings import Settings
from esrgan.service.storage import Storage, StorageError, open_storage, put_with_retries
from esrgan.service.storage_dir import DirectoryStorage
from esrgan.service.storage_s3 import S3Storage

JOB, OTHER, KEPT = "a" * 32, "b" * 32, "c" * 32


@pytest.fixture(scope="module")
def s3(tmp: Path) -> Iterator[S3Server]:
    with s3_server(tmp) as server:
        yield server


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, s3: S3Server) -> S3Server:
    """This process's AWS_* variables point at the test server, as a deployment's would (boto3 reads them itself)."""
    for key, value in s3.env.items():
        monkeypatch.setenv(key, value)
    return s3


def s3_storage(server: S3Server, bucket: str | None = None, **options: object) -> S3Storage:
    return S3Storage(bucket or server.bucket(), "jobs/here", endpoint_url=server.url, **options)


@pytest.fixture(params=["directory", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    if request.param == "directory":
        return DirectoryStorage(tmp_path / "jobs")
    return s3_storage(request.getfixturevalue("aws"))


def test_a_round_trip_and_keys_we_made_only(storage: Storage) -> None:
    storage.put(JOB, "input", b"upload")
    storage.put(JOB, "result.png", b"x" * 600_000)
    assert storage.read(JOB, "input") == b"upload" and storage.exists(JOB, "result.png")
    blob = storage.open(JOB, "result.png")
    pieces = list(blob.chunks)
    assert blob.size == 600_000 and b"".join(pieces) == b"x" * 600_000 and max(map(len, pieces)) <= 256 * 1024
    assert not storage.exists(OTHER, "input") and storage.job_ids() == [JOB]
    with pytest.raises(FileNotFoundError):
        storage.read(OTHER, "input")
    with pytest.raises(FileNotFoundError):
        storage.open(JOB, "result.webp")
    for job_id, name in [("../x", "input"), (JOB, "../../etc/passwd"), (JOB, "a/b"), ("ABC", "input"), (JOB, "")]:
        with pytest.raises(ValueError, match="not a storage key"):
            storage.put(job_id, name, b"")
    storage.check()  # takes a write and has room
    assert storage.job_ids() == [JOB]  # the probe left nothing behind
    storage.remove(JOB)
    storage.remove(JOB)  # no error the second time
    assert storage.job_ids() == [] and not storage.exists(JOB, "input")


def test_expire_removes_old_jobs_but_keeps_running_ones(storage: Storage) -> None:
    storage.put(JOB, "input", b"old")
    storage.put(KEPT, "input", b"old, still running")
    time.sleep(1.5)
    storage.put(OTHER, "input", b"new")
    assert storage.expire(1.0, keep={KEPT}) == [JOB]
    assert storage.job_ids() == [OTHER, KEPT]
    assert storage.expire(60) == []


def test_s3_keys_live_under_the_prefix_and_other_objects_stay(aws: S3Server) -> None:
    bucket = aws.bucket()
    client = aws.client()
    for key in ("elsewhere/x", "jobs/here/not-a-job/input", f"jobs/{JOB}/input"):
        client.put_object(Bucket=bucket, Key=key, Body=b"theirs")
    storage = s3_storage(aws, bucket)
    storage.put(JOB, "input", b"ours")
    assert storage.job_ids() == [JOB]
    time.sleep(1.2)
    assert storage.expire(0.5) == [JOB]
    keys = sorted(obj["Key"] for obj in client.list_objects_v2(Bucket=bucket)["Contents"])
    assert keys == ["elsewhere/x", f"jobs/{JOB}/input", "jobs/here/not-a-job/input"]


def test_s3_presigned_url_serves_the_bytes_as_an_attachment(aws: S3Server) -> None:
    storage = s3_storage(aws, presign_seconds=120)
    storage.put(JOB, "result.webp", b"RIFF....WEBP")
    url = storage.download_url(JOB, "result.webp", "photo_x4.webp", "image/webp")
    assert url is not None and "X-Amz-Expires=120" in url and "X-Amz-Signature=" in url
    response = httpx.get(url, trust_env=False)
    assert response.status_code == 200 and response.content == b"RIFF....WEBP"
    assert response.headers["content-type"] == "image/webp"
    assert response.headers["content-disposition"] == 'attachment; filename="photo_x4.webp"'
    assert s3_storage(aws, presign_seconds=0).download_url(JOB, "result.webp", "a.webp", "image/webp") is None
    public = s3_storage(aws, presign_seconds=60, presign_endpoint_url="https://files.example.org")
    assert public.download_url(JOB, "result.webp", "a.webp", "image/webp").startswith("https://files.example.org/")


def test_s3_faults_in_words_without_addresses_or_keys(aws: S3Server, tmp: Path) -> None:
    missing = s3_storage(aws, bucket="no-such-bucket-here")
    with pytest.raises(StorageError, match="the bucket named in ESRGAN_STORAGE_URL does not exist") as info:
        missing.check()
    words = [str(info.value)]

    with s3_server(tmp, refuse_credentials=True) as refusing:
        storage = S3Storage("any-bucket", endpoint_url=refusing.url)
        with pytest.raises(StorageError, match="refused our credentials") as info:
            storage.put(JOB, "input", b"x")
        words.append(str(info.value))

    port = refusing.url.rsplit(":", 1)[1]  # the server is gone now: nothing listens there
    gone = S3Storage("any-bucket", endpoint_url=refusing.url)
    for call in (gone.check, lambda: gone.read(JOB, "input"), lambda: gone.put(JOB, "input", b"x"), gone.job_ids):
        with pytest.raises(StorageError, match="the object store is not reachable") as info:
            call()
        words.append(str(info.value))
    started = time.monotonic()
    with pytest.raises(StorageError, match="could not be stored after 2 attempts: the object store is not reachable"):
        put_with_retries(gone, JOB, "result.png", b"x", attempts=2, delay=0.1)
    assert time.monotonic() - started >= 0.1  # it waited before the second attempt
    for text in words:
        assert port not in text and "127.0.0.1" not in text and aws.env["AWS_SECRET_ACCESS_KEY"] not in text


def test_directory_faults_in_words(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "disk") as disk:
        storage = DirectoryStorage(disk / "jobs", min_free_bytes=0)
        storage.put(JOB, "input", b"kept")
        fill(disk, leave=0)
        with pytest.raises(StorageError, match=r"^the storage's disk is full$"):
            storage.put(OTHER, "input", b"x" * 100_000)
        assert not list((disk / "jobs").glob(f"{OTHER}/*"))  # the half-written temporary file is gone
        assert storage.read(JOB, "input") == b"kept"
        (disk / "filler").unlink()

        floor = DirectoryStorage(disk / "jobs", min_free_bytes=10 * 1024 * 1024)  # more than the 2 MB there are
        with pytest.raises(StorageError, match=r"the storage is full: 2 MB free.*at least 10 MB \(ESRGAN_MIN_FREE"):
            floor.check()
        with pytest.raises(StorageError, match="the storage is full"):
            floor.put(OTHER, "input", b"x")

        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        with pytest.raises(StorageError, match=r"^the storage's job folder is on a read-only file system$"):
            storage.check()
        with pytest.raises(StorageError, match="read-only"):
            storage.put(OTHER, "input", b"x")
        assert storage.read(JOB, "input") == b"kept"

    gone = DirectoryStorage(tmp_path / "gone")
    shutil.rmtree(tmp_path / "gone")
    with pytest.raises(StorageError, match=r"job folder does not exist \(removed, or its volume is not mounted\)"):
        gone.check()
    with pytest.raises(StorageError, match="does not exist"):
        gone.put(JOB, "input", b"x")


def test_settings_choose_the_backend(tmp_path: Path, aws: S3Server) -> None:
    by_url = open_storage(Settings(storage_url=f"file://{tmp_path}/a", storage_dir=tmp_path / "b"))
    assert isinstance(by_url, DirectoryStorage) and by_url.root == tmp_path / "a"
    assert open_storage(Settings(storage_url=str(tmp_path / "c"))).root == tmp_path / "c"
    assert open_storage(Settings(storage_dir=tmp_path / "d")).root == tmp_path / "d"
    s3 = open_storage(Settings(storage_url="s3://my-bucket/some/prefix/", s3_endpoint_url=aws.url))
    assert isinstance(s3, S3Storage) and s3.bucket == "my-bucket" and s3.root == "some/prefix/"
    for bad in ("s3://", "s3://UPPER/x", "http://host/x", "file://relative/path"):
        with pytest.raises(ValueError, match="storage URL"):
            Settings(storage_url=bad)
    with pytest.raises(ValueError, match="http:// or https://"):
        Settings(s3_endpoint_url="minio:9000")
