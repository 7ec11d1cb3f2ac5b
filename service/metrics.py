"""Prometheus metrics: HTTP requests counted in this process, job numbers read from wherever the workers keep them.

Workers run in other processes (or on other machines), so their job durations and failures cannot live in the API's
memory. They go into a Redis hash (`esrgan:stats`: `count`, `sum`, `failures`, one `le:<bound>` counter per
histogram bucket), or into a dict in in-process mode, and `/metrics` turns that into a histogram and counters on
every scrape, together with the queue depth and the number of live workers.
"""

import math
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from redis import Redis
from starlette.types import ASGIApp, Message, Receive, Scope, Send

BUCKETS = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, math.inf)
STATS_KEY = "esrgan:stats"


@dataclass
class JobStats:
    """Cumulative job numbers: finished-job durations (as histogram buckets) and failed executions."""

    count: int = 0
    total: float = 0.0
    failures: int = 0
    buckets: dict[float, int] = field(default_factory=lambda: dict.fromkeys(BUCKETS, 0))

    def add(self, seconds: float) -> None:
        self.count += 1
        self.total += seconds
        for bound in BUCKETS:
            if seconds <= bound:
                self.buckets[bound] += 1


class MemoryStats:
    """JobStats for in-process mode: the worker threads and `/metrics` share this object."""

    def __init__(self) -> None:
        self._stats = JobStats()
        self._lock = threading.Lock()

    def record_duration(self, seconds: float) -> None:
        with self._lock:
            self._stats.add(seconds)

    def record_failure(self) -> None:
        with self._lock:
            self._stats.failures += 1

    def snapshot(self) -> JobStats:
        with self._lock:
            return JobStats(self._stats.count, self._stats.total, self._stats.failures, dict(self._stats.buckets))


class RedisStats:
    """JobStats in the Redis hash `esrgan:stats`, added to atomically by every worker."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    def record_duration(self, seconds: float) -> None:
        with self.redis.pipeline() as pipe:
            pipe.hincrby(STATS_KEY, "count", 1)
            pipe.hincrbyfloat(STATS_KEY, "sum", seconds)
            for bound in BUCKETS:
                if seconds <= bound:
                    pipe.hincrby(STATS_KEY, f"le:{bound}", 1)
            pipe.execute()

    def record_failure(self) -> None:
        self.redis.hincrby(STATS_KEY, "failures", 1)

    def snapshot(self) -> JobStats:
        raw = {k.decode(): v.decode() for k, v in self.redis.hgetall(STATS_KEY).items()}
        return JobStats(
            count=int(raw.get("count", 0)),
            total=float(raw.get("sum", 0.0)),
            failures=int(raw.get("failures", 0)),
            buckets={bound: int(raw.get(f"le:{bound}", 0)) for bound in BUCKETS},
        )


class JobsCollector(Collector):
    """Reads the queue and the job stats at scrape time; a failing queue shows as `esrgan_queue_up 0`."""

    def __init__(
        self, stats: Callable[[], JobStats], depth: Callable[[], int], workers: Callable[[], int], errors: tuple
    ) -> None:
        self.stats, self.depth, self.workers, self.errors = stats, depth, workers, errors

    def collect(self) -> Iterator:
        try:
            stats, depth, workers = self.stats(), self.depth(), self.workers()
        except self.errors:
            yield GaugeMetricFamily("esrgan_queue_up", "1 if the job queue answered this scrape", value=0)
            return
        yield GaugeMetricFamily("esrgan_queue_up", "1 if the job queue answered this scrape", value=1)
        yield GaugeMetricFamily("esrgan_queue_depth", "Jobs waiting for a worker", value=depth)
        yield GaugeMetricFamily("esrgan_workers", "Workers alive (heartbeat seen)", value=workers)
        cumulative = [(str(b) if b != math.inf else "+Inf", stats.buckets[b]) for b in BUCKETS]
        hist = HistogramMetricFamily("esrgan_job_duration_seconds", "Run time of finished upscaling jobs")
        hist.add_metric([], cumulative, sum_value=stats.total)
        yield hist
        failures = CounterMetricFamily("esrgan_job_failures", "Failed job executions (errors and lost workers)")
        failures.add_metric([], stats.failures)
        yield failures


class RequestMetrics:
    """ASGI middleware counting requests by method, route template (not raw path: bounded labels) and status."""

    def __init__(self, app: ASGIApp, registry: CollectorRegistry) -> None:
        self.app = app
        self.requests = Counter(
            "esrgan_http_requests", "HTTP requests", ["method", "route", "status"], registry=registry
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            self.requests.labels(scope["method"], route, str(status)).inc()
