"""Job files (the upload and the result) under one directory shared by the API and every worker.

Layout: `<root>/<job id>/<name>`. Job ids are ours (32 hex digits) and names come from a fixed pattern, so nothing a
client sends (a file name, a job id in a URL) ever becomes part of a path. Writes go to a temporary name in the same
directory and are renamed into place, so a reader sees either no file or a complete one; a job that fails midway
leaves no result behind. An object store could replace this class: callers use only the methods below.
"""

import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger(__name__)

JOB_ID = re.compile(r"[0-9a-f]{32}")
NAME = re.compile(r"[a-z]+(\.[a-z]+)?")


class Storage:
    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def path_for(self, job_id: str, name: str) -> Path:
        """The file `name` of job `job_id`.

        Raises:
            ValueError: the id or the name is not one we hand out.
        """
        if not NAME.fullmatch(name):
            raise ValueError(f"not a storage key: {job_id!r}/{name!r}")
        return self._job_dir(job_id) / name

    def _job_dir(self, job_id: str) -> Path:
        if not JOB_ID.fullmatch(job_id):
            raise ValueError(f"not a storage key: {job_id!r}")
        return self.root / job_id

    def put(self, job_id: str, name: str, data: bytes) -> Path:
        """Write `data` atomically (temporary file, fsync, rename) and return its path."""
        path = self.path_for(job_id, name)
        path.parent.mkdir(exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    def read(self, job_id: str, name: str) -> bytes:
        return self.path_for(job_id, name).read_bytes()

    def exists(self, job_id: str, name: str) -> bool:
        return self.path_for(job_id, name).is_file()

    def remove(self, job_id: str) -> None:
        """Delete every file of a job (no error if there is none)."""
        shutil.rmtree(self._job_dir(job_id), ignore_errors=True)

    def job_ids(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and JOB_ID.fullmatch(p.name))

    def expire(self, max_age: float, keep: Iterable[str] = ()) -> list[str]:
        """Remove jobs whose newest file is older than `max_age` seconds, except those in `keep` (still running).

        Returns:
            The ids of the removed jobs.
        """
        keep = set(keep)
        cutoff = time.time() - max_age
        removed = []
        for job_id in self.job_ids():
            if job_id in keep:
                continue
            mtimes = [p.stat().st_mtime for p in (self.root / job_id).iterdir()]
            if max(mtimes, default=0.0) < cutoff:
                self.remove(job_id)
                removed.append(job_id)
        if removed:
            log.info("removed %d expired jobs from %s", len(removed), self.root)
        return removed
