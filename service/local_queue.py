"""Jobs on worker threads inside the API process, for `esrgan serve` without Redis.

The same `JobQueue` as `service.redis_queue.RedisJobs`, backed by a dict of JobInfo and a FIFO of queued ids under
one condition variable. Each thread has its own `JobRunner` (a blend of weights is per engine), the one RQ workers use.
Jobs live as long as the process; `reap()` forgets ended jobs after the result TTL.
"""

import logging
import threading
import time
from collections import deque
from datetime import UTC, datetime

from esrgan.service.job import TERMINAL, JobInfo, JobState, Progress
from esrgan.service.metrics import JobStats, MemoryStats
from esrgan.service.runner import JobRunner, set_threads
from esrgan.service.settings import Settings
from esrgan.service.storage import Storage

log = logging.getLogger(__name__)


class LocalJobs:
    def __init__(self, settings: Settings, storage: Storage) -> None:
        self.settings = settings
        self.storage = storage
        self.stats_store = MemoryStats()
        self._jobs: dict[str, JobInfo] = {}
        self._cancelled: set[str] = set()
        self._pending: deque[str] = deque()
        self._cond = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._ready = 0
        self._load_errors: list[BaseException] = []
        self._stopping = False

    def start(self) -> None:
        """Start the worker threads and wait until each has loaded its models.

        Raises:
            RuntimeError: a thread could not load the weights (the message says why); the server must not start.
        """
        set_threads(self.settings)  # once for the process: the threads share torch's pool
        for i in range(self.settings.worker_concurrency):
            thread = threading.Thread(target=self._work, name=f"esrgan-worker-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)
        with self._cond:
            self._cond.wait_for(lambda: self._ready + len(self._load_errors) == len(self._threads))
        if self._load_errors:
            self.stop()
            raise RuntimeError(f"cannot load the model weights: {self._load_errors[0]}") from self._load_errors[0]

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout=5)

    def ping(self) -> None:
        """Always reachable: the queue is this process."""

    def submit(self, job_id: str, info: JobInfo) -> None:
        with self._cond:
            self._jobs[job_id] = info.model_copy(update={"created_at": datetime.now(UTC)})
            self._pending.append(job_id)
            self._cond.notify()

    def get(self, job_id: str) -> JobInfo | None:
        with self._cond:
            info = self._jobs.get(job_id)
            if info is None:
                return None
            position = self._pending.index(job_id) if info.state == JobState.QUEUED else None
            return info.model_copy(deep=True, update={"position": position})

    def cancel(self, job_id: str) -> None:
        with self._cond:
            info = self._jobs.get(job_id)
            if info is None or info.state in TERMINAL:
                return
            self._cancelled.add(job_id)
            if info.state == JobState.QUEUED:
                self._pending.remove(job_id)
                info.state, info.ended_at = JobState.CANCELLED, datetime.now(UTC)

    def remove(self, job_id: str) -> None:
        with self._cond:
            self._jobs.pop(job_id, None)
            self._cancelled.discard(job_id)

    def depth(self) -> int:
        with self._cond:
            return len(self._pending)

    def workers(self) -> int:
        with self._cond:
            return self._ready

    def stats(self) -> JobStats:
        return self.stats_store.snapshot()

    def active_ids(self) -> set[str]:
        with self._cond:
            return {job_id for job_id, info in self._jobs.items() if info.state not in TERMINAL}

    def reap(self) -> None:
        """Forget jobs that ended more than the result TTL ago (their files expire on the same clock)."""
        cutoff = time.time() - self.settings.result_ttl
        with self._cond:
            for job_id in [j for j, info in self._jobs.items() if info.ended_at and info.ended_at.timestamp() < cutoff]:
                self.remove(job_id)

    def close(self) -> None:
        self.stop()

    def _work(self) -> None:
        try:
            runner = JobRunner.load(self.settings, self.storage)
        except Exception as exc:
            log.exception("worker thread could not load the models")
            with self._cond:
                self._load_errors.append(exc)
                self._cond.notify_all()
            return
        with self._cond:
            self._ready += 1
            self._cond.notify_all()
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._pending or self._stopping)
                if self._stopping:
                    return
                job_id = self._pending.popleft()
                info = self._jobs[job_id]
                info.state, info.started_at, info.attempts = JobState.STARTED, datetime.now(UTC), info.attempts + 1
            self._run(job_id, info, runner)

    def _run(self, job_id: str, info: JobInfo, runner: JobRunner) -> None:
        def progress(done: int, total: int) -> None:
            with self._cond:
                info.progress = Progress(done=done, total=total)

        def cancel() -> bool:
            with self._cond:
                return job_id in self._cancelled

        started = time.monotonic()
        try:
            stored = runner.run(job_id, info.params, progress=progress, cancel=cancel)
        except Exception as exc:  # anything a job raises ends that job, never the worker thread
            log.exception("job %s failed", job_id)
            self.stats_store.record_failure()
            state, error = JobState.FAILED, str(exc) or type(exc).__name__
        else:
            if stored:
                self.stats_store.record_duration(time.monotonic() - started)
            state, error = (JobState.FINISHED if stored else JobState.CANCELLED), None
        with self._cond:
            if state == JobState.FINISHED and job_id in self._cancelled:  # cancelled after the runner's last check
                state = JobState.CANCELLED
            info.state, info.error, info.ended_at = state, error, datetime.now(UTC)
