"""RQ's side of a job: the function RQ runs, RQ's in-process worker with a live heartbeat, and `esrgan worker`.

`run_upscale` is what RQ runs with ids and numbers only; the work itself is `service.runner.JobRunner.run`, shared
with the in-process threads of `service.local_queue`. The API imports this module to enqueue `run_upscale` by
reference, so nothing here loads torch at import: `EsrganWorker` loads the runner (torch, the weights) when it starts.
"""

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from redis import Redis
from redis.exceptions import RedisError
from rq import SimpleWorker, get_current_job
from rq.job import Job
from rq.queue import Queue
from rq.timeouts import JobTimeoutException
from rq.worker import WorkerStatus

from esrgan.models.images import ImageError
from esrgan.service.job import JobParams, JobState, cancel_key
from esrgan.service.metrics import RedisStats
from esrgan.service.settings import Settings, get_settings
from esrgan.service.storage import StorageError, open_storage

if TYPE_CHECKING:
    from esrgan.service.runner import JobRunner

log = logging.getLogger(__name__)


# The job.meta flag of a job its cancel key stopped, which RQ itself calls finished.
CANCELLED = JobState.CANCELLED.value


_runner: "JobRunner | None" = None  # this process's runner, built once by `start_runner` before any job


def start_runner(settings: Settings) -> None:
    """Set torch's threads and load every model pair: once per worker process, before it registers with RQ."""
    global _runner
    # Imported here and not at the top: the API imports this module (for run_upscale) and must not load torch.
    from esrgan.service.runner import JobRunner, set_threads

    set_threads(settings)
    _runner = JobRunner.load(settings, open_storage(settings))


def run_upscale(
    job_id: str, alpha: float | None, model: str, fmt: str, tile: int | None, size: tuple[int, int] | None = None
) -> None:
    """Upscale one stored upload at `alpha` with this worker's runner (resized to `size`, if given).

    Progress goes to `job.meta["progress"]` ({done, total} tiles of this attempt), attempts to `job.meta["attempts"]`,
    and a job stopped by its cancel key gets `job.meta[CANCELLED]`.
    """
    runner = _runner
    assert runner is not None, "run_upscale runs in an EsrganWorker, which loads its runner when it starts"
    job = get_current_job()
    assert job is not None, "run_upscale runs inside an RQ worker"
    redis: Redis = job.connection
    job.meta["attempts"] = job.meta.get("attempts", 0) + 1
    job.meta["progress"] = None
    job.save_meta()

    def progress(done: int, total: int) -> None:
        job.meta["progress"] = {"done": done, "total": total}
        job.save_meta()

    def cancel() -> bool:
        return bool(redis.exists(cancel_key(job_id)))

    started = time.monotonic()
    params = JobParams(model=model, alpha=alpha, format=fmt, tile=tile, size=size)
    if runner.run(job_id, params, progress=progress, cancel=cancel):
        RedisStats(redis).record_duration(time.monotonic() - started)
    else:
        job.meta[CANCELLED] = True
        job.save_meta()


# Failures a retry would only repeat: the input cannot be decoded, the result cannot be encoded, the job outran its
# timeout, the storage failed (the runner already retried storing the result; the upload cannot be read). RQ's Retry
# applies to any exception; ours (Retry(max=1) at submit) is meant for a worker that died.
FINAL_FAILURES = (ImageError, JobTimeoutException, StorageError)


def count_failure(job: Job, *exc_info: Any) -> bool:
    """RQ exception handler: count the failed execution in the shared stats, then let RQ go on."""
    RedisStats(job.connection).record_failure()
    return True


def final_failure(job: Job, exc_type: type[BaseException] | None, *exc_info: Any) -> bool:
    """RQ exception handler, run before RQ decides on a retry: a deterministic failure has no retries left.

    A dead worker's job reaches the handlers as AbandonedJobError (from registry cleanup) and keeps its retry.
    """
    if exc_type is not None and issubclass(exc_type, FINAL_FAILURES):
        job.retries_left = 0
    return True


class EsrganWorker(SimpleWorker):
    """RQ's in-process worker (no fork per job: the model stays resident and a CUDA context stays valid), plus a
    heartbeat thread while a job runs.

    A plain SimpleWorker cannot beat during a job, so RQ gives its jobs `job_timeout + 60` s before calling them
    abandoned. Here a thread refreshes the job's entry in the started registry every `heartbeat` seconds with a TTL of
    three beats; if the process dies (SIGKILL, out-of-memory killer) the entry expires within three beats and the next
    maintenance pass (another worker's, or the API's housekeeping) retries the job once, then fails it with a reason.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        settings = get_settings()  # RQ's WorkerPool builds this class in each child: settings come from the environment
        beat = settings.heartbeat
        kwargs.setdefault("job_monitoring_interval", beat)
        kwargs.setdefault("worker_ttl", 3 * beat + 15)  # an idle worker wakes (and maintains) every 3 beats
        kwargs.setdefault("maintenance_interval", 3 * beat)
        kwargs.setdefault("exception_handlers", [count_failure, final_failure])
        super().__init__(*args, **kwargs)
        start_runner(settings)  # before registering: a live worker always has its weights loaded

    def get_heartbeat_ttl(self, job: Job, working_time: float = 0.0) -> int:
        return 3 * self.job_monitoring_interval

    def execute_job(self, job: Job, queue: Queue) -> None:
        execution = self.prepare_execution(job)
        stop = threading.Event()
        beats = threading.Thread(target=self._beat, args=(job, execution, stop), name="heartbeat", daemon=True)
        beats.start()
        try:
            self.perform_job(job, queue, execution)
        finally:
            stop.set()
            beats.join()
        self.set_state(WorkerStatus.IDLE)

    def _beat(self, job: Job, execution: Any, stop: threading.Event) -> None:
        while not stop.wait(self.job_monitoring_interval):
            try:
                self.maintain_heartbeats(job, execution)
            except RedisError as exc:
                log.warning("heartbeat for job %s failed: %s", job.id, exc)


def run_worker(settings: Settings, name: str | None = None, burst: bool = False) -> None:
    """Serve jobs from the configured queue until stopped (SIGINT/SIGTERM finish the current job first)."""
    assert settings.redis_url, "ESRGAN_REDIS_URL is needed to run a worker"
    redis = Redis.from_url(settings.redis_url)
    worker = EsrganWorker([settings.queue_name], connection=redis, name=name)
    worker.work(burst=burst, logging_level="INFO")
