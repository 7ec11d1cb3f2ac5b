"""GET /models: the models this server offers, their scale, architecture, provenance and alpha."""

from fastapi import APIRouter

from esrgan.service.deps import ApiKey, CatalogDep
from esrgan.service.pairs import ModelInfo
from esrgan.service.routes.errors import ERRORS

router = APIRouter(tags=["models"], dependencies=[ApiKey], responses={401: ERRORS[401]})


@router.get("/models", response_model=list[ModelInfo])
def list_models(catalog: CatalogDep) -> list[ModelInfo]:
    """The configured models; the first is the default, unavailable ones say why. A pair's `alpha` says what its
    slider means and where it starts; a single model's is null (it takes no alpha)."""
    return list(catalog.values())
