"""What the job routes answer with: a job with its URLs, a result file, the download name a result is offered under."""

import re
from pathlib import Path

from fastapi import Request
from fastapi.responses import FileResponse

from esrgan.models.images import EXTENSIONS, FORMATS
from esrgan.service.job import JobInfo, JobState


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


def result_response(info: JobInfo, path: Path) -> FileResponse:
    return FileResponse(path, media_type=FORMATS[info.format], filename=info.filename)
