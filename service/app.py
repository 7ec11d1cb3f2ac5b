"""The FastAPI app: settings -> storage, job queue (Redis or in-process), model catalog, routers, web UI.

`create_app()` is the factory `esrgan serve` runs; tests call it with their own Settings. Everything it builds
hangs off `app.state` (jobs, storage, catalog, metrics, templates) and reaches routes through `service.deps`.
"""

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from prometheus_client import CollectorRegistry

from esrgan.service.deps import API_KEY_HEADER
from esrgan.service.job import JobQueue, QueueUnavailable
from esrgan.service.metrics import JobsCollector, RequestMetrics
from esrgan.service.middleware import ApiKeyGate, HeadAndOptions, SecurityHeaders, UploadLimit
from esrgan.service.pairs import load_catalog
from esrgan.service.routes import errors, health, jobs, models, pages, upscale
from esrgan.service.settings import MB, Settings, get_settings
from esrgan.service.storage import Storage, StorageError, open_storage
from esrgan.web import STATIC_DIR, TEMPLATES_DIR

log = logging.getLogger(__name__)

MULTIPART_SLACK = 64 * 1024  # multipart framing around the file; the file itself is checked exactly after reading


def job_queue(settings: Settings, storage: Storage) -> JobQueue:
    """RQ on Redis when ESRGAN_REDIS_URL is set, else worker threads in this process.

    Each adapter is imported only when chosen, since each brings what the other mode does without: the Redis one needs
    rq, the in-process one torch and the engine (an API in Redis mode builds no engine; its workers do).
    """
    if settings.redis_url:
        from esrgan.service.redis_queue import RedisJobs

        return RedisJobs(settings)
    from esrgan.service.local_queue import LocalJobs

    return LocalJobs(settings, storage)


def housekeeping(jobs: JobQueue, storage: Storage, settings: Settings) -> None:
    """Settle jobs whose worker died, then remove files of jobs that ended more than the result TTL ago."""
    jobs.reap()
    storage.expire(settings.result_ttl, keep=jobs.active_ids())


async def maintain(jobs: JobQueue, storage: Storage, settings: Settings) -> None:
    """Housekeeping, twice a heartbeat: a dead worker's registry entry expires after three beats, so its job is retried
    or failed within about three and a half (a GET of the job only reads; it never runs this)."""
    every = min(settings.heartbeat / 2, max(1.0, settings.result_ttl / 2))
    while True:
        await asyncio.sleep(every)
        try:
            await run_in_threadpool(housekeeping, jobs, storage, settings)
        except (QueueUnavailable, StorageError) as exc:
            log.warning("housekeeping skipped: %s", exc)
        except Exception:
            log.exception("housekeeping failed")


def create_app(settings: Settings | None = None) -> FastAPI:
    explicit = settings is not None
    settings = settings or get_settings()
    storage = open_storage(settings)
    queue = job_queue(settings, storage)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.catalog = await run_in_threadpool(load_catalog, settings)
        await run_in_threadpool(queue.start)  # in-process: loads the weights; a failure stops the server here
        task = asyncio.create_task(maintain(queue, storage, settings))
        try:
            yield
        finally:
            task.cancel()
            await run_in_threadpool(queue.close)

    app = FastAPI(
        title="ESRGAN upscaling service",
        summary="4x super-resolution with per-request network interpolation (ESRGAN, Wang et al. 2018).",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,  # /docs and /redoc are service.routes.pages, with their assets served from here (offline)
        redoc_url=None,
    )
    if explicit:
        app.dependency_overrides[get_settings] = lambda: settings
    app.state.settings, app.state.storage, app.state.jobs = settings, storage, queue

    app.state.metrics = CollectorRegistry()
    app.state.metrics.register(JobsCollector(queue.stats, queue.depth, queue.workers, errors=(QueueUnavailable,)))
    too_large = f"The upload is larger than this server accepts ({settings.max_upload_bytes / MB:g} MB)."
    app.add_middleware(UploadLimit, max_body_bytes=settings.max_upload_bytes + MULTIPART_SLACK, message=too_large)
    # Outside the size limit (401 before 413) and inside RequestMetrics and CORS: counted, readable by pages.
    app.add_middleware(ApiKeyGate, settings=settings, router=app.router)
    app.add_middleware(HeadAndOptions, router=app.router)
    app.add_middleware(RequestMetrics, registry=app.state.metrics)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=[API_KEY_HEADER, "Authorization"],
            expose_headers=["Content-Disposition", "Location"],
        )
    errors.install(app)
    app.add_middleware(SecurityHeaders)  # outermost: on every answer, the refusals above included

    for router in (upscale.router, jobs.router, models.router, health.router):
        app.include_router(router)

    # The web UI (web/): static files at /static, the page at /. The web room owns these files.
    app.state.templates = None
    if (TEMPLATES_DIR / "index.html").is_file():
        app.state.templates = Jinja2Templates(directory=TEMPLATES_DIR)
    if STATIC_DIR.is_dir():
        app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.mount("/docs-assets", StaticFiles(directory=pages.DOCS_ASSETS), name="docs-assets")
    app.include_router(pages.router)
    return app
