"""GET /healthz (the process answers), GET /readyz (queue and storage usable, weights loaded, a worker alive),
GET /metrics."""

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from esrgan.service.deps import ApiKey, CatalogDep, JobsDep, SettingsDep, StorageDep
from esrgan.service.routes.errors import ERRORS
from esrgan.service.settings import Settings
from esrgan.service.storage import StorageError

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is alive (no dependency is checked)."""
    return {"status": "ok"}


def network_precision(settings: Settings) -> str:
    """What the network computes in. In-process workers run on this machine, so `auto` is resolved here (fp16 on CUDA,
    bf16 on a CPU with native bf16, else fp32); Redis workers resolve it on their own machines, so the setting itself
    is shown, and each worker logs what it runs when it loads its models."""
    if settings.redis_url:
        return settings.precision
    from esrgan.models.engine import EngineSettings, resolve_device, resolve_precision  # torch: loaded by the workers

    return resolve_precision(EngineSettings(precision=settings.precision), resolve_device(settings.device))


@router.get("/readyz", responses={503: ERRORS[503]})
def readyz(settings: SettingsDep, jobs: JobsDep, storage: StorageDep, catalog: CatalogDep) -> JSONResponse:
    """Ready to take jobs: the queue answers, the storage takes a write (and has room), the default pair's weights
    load, and at least one worker is alive."""
    jobs.ping()
    workers = jobs.workers()
    default = catalog[settings.default_model]
    body = {
        "queue": "redis" if settings.redis_url else "in-process",
        "storage": storage.kind,
        "workers": workers,
        "queue_depth": jobs.depth(),
        "weights": default.available,
        "precision": network_precision(settings),
    }
    try:
        storage.check()
    except StorageError as exc:
        return JSONResponse({"detail": f"The storage cannot take new jobs: {exc}.", **body}, 503)
    if not default.available:
        return JSONResponse({"detail": f"The default model cannot be loaded: {default.error}", **body}, 503)
    if workers == 0:
        detail = "No worker is running; start one with `esrgan worker` (same ESRGAN_REDIS_URL)."
        return JSONResponse({"detail": detail, **body}, 503)
    return JSONResponse({"status": "ready", **body})


@router.get("/metrics", dependencies=[ApiKey], response_class=Response, responses={401: ERRORS[401]})
def metrics(request: Request) -> Response:
    """Prometheus text format: requests, queue depth, workers, job durations, failed executions."""
    return Response(generate_latest(request.app.state.metrics), media_type=CONTENT_TYPE_LATEST)
