"""GET /models: the pairs this server offers, their scale, architecture and provenance."""

from fastapi import APIRouter

from esrgan.service.deps import ApiKey, CatalogDep
from esrgan.service.pairs import ModelInfo
from esrgan.service.routes.errors import ERRORS

router = APIRouter(tags=["models"], dependencies=[ApiKey], responses={401: ERRORS[401]})


@router.get("/models", response_model=list[ModelInfo])
def list_models(catalog: CatalogDep) -> list[ModelInfo]:
    """The configured model pairs; the first is the default, unavailable ones say why."""
    return list(catalog.values())
