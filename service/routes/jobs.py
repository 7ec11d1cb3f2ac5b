"""GET /jobs/{id} (status and progress), GET /jobs/{id}/result (the image), DELETE /jobs/{id} (cancel or remove),
GET /jobs/archive (one zip of several finished results)."""

from datetime import UTC, datetime
from functools import partial
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from esrgan.models.images import FORMATS
from esrgan.service.archive import Member, unique_names, zip_stream
from esrgan.service.deps import ApiKey, JobsDep, SettingsDep, StorageDep
from esrgan.service.job import TERMINAL, JobInfo, JobState, result_name
from esrgan.service.routes.errors import ERRORS, ErrorBody, quoted
from esrgan.service.routes.responses import result_response, with_urls
from esrgan.service.storage import JOB_ID

router = APIRouter(prefix="/jobs", tags=["jobs"], dependencies=[ApiKey])


def find(jobs: JobsDep, job_id: str) -> JobInfo:
    info = jobs.get(job_id) if JOB_ID.fullmatch(job_id) else None
    if info is None:
        raise HTTPException(404, f"No job {quoted(job_id)}: it never existed, was removed, or expired.")
    return info


@router.get(
    "/archive",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"application/zip": {}}, "description": "A zip of the results, under their download names"},
        409: {"model": ErrorBody, "description": "One of the jobs has not finished (or failed, or was cancelled)"},
        **ERRORS,
    },
)
def get_archive(
    jobs: JobsDep,
    storage: StorageDep,
    settings: SettingsDep,
    ids: Annotated[str, Query(description="Ids of finished jobs, comma-separated (ESRGAN_ARCHIVE_MAX_JOBS at most)")],
) -> StreamingResponse:
    """One zip of the results of finished jobs, streamed while it is written (declared before `/{job_id}`, which
    would take "archive" for an id). Every id is checked before the first byte goes out, so a refusal is a plain
    4xx: 422 for no ids, too many or a malformed one, 404 for an unknown job or an expired result, 409 for a job
    that has not finished."""
    wanted = list(dict.fromkeys(part.strip() for part in ids.split(",") if part.strip()))
    if not wanted:
        raise HTTPException(422, "Give the ids of finished jobs in `ids`, separated by commas.")
    if len(wanted) > settings.archive_max_jobs:
        limit = settings.archive_max_jobs
        raise HTTPException(422, f"An archive holds at most {limit} jobs on this server; {len(wanted)} were asked for.")
    for job_id in wanted:
        if not JOB_ID.fullmatch(job_id):
            raise HTTPException(422, f"{job_id[:40]!r} is not a job id (ids are 32 lower-case hexadecimal digits).")
    infos = [find(jobs, job_id) for job_id in wanted]
    for info in infos:
        if info.state != JobState.FINISHED:
            raise HTTPException(409, f"Job {info.id} is {info.state.value}; an archive takes finished jobs only.")
        if not storage.exists(info.id, result_name(info.format)):
            raise HTTPException(404, f"The result of job {info.id} has expired and was removed.")
    members = [
        Member(name, info.ended_at or datetime.now(UTC), partial(storage.open, info.id, result_name(info.format)))
        for name, info in zip(unique_names(info.filename for info in infos), infos, strict=True)
    ]
    headers = {"Content-Disposition": 'attachment; filename="esrgan-results.zip"'}
    return StreamingResponse(zip_stream(members), media_type="application/zip", headers=headers)


@router.get("/{job_id}", response_model=JobInfo, responses=ERRORS)
def get_job(request: Request, job_id: str, jobs: JobsDep) -> JobInfo:
    """State (queued, started, finished, failed, cancelled), tiles done/total, queue position, sizes, timings."""
    return with_urls(request, find(jobs, job_id))


@router.get(
    "/{job_id}/result",
    response_class=StreamingResponse,
    responses={
        200: {"content": {t: {} for t in FORMATS.values()}, "description": "The image, streamed by the API"},
        307: {"description": "Object store with presigning: the image is at the short-lived URL in `Location`"},
        409: {"model": ErrorBody, "description": "The job has not finished (or failed, or was cancelled)"},
        **ERRORS,
    },
)
def get_result(
    job_id: str,
    jobs: JobsDep,
    storage: StorageDep,
    redirect: Annotated[
        bool,
        Query(
            description="false: the API sends the image itself even where the store could (a script in a web page "
            "would need CORS rules on the bucket to follow the redirect)"
        ),
    ] = True,
) -> Response:
    """The upscaled image, with its content type and a download file name, or a redirect to it in the object store."""
    info = find(jobs, job_id)
    if info.state != JobState.FINISHED:
        raise HTTPException(409, f"The job is {info.state.value}; its result exists once it is finished.")
    return result_response(info, storage, redirect=redirect)


@router.delete("/{job_id}", status_code=204, responses={202: {"model": JobInfo}, **ERRORS})
def delete_job(request: Request, job_id: str, jobs: JobsDep, storage: StorageDep) -> Response:
    """Cancel a queued or running job (202; a running one stops at its next tile), or remove an ended one (204)."""
    info = find(jobs, job_id)
    if info.state in TERMINAL:
        jobs.remove(job_id)
        storage.remove(job_id)
        return Response(status_code=204)
    jobs.cancel(job_id)
    info = jobs.get(job_id) or info
    return JSONResponse(with_urls(request, info).model_dump(mode="json"), status_code=202)
