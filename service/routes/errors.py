"""Every error is JSON `{"detail": "<a sentence a person can act on>"}` (422 adds the raw `errors` list)."""

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from esrgan.service.job import QueueUnavailable
from esrgan.service.storage import StorageError


class ErrorBody(BaseModel):
    detail: str


ERRORS: dict[int | str, dict] = {
    401: {"model": ErrorBody, "description": "API key missing or wrong (only when the server has one)"},
    404: {"model": ErrorBody, "description": "No such job (never existed, removed, or expired)"},
    413: {"model": ErrorBody, "description": "Upload larger than the size limit, or an image over the pixel limit"},
    415: {"model": ErrorBody, "description": "Not an image this server can read"},
    422: {"model": ErrorBody, "description": "Bad parameter (alpha outside [0, 1], unknown model...)"},
    503: {"model": ErrorBody, "description": "The job queue or the storage is unavailable"},
}
# Routes that take a multipart body: one that cannot be parsed is refused before the route runs.
MULTIPART_ERRORS: dict[int | str, dict] = {
    400: {"model": ErrorBody, "description": "The multipart body is broken (no boundary, truncated, not multipart)"},
}


def quoted(value: object, limit: int = 40) -> str:
    """`value` as an answer may quote it: its repr, cut to `limit` characters (a 30 KB path is not echoed back)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe_validation(errors: list[dict]) -> str:
    parts = []
    for error in errors:
        where = ".".join(str(p) for p in error.get("loc", ()) if p not in ("query", "body"))
        given = f" (got {quoted(error['input'])})" if "input" in error and not isinstance(error["input"], dict) else ""
        parts.append(f"{where}: {error.get('msg', 'invalid')}{given}" if where else error.get("msg", "invalid"))
    return "Invalid request: " + "; ".join(parts) + "."


def install(app: FastAPI) -> None:
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = jsonable_encoder(exc.errors(), exclude={"ctx", "url", "input"})  # the detail quotes the input, cut
        return JSONResponse({"detail": describe_validation(exc.errors()), "errors": errors}, status_code=422)

    async def queue_down(request: Request, exc: QueueUnavailable) -> JSONResponse:
        return JSONResponse({"detail": f"The job queue is unavailable, try again later ({exc})."}, status_code=503)

    async def storage_down(request: Request, exc: StorageError) -> JSONResponse:
        return JSONResponse({"detail": f"The storage is unavailable, try again later ({exc})."}, status_code=503)

    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(QueueUnavailable, queue_down)
    app.add_exception_handler(StorageError, storage_down)
