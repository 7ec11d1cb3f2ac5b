"""Where a job's files (the upload, the result) live: the `Storage` protocol, its errors, and the choice of backend.

Two backends implement it: `DirectoryStorage` (`service.storage_dir`, one folder shared by the API and every worker:
the default) and `S3Storage` (`service.storage_s3`, an S3-compatible object store, so workers on other hosts need no
shared folder). Both keep the same promises: a key is `<job id>/<name>` with an id we made (32 hex digits) and a name
from a fixed pattern, so nothing a client sends becomes part of one; a reader sees a whole file or none; a job that
fails midway leaves no result behind; files of ended jobs are removed after the result TTL by `expire`.
"""

import logging
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlparse

from esrgan.service.settings import Settings

log = logging.getLogger(__name__)

JOB_ID = re.compile(r"[0-9a-f]{32}")
NAME = re.compile(r"[a-z]+(\.[a-z]+)?")
CHUNK = 256 * 1024  # bytes per piece of a streamed download


class StorageError(RuntimeError):
    """The storage cannot do what was asked (unreachable, read-only, full, refusing our credentials). The message says
    why in words a person can act on, naming "the storage" or "the object store", never an address or a secret; the
    API answers it with 503, and a job that meets it fails with that message."""


def check_key(job_id: str, name: str = "input") -> None:
    """Raise ValueError unless `job_id` and `name` are ones we hand out (the storage key is built from them only)."""
    if not JOB_ID.fullmatch(job_id) or not NAME.fullmatch(name):
        raise ValueError(f"not a storage key: {job_id!r}/{name!r}")


@dataclass
class Blob:
    """A stored file opened for reading: its size, and its bytes in pieces of at most CHUNK (never read whole)."""

    size: int
    chunks: Iterator[bytes]


class Storage(Protocol):
    """A job's files. Every method raises StorageError when the storage cannot be used, ValueError for a bad key."""

    kind: str  # "directory" or "s3", as /readyz reports it

    def put(self, job_id: str, name: str, data: bytes) -> None:
        """Store `data` whole: a reader sees the old state or all of it, never part."""

    def read(self, job_id: str, name: str) -> bytes:
        """The whole file; FileNotFoundError when it is not stored."""

    def open(self, job_id: str, name: str) -> Blob:
        """The file for streaming; FileNotFoundError when it is not stored."""

    def exists(self, job_id: str, name: str) -> bool: ...

    def download_url(self, job_id: str, name: str, filename: str, media_type: str) -> str | None:
        """A short-lived URL a client can fetch the file from directly (served with `media_type` and as an attachment
        named `filename`), or None when the API must serve it itself."""

    def remove(self, job_id: str) -> None:
        """Delete every file of a job (no error if there is none)."""

    def job_ids(self) -> list[str]:
        """Ids of the jobs that have files, sorted."""

    def expire(self, max_age: float, keep: Iterable[str] = ()) -> list[str]:
        """Remove jobs whose newest file is older than `max_age` seconds, except `keep` (still running); their ids."""

    def check(self) -> None:
        """Return when the storage takes a write (a probe written and removed) and has room; else StorageError."""


def put_with_retries(
    storage: Storage, job_id: str, name: str, data: bytes, attempts: int = 3, delay: float = 1
) -> None:
    """`storage.put`, tried again after `delay`, `2 * delay`... while it raises StorageError: a store that blinks
    (a restart, a full disk being cleaned) does not cost a finished job its result. The last error says how often."""
    for attempt in range(1, attempts + 1):
        try:
            storage.put(job_id, name, data)
            return
        except StorageError as exc:
            if attempt == attempts:
                raise StorageError(f"{name} could not be stored after {attempts} attempts: {exc}") from exc
            log.warning("storing %s/%s failed (attempt %d of %d), retrying: %s", job_id, name, attempt, attempts, exc)
            time.sleep(delay * attempt)


def open_storage(settings: Settings) -> Storage:
    """The backend `ESRGAN_STORAGE_URL` names (`s3://bucket/prefix`, `file:///path` or a path), else the directory
    `ESRGAN_STORAGE_DIR`. Each backend is imported only when chosen: the S3 one brings boto3."""
    url = settings.storage_url
    if url and url.startswith("s3://"):
        from esrgan.service.storage_s3 import S3Storage

        return S3Storage.from_settings(settings)
    from esrgan.service.storage_dir import DirectoryStorage

    root = urlparse(url).path if url and url.startswith("file://") else (url or settings.storage_dir)
    return DirectoryStorage(root, min_free_bytes=settings.min_free_bytes)
