"""GET /jobs/{id} (status and progress), GET /jobs/{id}/result (the image), DELETE /jobs/{id} (cancel or remove)."""

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from esrgan.models.images import FORMATS
from esrgan.service.deps import ApiKey, JobsDep, StorageDep
from esrgan.service.job import TERMINAL, JobInfo, JobState
from esrgan.service.routes.errors import ERRORS, ErrorBody
from esrgan.service.routes.responses import result_response, with_urls
from esrgan.service.storage import JOB_ID

router = APIRouter(prefix="/jobs", tags=["jobs"], dependencies=[ApiKey])


def find(jobs: JobsDep, job_id: str) -> JobInfo:
    info = jobs.get(job_id) if JOB_ID.fullmatch(job_id) else None
    if info is None:
        raise HTTPException(404, f"No job {job_id!r}: it never existed, was removed, or expired.")
    return info


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
