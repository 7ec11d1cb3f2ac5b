"""What the job routes answer with: a job with its URLs, a result, the download name a result is offered under."""

import re
from pathlib import Path

from fastapi import HTTPException, Request
from fastapi.responses import RedirectResponse, Response, StreamingResponse

from esrgan.models.images import EXTENSIONS, FORMATS
from esrgan.service.job import JobInfo, JobState, result_name
from esrgan.service.storage import Storage

EXPIRED = "The result has expired and was removed."


def download_name(client_name: str | None, fmt: str, scale: float, size: tuple[int, int] | None = None) -> str:
    """`photo_x4.png` (or `photo_x2.5.png`) from the client's `photo.jpg`, or `photo_1000x750.png` for a job that
    asked for a width or height (`size`, the output's): used in Content-Disposition only, never as a storage path."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(client_name or "").stem).strip("._-")[:64] or "image"
    tag = f"{size[0]}x{size[1]}" if size else f"x{scale:g}"
    return f"{stem}_{tag}{EXTENSIONS[fmt]}"


def with_urls(request: Request, info: JobInfo) -> JobInfo:
    urls = {"status_url": request.app.url_path_for("get_job", job_id=info.id)}
    if info.state == JobState.FINISHED:
        urls["result_url"] = request.app.url_path_for("get_result", job_id=info.id)
    return info.model_copy(update=urls)


def result_response(info: JobInfo, storage: Storage, *, redirect: bool) -> Response:
    """The finished job's image: with `redirect` and a store that has URLs of its own (S3 with presigning on), a 307
    to a short-lived one, so the bytes go from the store to the client; else streamed through the API in pieces,
    never read whole. Either way with its type and download name; 404 once it has expired. Blocking: call it from a
    worker thread (a sync route, or run_in_threadpool)."""
    name, media_type = result_name(info.format), FORMATS[info.format]
    if redirect and (url := storage.download_url(info.id, name, info.filename, media_type)):
        if not storage.exists(info.id, name):  # a presigned URL to nothing would answer the store's own XML 404
            raise HTTPException(404, EXPIRED)
        return RedirectResponse(url, status_code=307)
    try:
        blob = storage.open(info.id, name)
    except FileNotFoundError:
        raise HTTPException(404, EXPIRED) from None
    headers = {"Content-Disposition": f'attachment; filename="{info.filename}"', "Content-Length": str(blob.size)}
    return StreamingResponse(blob.chunks, media_type=media_type, headers=headers)
