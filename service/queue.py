"""Jobs through RQ on Redis: submit, look up, cancel, remove, and recover jobs whose worker died.

What backs a job: the RQ job hash `rq:job:<id>` (arguments: ids and numbers only; `meta`: file name, sizes, progress,
attempts), the queue list `rq:queue:esrgan`, RQ's started/failed registries, and the key `esrgan:cancel:<id>` that a
worker checks between tiles. The API and `esrgan worker` only share this module's names and `service.worker`.
"""

import contextlib
import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeVar

from pydantic import BaseModel
from redis import Redis
from redis.exceptions import RedisError
from rq import Queue, Retry, Worker
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job, JobStatus
from rq.registry import StartedJobRegistry

from esrgan.service.metrics import JobStats, RedisStats
from esrgan.service.settings import Settings

log = logging.getLogger(__name__)

CANCEL_KEY = "esrgan:cancel:{0}"
T = TypeVar("T")


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


class JobInfo(BaseModel):
    id: str
    state: JobState
    model: str
    alpha: float
    format: str
    tile: int | None = None
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


SUBMITTED = {"model", "alpha", "format", "tile", "filename", "input", "output"}


def job_meta(info: JobInfo) -> dict[str, Any]:
    """The part of a JobInfo stored with the job when it is submitted (workers add progress and attempts)."""
    return info.model_dump(mode="json", include=SUBMITTED)


def describe_failure(exc_string: str | None) -> str:
    """A failure message a person can act on, from RQ's stored traceback."""
    if not exc_string:
        return "the job failed without an error message"
    if "AbandonedJobError" in exc_string:
        return (
            "the worker running this job stopped responding (killed, crashed or out of memory) "
            "and the job had no retries left"
        )
    if "JobTimeoutException" in exc_string:
        return "the job took longer than the configured job timeout (ESRGAN_JOB_TIMEOUT)"
    last = exc_string.strip().splitlines()[-1]
    return re.sub(r"^[\w.]+(Error|Exception): ", "", last) or last


class RedisJobs:
    """The job queue on Redis. Every method raises QueueUnavailable when Redis does not answer."""

    def __init__(self, settings: Settings) -> None:
        assert settings.redis_url
        self.settings = settings
        self.redis = Redis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=10)
        self.queue = Queue(settings.queue_name, connection=self.redis)
        self.stats_store = RedisStats(self.redis)

    def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        try:
            return fn(*args, **kwargs)
        except RedisError as exc:
            raise QueueUnavailable(f"the job queue (Redis) is not reachable: {exc}") from exc

    def ping(self) -> None:
        self._call(self.redis.ping)

    def submit(self, job_id: str, info: JobInfo) -> None:
        """Queue `service.worker.run_upscale(job_id, alpha, model, format, tile)`; retried once if its worker dies."""
        self._call(
            self.queue.enqueue,
            "esrgan.service.worker.run_upscale",
            args=(job_id, info.alpha, info.model, info.format, info.tile),
            job_id=job_id,
            meta=job_meta(info),
            retry=Retry(max=1),
            job_timeout=self.settings.job_timeout,
            result_ttl=self.settings.result_ttl,
            failure_ttl=self.settings.result_ttl,
            description=f"upscale {job_id} alpha={info.alpha} model={info.model}",
        )

    def _fetch(self, job_id: str) -> Job | None:
        try:
            return Job.fetch(job_id, connection=self.redis)
        except NoSuchJobError:
            return None

    def get(self, job_id: str) -> JobInfo | None:
        return self._call(self._get, job_id)

    def _get(self, job_id: str) -> JobInfo | None:
        job = self._fetch(job_id)
        if job is None or "input" not in job.meta:
            return None
        status = job.get_status(refresh=False)
        if status == JobStatus.STARTED:
            self._reap()  # a started job may belong to a dead worker: settle that before answering
            job.refresh()
            status = job.get_status(refresh=False)
        state = {
            JobStatus.STARTED: JobState.STARTED,
            JobStatus.FINISHED: JobState.FINISHED,
            JobStatus.FAILED: JobState.FAILED,
            JobStatus.CANCELED: JobState.CANCELLED,
            JobStatus.STOPPED: JobState.CANCELLED,
        }.get(status, JobState.QUEUED)
        if state == JobState.FINISHED and job.meta.get("cancelled"):
            state = JobState.CANCELLED
        error = None
        if state == JobState.FAILED:
            result = job.latest_result()
            error = describe_failure(result.exc_string if result else None)
        return JobInfo(
            id=job_id,
            state=state,
            progress=job.meta.get("progress"),
            position=job.get_position() if state == JobState.QUEUED else None,
            attempts=job.meta.get("attempts", 0),
            created_at=_utc(job.created_at),
            started_at=_utc(job.started_at) if state != JobState.QUEUED else None,
            ended_at=_utc(job.ended_at) if state in TERMINAL else None,
            error=error,
            **{key: job.meta[key] for key in SUBMITTED},
        )

    def cancel(self, job_id: str) -> None:
        """Stop a job: a queued one never runs, a started one stops at its next tile boundary."""

        def cancel() -> None:
            self.redis.set(CANCEL_KEY.format(job_id), 1, ex=self.settings.job_timeout + self.settings.result_ttl)
            job = self._fetch(job_id)
            if job is not None and job.get_status() in (JobStatus.QUEUED, JobStatus.DEFERRED, JobStatus.SCHEDULED):
                with contextlib.suppress(InvalidJobOperation):  # a worker took it meanwhile: it sees the cancel key
                    job.cancel()

        self._call(cancel)

    def remove(self, job_id: str) -> None:
        """Forget a job that has ended (its files are the caller's business)."""

        def remove() -> None:
            job = self._fetch(job_id)
            if job is not None:
                job.delete()
            self.redis.delete(CANCEL_KEY.format(job_id))

        self._call(remove)

    def depth(self) -> int:
        return self._call(lambda: self.queue.count)

    def workers(self) -> int:
        return self._call(Worker.count, queue=self.queue)

    def stats(self) -> JobStats:
        return self._call(self.stats_store.snapshot)

    def active_ids(self) -> set[str]:
        """Jobs that are queued or running: their files must stay."""

        def active() -> set[str]:
            started = StartedJobRegistry(queue=self.queue).get_job_ids(cleanup=False)
            return set(self.queue.get_job_ids()) | set(started)

        return self._call(active)

    def reap(self) -> None:
        """Retry (once) or fail the jobs whose worker stopped sending heartbeats."""
        self._call(self._reap)

    def _reap(self) -> None:
        # The lock is RQ's own, shared with the workers' maintenance, so a dead job is handled exactly once.
        if self.queue.acquire_maintenance_lock():
            try:
                registry = StartedJobRegistry(queue=self.queue)
                registry.cleanup(exception_handlers=[self._count_failure])
            finally:
                self.queue.release_maintenance_lock()

    def _count_failure(self, job: Job, *exc_info: Any) -> bool:
        self.stats_store.record_failure()
        return True  # let RQ's other handlers run too

    def close(self) -> None:
        self.redis.close()


def _utc(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)
