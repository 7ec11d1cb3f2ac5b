"""`DirectoryStorage`: job files under one folder shared by the API and every worker (the default backend).

Layout: `<root>/<job id>/<name>`. Writes go to a temporary name in the same folder, are fsynced and renamed into
place, so a reader sees no file or a complete one. A write that would leave less than `min_free_bytes` free is refused
before it starts (results are many times larger than uploads: the floor keeps room for the jobs already accepted), and
the errors the file system gives (read-only, full, folder gone) become StorageError in words, not errnos.
"""

import errno
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from esrgan.service.settings import MB
from esrgan.service.storage import CHUNK, JOB_ID, Blob, StorageError, check_key

log = logging.getLogger(__name__)

REASONS = {
    errno.EROFS: "the storage's job folder is on a read-only file system",
    errno.EACCES: "the storage's job folder is not writable by this process",
    errno.EPERM: "the storage's job folder is not writable by this process",
    errno.ENOSPC: "the storage's disk is full",
    errno.EDQUOT: "the storage's disk quota is used up",
    errno.ENOENT: "the storage's job folder does not exist (removed, or its volume is not mounted)",
}


def storage_error(exc: OSError) -> StorageError:
    """An OSError of the file system, as a StorageError a person understands (the errno stays in the log)."""
    log.warning("job folder error: %s", exc)
    return StorageError(REASONS.get(exc.errno or 0, "the storage's job folder cannot be used"))


class DirectoryStorage:
    kind = "directory"

    def __init__(self, root: Path | str, min_free_bytes: int = 0) -> None:
        self.root = Path(root).resolve()
        self.min_free_bytes = min_free_bytes
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # the server still starts; /readyz says what is wrong until it is mended
            log.warning("cannot create the job folder %s: %s", self.root, exc)

    def path_for(self, job_id: str, name: str) -> Path:
        """The file `name` of job `job_id`; ValueError when the id or the name is not one we hand out."""
        check_key(job_id, name)
        return self.root / job_id / name

    def _job_dir(self, job_id: str) -> Path:
        check_key(job_id)
        return self.root / job_id

    def _room_for(self, size: int) -> None:
        if not self.min_free_bytes:  # no floor: a disk that fills up says so when a write fails
            return
        free = shutil.disk_usage(self.root).free
        if free - size < self.min_free_bytes:
            raise StorageError(
                f"the storage is full: {free / MB:.0f} MB free, and it keeps at least "
                f"{self.min_free_bytes / MB:.0f} MB (ESRGAN_MIN_FREE_BYTES) for the jobs it has"
            )

    def put(self, job_id: str, name: str, data: bytes) -> None:
        """Write `data` atomically (temporary file, fsync, rename)."""
        path = self.path_for(job_id, name)
        try:
            self._room_for(len(data))
            path.parent.mkdir(exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        except OSError as exc:
            raise storage_error(exc) from exc
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError as exc:
            Path(tmp).unlink(missing_ok=True)
            raise storage_error(exc) from exc
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def read(self, job_id: str, name: str) -> bytes:
        path = self.path_for(job_id, name)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise storage_error(exc) from exc

    def open(self, job_id: str, name: str) -> Blob:
        """The file, opened now: a job removed while its result streams still streams whole (POSIX keeps the inode)."""
        path = self.path_for(job_id, name)
        try:
            f = path.open("rb")
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise storage_error(exc) from exc
        return Blob(size=os.fstat(f.fileno()).st_size, chunks=_chunks(f))

    def exists(self, job_id: str, name: str) -> bool:
        return self.path_for(job_id, name).is_file()

    def download_url(self, job_id: str, name: str, filename: str, media_type: str) -> str | None:
        """None: a folder has no URL of its own, the API streams the file."""
        return None

    def remove(self, job_id: str) -> None:
        shutil.rmtree(self._job_dir(job_id), ignore_errors=True)

    def job_ids(self) -> list[str]:
        try:
            return sorted(p.name for p in self.root.iterdir() if p.is_dir() and JOB_ID.fullmatch(p.name))
        except OSError as exc:
            raise storage_error(exc) from exc

    def expire(self, max_age: float, keep: Iterable[str] = ()) -> list[str]:
        keep = set(keep)
        cutoff = time.time() - max_age
        removed = []
        for job_id in self.job_ids():
            if job_id in keep:
                continue
            try:
                mtimes = [p.stat().st_mtime for p in (self.root / job_id).iterdir()]
            except FileNotFoundError:  # removed meanwhile (DELETE, another API's cleanup)
                continue
            if max(mtimes, default=0.0) < cutoff:
                self.remove(job_id)
                removed.append(job_id)
        if removed:
            log.info("removed %d expired jobs from %s", len(removed), self.root)
        return removed

    def check(self) -> None:
        """A probe file written, fsynced and removed in the job folder, then the free space against the floor."""
        try:
            with tempfile.NamedTemporaryFile(dir=self.root, prefix=".probe-") as f:
                f.write(b"probe")
                f.flush()
                os.fsync(f.fileno())
        except OSError as exc:
            raise storage_error(exc) from exc
        self._room_for(0)


def _chunks(f: BinaryIO) -> Iterator[bytes]:
    with f:
        while piece := f.read(CHUNK):
            yield piece
