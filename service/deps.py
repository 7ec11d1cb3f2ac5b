"""FastAPI dependencies: each a small function plus an `Annotated` alias, so a route's signature lists what it uses.

Routes see the job queue as the `JobQueue` protocol only: which adapter serves it is `service.app`'s choice.
"""

import secrets
from typing import Annotated

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from esrgan.service.job import JobQueue
from esrgan.service.pairs import ModelInfo
from esrgan.service.settings import Settings, get_settings
from esrgan.service.storage import Storage

SettingsDep = Annotated[Settings, Depends(get_settings)]


def get_jobs(request: Request) -> JobQueue:
    return request.app.state.jobs


def get_storage(request: Request) -> Storage:
    return request.app.state.storage


def get_catalog(request: Request) -> dict[str, ModelInfo]:
    return request.app.state.catalog


JobsDep = Annotated[JobQueue, Depends(get_jobs)]
StorageDep = Annotated[Storage, Depends(get_storage)]
CatalogDep = Annotated[dict[str, ModelInfo], Depends(get_catalog)]


API_KEY_HEADER = "X-API-Key"


def api_key_refusal(settings: Settings, x_api_key: str | None, authorization: str | None) -> HTTPException | None:
    """The 401 to answer, or None when the server has no key or the request carries it (compared in constant time)."""
    if settings.api_key is None:
        return None
    given = x_api_key
    if given is None and authorization and authorization.lower().startswith("bearer "):
        given = authorization[7:].strip()
    expected = settings.api_key.get_secret_value()
    if given and secrets.compare_digest(given.encode(), expected.encode()):
        return None
    return HTTPException(
        status_code=401,
        detail=f"This server needs an API key: send it as '{API_KEY_HEADER}: <key>' or 'Authorization: Bearer <key>'.",
        headers={"WWW-Authenticate": "Bearer"},
    )


# The two ways to send the key, declared as OpenAPI security schemes (either one will do), so generated clients and
# the docs page's "Authorize" button know them. They only read the headers: `require_api_key` decides.
KEY_SCHEME = APIKeyHeader(name=API_KEY_HEADER, auto_error=False, description="The server's API key, if it has one")
BEARER_SCHEME = HTTPBearer(auto_error=False, description="The same key as a bearer token")


def require_api_key(
    settings: SettingsDep,
    x_api_key: Annotated[str | None, Security(KEY_SCHEME)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER_SCHEME)],
) -> None:
    """With `ESRGAN_API_KEY` set, refuse calls without it (401). Uploads were already refused by `ApiKeyGate`."""
    authorization = f"Bearer {bearer.credentials}" if bearer else None
    if refusal := api_key_refusal(settings, x_api_key, authorization):
        raise refusal


ApiKey = Depends(require_api_key)
