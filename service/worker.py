"""Workers: the job function, a per-worker model cache, and RQ's in-process worker with a live heartbeat.

`run_upscale` is what RQ runs (by dotted path) with ids and numbers only; `upscale_stored` is the work itself, shared
with the in-process threads of `service.local`. A worker loads each model pair once and keeps it resident; each job
only blends the two networks for its alpha (a no-op when alpha repeats) and runs the tiled engine.
"""

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import torch
from redis import Redis
from redis.exceptions import RedisError
from rq import SimpleWorker, get_current_job
from rq.job import Job
from rq.queue import Queue
from rq.worker import WorkerStatus

from esrgan.models.engine import Cancelled, Engine, EngineSettings
from esrgan.models.images import read_image, write_image
from esrgan.service.metrics import RedisStats
from esrgan.service.pairs import pair_paths
from esrgan.service.queue import CANCEL_KEY
from esrgan.service.settings import Settings, get_settings
from esrgan.service.storage import Storage

log = logging.getLogger(__name__)


class EngineCache:
    """The engines of one worker (an RQ process or one in-process thread), loaded on first use and kept.

    Not shared between threads: each engine holds one blend of weights, set per job.
    """

    def __init__(self, settings: Settings) -> None:
        torch.set_num_threads(settings.torch_threads)  # process-wide: in-process worker threads all ask the same
        self.settings = settings
        self.entries = {entry.name: entry for entry in settings.weight_entries}
        self.engines: dict[str, Engine] = {}

    def get(self, model: str) -> Engine:
        if model not in self.engines:
            psnr, gan = pair_paths(self.entries[model])
            settings = EngineSettings(device=self.settings.device, tile=self.settings.tile)
            self.engines[model] = Engine.from_pair(psnr, gan, settings)
            log.info("loaded model pair %s (%s, %s)", model, psnr, gan)
        return self.engines[model]

    def preload(self) -> None:
        for name in self.entries:
            self.get(name)


def upscale_stored(
    job_id: str,
    alpha: float,
    model: str,
    fmt: str,
    tile: int | None,
    *,
    storage: Storage,
    engines: EngineCache,
    progress: Callable[[int, int], None],
    cancel: Callable[[], bool],
) -> bool:
    """Upscale the stored upload of `job_id` and store `result.<fmt>`.

    Returns:
        True when the result is stored, False when `cancel()` stopped the job (nothing is stored then).
    """
    if cancel():
        return False
    picture = read_image(storage.read(job_id, "input"), max_pixels=engines.settings.max_pixels)
    engine = engines.get(model)
    engine.set_alpha(alpha)
    try:
        result = engine.upscale(picture, progress=progress, cancel=cancel, tile=tile)
    except Cancelled:
        return False
    storage.put(job_id, f"result.{fmt}", write_image(result, fmt))
    return True


_engines: EngineCache | None = None  # this process's models, loaded by EsrganWorker before it takes a job


def process_engines() -> EngineCache:
    global _engines
    if _engines is None:
        _engines = EngineCache(get_settings())
    return _engines


def run_upscale(job_id: str, alpha: float, model: str, fmt: str, tile: int | None) -> str:
    """Upscale one stored upload at `alpha`; return the storage name of the result ("" when cancelled).

    Progress goes to `job.meta["progress"]` ({done, total} tiles of this attempt), attempts to `job.meta["attempts"]`.
    """
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
        return bool(redis.exists(CANCEL_KEY.format(job_id)))

    started = time.monotonic()
    settings = get_settings()
    stored = upscale_stored(
        job_id,
        alpha,
        model,
        fmt,
        tile,
        storage=Storage(settings.storage_dir),
        engines=process_engines(),
        progress=progress,
        cancel=cancel,
    )
    if not stored:
        job.meta["cancelled"] = True
        job.save_meta()
        return ""
    RedisStats(redis).record_duration(time.monotonic() - started)
    return f"result.{fmt}"


def count_failure(job: Job, *exc_info: Any) -> bool:
    """RQ exception handler: count the failed execution in the shared stats, then let RQ go on."""
    RedisStats(job.connection).record_failure()
    return True


class EsrganWorker(SimpleWorker):
    """RQ's in-process worker (no fork per job: the model stays resident and a CUDA context stays valid), plus a
    heartbeat thread while a job runs.

    A plain SimpleWorker cannot beat during a job, so RQ gives its jobs `job_timeout + 60` s before calling them
    abandoned. Here a thread refreshes the job's entry in the started registry every `heartbeat` seconds with a TTL of
    three beats; if the process dies (SIGKILL, out-of-memory killer) the entry expires within three beats and the next
    maintenance pass (another worker's, or the API's) retries the job once, then fails it with a reason.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        settings = get_settings()
        beat = settings.heartbeat
        kwargs.setdefault("job_monitoring_interval", beat)
        kwargs.setdefault("worker_ttl", 3 * beat + 15)  # an idle worker wakes (and maintains) every 3 beats
        kwargs.setdefault("maintenance_interval", 3 * beat)
        kwargs.setdefault("exception_handlers", [count_failure])
        super().__init__(*args, **kwargs)
        process_engines().preload()  # before registering: a live worker always has its weights loaded

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
