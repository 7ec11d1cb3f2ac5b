"""GET /: the web UI (web/templates/index.html), filled in with this server's models, defaults and limits.

The page and its static files are public; the API calls it makes carry the key when the server has one.
"""

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from esrgan.models.images import FORMATS
from esrgan.service.deps import API_KEY_HEADER, CatalogDep, SettingsDep

router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
def index(request: Request, settings: SettingsDep, catalog: CatalogDep) -> Response:
    templates = request.app.state.templates
    if templates is None:  # installed without the web UI: the API docs are the front page
        return RedirectResponse(request.app.docs_url or "/openapi.json")
    models = [{"name": m.name, "scale": m.scale} for m in catalog.values() if m.available]
    context = {
        "default_alpha": settings.default_alpha,
        "default_model": settings.default_model,
        "models": models,
        "formats": list(FORMATS),
        "accept": ["image/png", "image/jpeg", "image/webp", ".png", ".jpg", ".jpeg", ".webp"],
        "limits": {"max_upload_bytes": settings.max_upload_bytes, "max_pixels": settings.max_pixels},
        "api_key_required": settings.api_key is not None,
        "api_key_header": API_KEY_HEADER,
    }
    return templates.TemplateResponse(request, "index.html", context)
