"""`S3Storage`: job files in an S3-compatible object store (AWS S3, MinIO, Cloudflare R2, Ceph RGW, Backblaze B2),
so the API and workers on other hosts share no folder.

Layout: `<prefix>/<job id>/<name>` in one bucket. A PUT is atomic (a reader sees the old object or the whole new one)
and a job writes its result last, once, so a failed job leaves no result. Expiry is our own cleanup (list by prefix,
newest LastModified per job); a bucket lifecycle rule on the prefix does the same (README). Credentials and region come
only from boto3's own chain (AWS_* variables, ~/.aws files, an instance or pod role), never from our settings.

boto3 rather than obstore: it presigns GET URLs with response headers (Content-Type, Content-Disposition) offline,
streams bodies in chunks, retries with backoff, reads every credential source AWS documents, and is the client MinIO,
R2 and Ceph document and test against.
"""

import logging
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, PartialCredentialsError

from esrgan.service.settings import Settings, split_s3_url
from esrgan.service.storage import CHUNK, JOB_ID, Blob, StorageError, check_key

log = logging.getLogger(__name__)

MISSING = {"NoSuchKey", "404", "NotFound"}
REFUSED = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken", "403"}
CREDENTIALS = "check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or this host's role"


def store_error(exc: Exception) -> StorageError:
    """What went wrong with the object store, in words; the endpoint's address and the keys stay out of it."""
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        if code in REFUSED:
            reason = f"the object store refused our credentials ({CREDENTIALS})"
        elif code == "NoSuchBucket":
            reason = "the bucket named in ESRGAN_STORAGE_URL does not exist in the object store"
        else:
            reason = f"the object store answered {code or 'an error'}"
    elif isinstance(exc, NoCredentialsError | PartialCredentialsError):
        reason = f"no credentials for the object store were found ({CREDENTIALS})"
    else:
        reason = "the object store is not reachable"
    return StorageError(reason)


@contextmanager
def _translated() -> Iterator[None]:
    """boto3's exceptions as ours: a missing key is FileNotFoundError, everything else StorageError."""
    try:
        yield
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in MISSING:
            raise FileNotFoundError("not in the object store") from exc
        log.warning("object store call failed: %s", exc)
        raise store_error(exc) from exc
    except BotoCoreError as exc:
        log.warning("object store call failed: %s", exc)
        raise store_error(exc) from exc


class S3Storage:
    kind = "s3"

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        endpoint_url: str | None = None,
        presign_endpoint_url: str | None = None,
        presign_seconds: int = 300,
    ) -> None:
        self.bucket = bucket
        self.root = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
        self.presign_seconds = presign_seconds
        # Path-style addressing where an endpoint is given: MinIO, Ceph and a store on an IP address have no
        # per-bucket host names. Timeouts keep a request from hanging on a store that went away.
        config = Config(
            signature_version="s3v4",
            connect_timeout=3,
            read_timeout=30,
            retries={"mode": "standard", "max_attempts": 3},
            max_pool_connections=32,
            s3={"addressing_style": "path" if endpoint_url else "auto"},
        )
        session = boto3.session.Session()  # one per store: boto3 clients are thread-safe, sessions are not shared
        self.client = session.client("s3", endpoint_url=endpoint_url, config=config)
        self.presigner = self.client
        if presign_endpoint_url:  # the address clients download from, when it differs from the one we use
            self.presigner = session.client("s3", endpoint_url=presign_endpoint_url, config=config)

    @classmethod
    def from_settings(cls, settings: Settings) -> "S3Storage":
        assert settings.storage_url
        bucket, prefix = split_s3_url(settings.storage_url)
        return cls(
            bucket,
            prefix,
            endpoint_url=settings.s3_endpoint_url,
            presign_endpoint_url=settings.s3_presign_endpoint_url,
            presign_seconds=settings.s3_presign_seconds,
        )

    def key(self, job_id: str, name: str) -> str:
        check_key(job_id, name)
        return f"{self.root}{job_id}/{name}"

    def put(self, job_id: str, name: str, data: bytes) -> None:
        key = self.key(job_id, name)
        with _translated():
            self.client.put_object(Bucket=self.bucket, Key=key, Body=data)

    def read(self, job_id: str, name: str) -> bytes:
        key = self.key(job_id, name)
        with _translated():
            return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def open(self, job_id: str, name: str) -> Blob:
        key = self.key(job_id, name)
        with _translated():
            answer = self.client.get_object(Bucket=self.bucket, Key=key)
        return Blob(size=answer["ContentLength"], chunks=_chunks(answer["Body"]))

    def exists(self, job_id: str, name: str) -> bool:
        key = self.key(job_id, name)
        try:
            with _translated():
                self.client.head_object(Bucket=self.bucket, Key=key)
        except FileNotFoundError:
            return False
        return True

    def download_url(self, job_id: str, name: str, filename: str, media_type: str) -> str | None:
        """A presigned GET valid for `presign_seconds` (made offline, no request), or None when that is 0."""
        if not self.presign_seconds:
            return None
        params = {
            "Bucket": self.bucket,
            "Key": self.key(job_id, name),
            "ResponseContentType": media_type,
            "ResponseContentDisposition": f'attachment; filename="{filename}"',
        }
        with _translated():
            return self.presigner.generate_presigned_url("get_object", Params=params, ExpiresIn=self.presign_seconds)

    def _objects(self, prefix: str) -> Iterator[dict[str, Any]]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        with _translated():
            for page in pages:
                yield from page.get("Contents", [])

    def _delete(self, keys: list[str]) -> None:
        with _translated():
            for start in range(0, len(keys), 1000):  # the most one DeleteObjects call takes
                batch = [{"Key": key} for key in keys[start : start + 1000]]
                self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})

    def remove(self, job_id: str) -> None:
        check_key(job_id)
        self._delete([obj["Key"] for obj in self._objects(f"{self.root}{job_id}/")])

    def _by_job(self) -> dict[str, list[dict[str, Any]]]:
        """Our objects under the prefix, by job id (anything else in the bucket is left alone)."""
        jobs: dict[str, list[dict[str, Any]]] = {}
        for obj in self._objects(self.root):
            job_id, slash, _ = obj["Key"][len(self.root) :].partition("/")
            if slash and JOB_ID.fullmatch(job_id):
                jobs.setdefault(job_id, []).append(obj)
        return jobs

    def job_ids(self) -> list[str]:
        return sorted(self._by_job())

    def expire(self, max_age: float, keep: Iterable[str] = ()) -> list[str]:
        keep = set(keep)
        cutoff = datetime.now(UTC) - timedelta(seconds=max_age)
        old = {
            job_id: objects
            for job_id, objects in self._by_job().items()
            if job_id not in keep and max(obj["LastModified"] for obj in objects) < cutoff
        }
        self._delete([obj["Key"] for objects in old.values() for obj in objects])
        if old:
            log.info("removed %d expired jobs from the object store", len(old))
        return sorted(old)

    def check(self) -> None:
        """A probe object written and deleted under the prefix (outside every job's keys)."""
        key = f"{self.root}.probe-{uuid.uuid4().hex}"
        with _translated():
            self.client.put_object(Bucket=self.bucket, Key=key, Body=b"probe")
            self.client.delete_object(Bucket=self.bucket, Key=key)


def _chunks(body: Any) -> Iterator[bytes]:
    """The body of a GET in pieces; closed at the end or when the download is abandoned."""
    try:
        with _translated():
            yield from body.iter_chunks(CHUNK)
    finally:
        body.close()
