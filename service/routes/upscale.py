"""POST /upscale: validate the upload and its parameters, store it, queue a job; with `wait=true`, answer the image."""

import asyncio
import time
from typing import Annotated, Literal
from uuid import uuid4

from fastapi import APIRouter, File, HTTPException, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from esrgan.models.images import FORMATS, encoder_limit
from esrgan.models.resize import ScaleError, output_size
from esrgan.service.deps import ApiKey, CatalogDep, JobsDep, SettingsDep, StorageDep
from esrgan.service.job import INPUT, TERMINAL, JobInfo, JobState, QueueUnavailable, Size
from esrgan.service.routes.errors import ERRORS, MULTIPART_ERRORS, quoted
from esrgan.service.routes.responses import download_name, result_response, with_urls
from esrgan.service.settings import MB
from esrgan.service.uploads import upload_size

router = APIRouter(tags=["jobs"], dependencies=[ApiKey])

Format = Literal["png", "webp", "jpeg"]


@router.post(
    "/upscale",
    status_code=202,
    response_model=JobInfo,
    responses={
        200: {"description": "With `wait=true`: the upscaled image", "content": {t: {} for t in FORMATS.values()}},
        **ERRORS,
        **MULTIPART_ERRORS,
    },
)
async def upscale(
    request: Request,
    file: Annotated[UploadFile, File(description="The image to upscale: PNG, JPEG or WebP.")],
    settings: SettingsDep,
    jobs: JobsDep,
    storage: StorageDep,
    catalog: CatalogDep,
    alpha: Annotated[
        float | None,
        Query(
            ge=0.0,
            le=1.0,
            allow_inf_nan=False,
            description="A pair's blend, 0 to 1 (GET /models says what it means); default: the pair's. "
            "Refused for a single model.",
        ),
    ] = None,
    model: Annotated[str | None, Query(description="A model from GET /models; default: the server's first")] = None,
    fmt: Annotated[Format, Query(alias="format", description="Encoding of the result")] = "png",
    tile: Annotated[int | None, Query(ge=16, le=4096, description="Tile size in input pixels")] = None,
    scale: Annotated[
        float | None,
        Query(allow_inf_nan=False, description="Output scale in (1, the model's scale]; default: the model's"),
    ] = None,
    width: Annotated[int | None, Query(ge=1, description="Output width; the height keeps the aspect ratio")] = None,
    height: Annotated[int | None, Query(ge=1, description="Output height; the width keeps the aspect ratio")] = None,
    wait: Annotated[bool, Query(description="Answer with the image itself once the job finishes")] = False,
) -> Response:
    """Queue an upscaling job (202 with its id and URLs), or with `wait=true` wait for it and answer the image."""
    model = model or settings.default_model
    pair = catalog.get(model)
    if pair is None:
        raise HTTPException(422, f"Unknown model {quoted(model)}; this server offers: {', '.join(catalog)}.")
    if not pair.available or pair.scale is None:
        raise HTTPException(422, f"Model {model!r} is not available on this server: {pair.error}")
    if alpha is not None and pair.alpha is None:
        raise HTTPException(
            422, f"Model {model!r} is a single network, not a PSNR/GAN pair: it takes no alpha. Leave alpha out."
        )
    data = await file.read()
    if len(data) > settings.max_upload_bytes:
        limit = settings.max_upload_bytes / MB
        raise HTTPException(413, f"The upload is larger than this server accepts ({limit:g} MB).")
    size = await run_in_threadpool(upload_size, data, settings.max_pixels)
    try:
        out_w, out_h = output_size(size.width, size.height, pair.scale, scale, width, height)
    except ScaleError as exc:
        raise HTTPException(422, f"Model {model!r}: {exc}.") from exc
    if reason := encoder_limit(fmt, out_w, out_h):  # known now, not after the work
        raise HTTPException(422, f"Cannot encode the result: {reason}.")
    job_id = uuid4().hex
    info = JobInfo(
        id=job_id,
        state=JobState.QUEUED,
        model=model,
        alpha=pair.alpha.default if alpha is None and pair.alpha else alpha,
        format=fmt,
        tile=tile,
        scale=scale,
        width=width,
        height=height,
        filename=download_name(file.filename, fmt, scale or pair.scale, (out_w, out_h) if width or height else None),
        input=size,
        output=Size(width=out_w, height=out_h),
    )
    await run_in_threadpool(storage.put, job_id, INPUT, data)
    try:
        await run_in_threadpool(jobs.submit, job_id, info)
    except QueueUnavailable:
        await run_in_threadpool(storage.remove, job_id)
        raise
    if wait:
        return await wait_for_result(request, jobs, storage, job_id, settings.wait_timeout)
    status_url = request.app.url_path_for("get_job", job_id=job_id)
    body = with_urls(request, info).model_dump(mode="json")
    return JSONResponse(body, status_code=202, headers={"Location": status_url})


async def wait_for_result(
    request: Request, jobs: JobsDep, storage: StorageDep, job_id: str, timeout: float
) -> Response:
    """Poll the job until it ends: the image (200), the failure (500, or 409 if cancelled), or 202 after `timeout`.

    The pause between polls is 10 ms plus a tenth of the time waited so far (at most 0.5 s), so an answer comes at
    most about 10% after the job ends: a preview that computes in 0.2 s is not held back to the next step of a
    doubling schedule (50 ms growing by 1.5x lost up to a third of a preview's time), and a long job costs the queue a
    few polls a second.
    """
    started = time.monotonic()
    deadline = started + timeout
    while True:
        info = await run_in_threadpool(jobs.get, job_id)
        if info is None:
            raise HTTPException(404, "The job disappeared while waiting for it (removed by another request).")
        now = time.monotonic()
        if info.state in TERMINAL or now >= deadline:
            break
        await asyncio.sleep(min(0.01 + 0.1 * (now - started), 0.5))
    if info.state == JobState.FINISHED:
        # Streamed, not redirected: the client asked for the image in this answer, and a browser's script could not
        # follow a POST's redirect to the store without CORS rules on the bucket.
        return await run_in_threadpool(result_response, info, storage, redirect=False)
    if info.state == JobState.FAILED:
        raise HTTPException(500, f"The job failed: {info.error}")
    if info.state == JobState.CANCELLED:
        raise HTTPException(409, "The job was cancelled before it finished.")
    body = with_urls(request, info).model_dump(mode="json")
    body["detail"] = f"Still {info.state.value} after {timeout:g} s; poll the status URL for the result."
    return JSONResponse(body, status_code=202, headers={"Location": body["status_url"]})
