"""GET /: the web UI (web/templates/index.html), filled in with this server's models, defaults and limits; GET /docs
and /redoc: the API docs (Swagger UI, ReDoc) with every asset served by this server, so they work offline.

The page, the docs and their static files are public; the API calls they make carry the key when the server has one.
"""

import re
from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from esrgan.models.images import FORMATS
from esrgan.service.deps import API_KEY_HEADER, CatalogDep, SettingsDep
from esrgan.service.middleware import docs_csp

# Swagger UI's and ReDoc's files as the fastapi-offline package ships them (MIT; Swagger UI is Apache-2.0, ReDoc MIT),
# served at /docs-assets by service.app.
DOCS_ASSETS = Path(str(files("fastapi_offline") / "static"))
INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)

router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
def index(request: Request, settings: SettingsDep, catalog: CatalogDep) -> Response:
    templates = request.app.state.templates
    if templates is None:  # installed without the web UI: the API docs are the front page
        return RedirectResponse(request.url_for("swagger_ui"))
    models = [
        {"name": m.name, "scale": m.scale, "alpha": m.alpha.model_dump() if m.alpha else None}
        for m in catalog.values()
        if m.available
    ]
    # The slider as the default model has it (the script sets it again whenever the model changes): a pair's labels
    # and starting alpha, or none for a single model.
    first = catalog.get(settings.default_model)
    alpha = first.alpha.model_dump() if first and first.alpha else None
    context = {
        "alpha": alpha,
        "default_alpha": alpha["default"] if alpha else None,
        "default_model": settings.default_model,
        "models": models,
        "formats": list(FORMATS),
        "archive_max_jobs": settings.archive_max_jobs,
        "accept": ["image/png", "image/jpeg", "image/webp", ".png", ".jpg", ".jpeg", ".webp"],
        "limits": {"max_upload_bytes": settings.max_upload_bytes, "max_pixels": settings.max_pixels},
        "api_key_required": settings.api_key is not None,
        "api_key_header": API_KEY_HEADER,
    }
    return templates.TemplateResponse(request, "index.html", context)


def docs_page(page: HTMLResponse) -> HTMLResponse:
    """A docs page under its own CSP: its inline start-up script allowed by hash, nothing from another origin."""
    page.headers["Content-Security-Policy"] = docs_csp(INLINE_SCRIPT.findall(page.body.decode()))
    return page


@router.get("/docs")
def swagger_ui(request: Request) -> HTMLResponse:
    root = request.scope.get("root_path", "")
    return docs_page(
        get_swagger_ui_html(
            openapi_url=f"{root}{request.app.openapi_url}",
            title=f"{request.app.title} - Swagger UI",
            swagger_js_url=f"{root}/docs-assets/swagger-ui-bundle.js",
            swagger_css_url=f"{root}/docs-assets/swagger-ui.css",
            swagger_favicon_url=f"{root}/docs-assets/favicon.png",
            swagger_ui_parameters={"validatorUrl": None},  # Swagger UI's default asks an online validator
        )
    )


@router.get("/redoc")
def redoc(request: Request) -> HTMLResponse:
    root = request.scope.get("root_path", "")
    return docs_page(
        get_redoc_html(
            openapi_url=f"{root}{request.app.openapi_url}",
            title=f"{request.app.title} - ReDoc",
            redoc_js_url=f"{root}/docs-assets/redoc.standalone.js",
            redoc_favicon_url=f"{root}/docs-assets/favicon.png",
            with_google_fonts=False,
        )
    )
