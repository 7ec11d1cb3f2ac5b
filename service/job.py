"""The job contract: what a job is, what a client sees of it, and what every job queue offers the API.

Routes, the app and both workers speak only these names. Two adapters implement `JobQueue`: `RedisJobs`
(`service.redis_queue`, RQ on Redis, workers in other processes) and `LocalJobs` (`service.local_queue`, worker
threads in the API process). A job's files live in `Storage` under the names defined here, so the route that stores an
upload, the runner that writes a result and the route that serves it cannot disagree on a spelling.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from pydantic import BaseModel

from esrgan.service.metrics import JobStats

INPUT = "input"  # storage name of a job's upload, as the client sent it


def result_name(fmt: str) -> str:
    """Storage name of a job's result in format `fmt` (png, webp, jpeg)."""
    return f"result.{fmt}"


def cancel_key(job_id: str) -> str:
    """The cancel signal of a job on Redis: the key whose presence cancels `job_id` (set by the API's `cancel`, read
    by the RQ worker between tiles; the in-process queue keeps a set instead)."""
    return f"esrgan:cancel:{job_id}"


ProgressReport = Callable[[int, int], None]  # (tiles done, tiles in total) of the current attempt
CancelCheck = Callable[[], bool]  # True once the client has cancelled: the runner stops at its next tile boundary


class JobState(StrEnum):
    """What a client sees; RQ's finer statuses map onto these five."""

    QUEUED = "queued"
    STARTED = "started"
    FINISHED = "finished"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL = {JobState.FINISHED, JobState.FAILED, JobState.CANCELLED}


class QueueUnavailable(RuntimeError):
    """The queue (Redis) did not answer; the API turns this into 503."""


class Size(BaseModel):
    width: int
    height: int


class Progress(BaseModel):
    done: int
    total: int


@dataclass(frozen=True)
class JobParams:
    """What a worker needs besides the job id: the only things that cross from the API to a worker process."""

    model: str
    alpha: float | None  # None: a single model, which takes no alpha
    format: str
    tile: int | None = None
    size: tuple[int, int] | None = None  # (width, height) the network's result is resized to; None: its own scale


class JobInfo(BaseModel):
    id: str
    state: JobState
    model: str
    alpha: float | None  # None for a single model
    format: str
    tile: int | None = None
    scale: float | None = None  # the output scale asked for (`?scale=`); None: the model's own, unless width/height
    width: int | None = None  # the output width or height asked for (`?width=`, `?height=`), aspect ratio kept
    height: int | None = None
    filename: str  # the download name, derived from (but never used as) the client's file name
    input: Size
    output: Size
    progress: Progress | None = None  # tiles done / total of the current attempt
    position: int | None = None  # 0 = next to run; only while queued
    attempts: int = 0
    created_at: datetime | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    error: str | None = None
    status_url: str | None = None
    result_url: str | None = None

    @property
    def params(self) -> JobParams:
        resized = (self.scale, self.width, self.height) != (None, None, None)
        size = (self.output.width, self.output.height) if resized else None
        return JobParams(model=self.model, alpha=self.alpha, format=self.format, tile=self.tile, size=size)


# The fields fixed when a job is submitted; a queue stores them and adds state, progress and timings.
SUBMITTED = {"model", "alpha", "format", "tile", "scale", "width", "height", "filename", "input", "output"}


class JobQueue(Protocol):
    """Where jobs wait and how the API learns about them. Every method may raise QueueUnavailable."""

    def start(self) -> None:
        """Get ready to serve (in-process: start the worker threads and load the weights); raises if it cannot."""

    def ping(self) -> None:
        """Return when the queue answers."""

    def submit(self, job_id: str, info: JobInfo) -> None:
        """Queue a job whose upload is already stored; `info` carries the submitted fields."""

    def get(self, job_id: str) -> JobInfo | None:
        """The job as a client sees it, or None if it never existed, was removed or expired."""

    def cancel(self, job_id: str) -> None:
        """A queued job never runs; a started one stops at its next tile boundary (nothing is stored)."""

    def remove(self, job_id: str) -> None:
        """Forget an ended job (its files are the caller's business)."""

    def depth(self) -> int:
        """Jobs waiting for a worker."""

    def workers(self) -> int:
        """Workers alive, with their weights loaded."""

    def stats(self) -> JobStats:
        """Durations of finished jobs and the count of failed executions, over every worker."""

    def active_ids(self) -> set[str]:
        """Jobs queued or running: their files must stay."""

    def reap(self) -> None:
        """Periodic maintenance: settle jobs whose worker died, forget jobs past their result TTL."""

    def close(self) -> None:
        """Release connections and threads; the queue is not used again."""
