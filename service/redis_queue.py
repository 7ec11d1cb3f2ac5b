"""`RedisJobs`: the job queue on RQ and Redis, for an API whose workers (`esrgan worker`) run in other processes.

What backs a job: the RQ job hash `rq:job:<id>` (arguments: ids and numbers only; `meta`: the submitted fields,
progress, attempts), the queue list `rq:queue:esrgan`, RQ's started/failed registries, and the cancel key
(`service.job.cancel_key`) that a worker checks between tiles. The API and `esrgan worker` share only
`service.job` and `service.worker`; importing the worker module does not load torch (its runner loads at start).
"""

import contextlib
import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from redis import Redis
from redis.exceptions import RedisError
from rq import Queue, Retry, Worker
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job, JobStatus
from rq.registry import StartedJobRegistry

from esrgan.service.job import SUBMITTED, TERMINAL, JobInfo, JobState, QueueUnavailable, cancel_key
from esrgan.service.metrics import JobStats, RedisStats
from esrgan.service.settings import Settings
from esrgan.service.worker import CANCELLED, run_upscale

log = logging.getLogger(__name__)

T = TypeVar("T")

STATES = {
    JobStatus.STARTED: JobState.STARTED,
    JobStatus.FINISHED: JobState.FINISHED,
    JobStatus.FAILED: JobState.FAILED,
    JobStatus.CANCELED: JobState.CANCELLED,
    JobStatus.STOPPED: JobState.CANCELLED,
}  # every other RQ status (queued, deferred, scheduled) is "queued" to a client


# Fields with a default (scale, width, height) may be missing from a job an older API queued before an upgrade.
REQUIRED = {key for key in SUBMITTED if JobInfo.model_fields[key].is_required()}


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
            # Redis's own words name its address: they go to the log, a client hears only which service is down.
            log.warning("Redis call %s failed: %s", getattr(fn, "__name__", "?"), exc)
            raise QueueUnavailable("Redis does not answer") from exc

    def start(self) -> None:
        """Nothing to start: the workers are `esrgan worker` processes, and /readyz says whether one is alive."""

    def ping(self) -> None:
        self._call(self.redis.ping)

    def submit(self, job_id: str, info: JobInfo) -> None:
        """Queue `run_upscale(job_id, alpha, model, format, tile, size)`; retried once if its worker dies."""
        self._call(
            self.queue.enqueue,
            run_upscale,
            args=(job_id, info.alpha, info.model, info.format, info.tile, info.params.size),
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
        """The job as it stands; a job whose worker died shows as started until `reap` (housekeeping) settles it."""
        return self._call(self._get, job_id)

    def _get(self, job_id: str) -> JobInfo | None:
        job = self._fetch(job_id)
        if job is None or not job.meta.keys() >= REQUIRED:  # not one of ours
            return None
        state = STATES.get(job.get_status(refresh=False), JobState.QUEUED)
        if state == JobState.FINISHED and (job.meta.get(CANCELLED) or self.redis.exists(cancel_key(job_id))):
            state = JobState.CANCELLED  # stopped by its cancel key, or cancelled after the runner's last check
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
            **{key: job.meta[key] for key in SUBMITTED if key in job.meta},
        )

    def cancel(self, job_id: str) -> None:
        """Stop a job: a queued one never runs, a started one stops at its next tile boundary."""

        def cancel() -> None:
            self.redis.set(cancel_key(job_id), 1, ex=self.settings.job_timeout + self.settings.result_ttl)
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
            self.redis.delete(cancel_key(job_id))

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
        """Retry (once) or fail the jobs whose worker stopped sending heartbeats (RQ expires finished jobs itself)."""
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
