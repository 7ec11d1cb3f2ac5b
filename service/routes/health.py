"""GET /healthz (the process answers), GET /readyz (queue reachable, weights loaded, a worker alive), GET /metrics."""

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from esrgan.service.deps import ApiKey, CatalogDep, JobsDep, SettingsDep
from esrgan.service.routes.errors import ERRORS

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is alive (no dependency is checked)."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: ERRORS[503]})
def readyz(settings: SettingsDep, jobs: JobsDep, catalog: CatalogDep) -> JSONResponse:
    """Ready to take jobs: the queue answers, the default pair's weights load, and at least one worker is alive."""
    jobs.ping()
    workers = jobs.workers()
    default = catalog[settings.default_model]
    body = {
        "queue": "redis" if settings.redis_url else "in-process",
        "workers": workers,
        "queue_depth": jobs.depth(),
        "weights": default.available,
    }
    if not default.available:
        return JSONResponse({"detail": f"The default model cannot be loaded: {default.error}", **body}, 503)
    if workers == 0:
        detail = "No worker is running; start one with `esrgan worker` (same ESRGAN_REDIS_URL)."
        return JSONResponse({"detail": detail, **body}, 503)
    return JSONResponse({"status": "ready", **body})


@router.get("/metrics", dependencies=[ApiKey], response_class=Response)
def metrics(request: Request) -> Response:
    """Prometheus text format: requests, queue depth, workers, job durations, failed executions."""
    return Response(generate_latest(request.app.state.metrics), media_type=CONTENT_TYPE_LATEST)
