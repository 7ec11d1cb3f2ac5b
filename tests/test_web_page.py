"""The page as the server renders it: template name and context (Starlette's TestClient records both), the config
the scripts read, and every static file the page and its modules ask for."""

# ruff: noqa: RUF001 (the page shows the multiplication sign and alpha; the tests read what it shows)

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from web_helpers import tiny_pair

from esrgan.service.app import create_app
from esrgan.service.settings import Settings

KEY = "page-test-key-0123456789"


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return tiny_pair(tmp_path_factory.mktemp("pair"))


@contextmanager
def app_client(tmp_path: Path, pair: tuple[Path, Path], **settings) -> Iterator[TestClient]:
    """The app in this process, unlike the service tests' `client` (a real server): Starlette's TestClient records
    the template and the context each page was rendered with, which these tests read."""
    psnr, gan = pair
    weights = settings.pop("weights", [f"tiny={psnr}+{gan}"])
    app = create_app(Settings(weights=weights, storage_dir=tmp_path / "jobs", device="cpu", **settings))
    with TestClient(app) as c:
        yield c


def config_of(html: str) -> dict:
    return json.loads(re.search(r'<script id="config" type="application/json">(.*?)</script>', html, re.S).group(1))


def test_context_and_config(tmp_path: Path, pair: tuple[Path, Path]) -> None:
    psnr, gan = pair
    weights = [f"tiny={psnr}+{gan}", f"other={psnr}+{gan}"]
    with app_client(
        tmp_path, pair, weights=weights, default_alpha=0.35, max_upload_bytes=3_000_000, max_pixels=250_000
    ) as c:
        response = c.get("/")
    assert response.status_code == 200
    assert response.template.name == "index.html"
    context = response.context
    assert context["default_alpha"] == 0.35
    assert context["default_model"] == "tiny"
    detail = {"default": 0.35, "name": "detail", "low": "faithful", "high": "detailed"}  # the server's alpha, own pairs
    assert context["models"] == [
        {"name": "tiny", "scale": 4, "alpha": detail},
        {"name": "other", "scale": 4, "alpha": detail},
    ]
    assert context["formats"] == ["png", "webp", "jpeg"]
    assert context["limits"] == {"max_upload_bytes": 3_000_000, "max_pixels": 250_000}
    assert context["api_key_required"] is False

    html = response.text
    config = config_of(html)
    assert {k: config[k] for k in ("default_alpha", "models", "limits", "api_key_required")} == {
        k: context[k] for k in ("default_alpha", "models", "limits", "api_key_required")
    }
    assert 'id="alpha" min="0" max="1" step="0.05" value="0.35"' in html
    assert '<output id="alpha-value" for="alpha">0.35</output>' in html
    # Two pairs: the model choice is shown, the default selected.
    assert '<div class="field" id="model-field">' in html
    assert re.search(r'<option value="tiny" data-scale="4" selected>tiny \(×4\)</option>', html)
    assert "up to 2.9 MB · up to 0.25 megapixels" in html
    assert 'id="key-button" hidden' in html


def test_one_model_hides_the_choice_and_a_key_shows_the_key_button(tmp_path: Path, pair: tuple[Path, Path]) -> None:
    with app_client(tmp_path, pair, api_key=KEY) as c:
        response = c.get("/")  # the page itself is public; the API calls it makes carry the key
        assert c.get("/models").status_code == 401
    assert response.status_code == 200
    assert response.context["api_key_required"] is True
    assert response.context["api_key_header"] == "X-API-Key"
    assert config_of(response.text)["api_key_required"] is True
    assert '<div class="field" id="model-field" hidden>' in response.text
    assert 'id="key-button">' in response.text
    assert KEY not in response.text


def test_every_asset_the_page_loads_is_served(tmp_path: Path, pair: tuple[Path, Path]) -> None:
    with app_client(tmp_path, pair) as c:
        html = c.get("/").text
        assets = set(re.findall(r'(?:src|href)="(static/[^"]+)"', html))
        assert {"static/app.js", "static/style.css", "static/favicon.svg"} <= assets
        modules = set()
        for path in assets:
            response = c.get(f"/{path}")
            assert response.status_code == 200, path
            if path.endswith(".js"):
                assert response.headers["content-type"].startswith(("text/javascript", "application/javascript"))
                modules |= {f"static/{m}" for m in re.findall(r'from "\./([\w.]+\.js)"', response.text)}
        assert modules == {"static/api.js", "static/batch.js", "static/compare.js"}
        for path in modules:
            assert c.get(f"/{path}").status_code == 200, path
    # Nothing from elsewhere: no CDN, no absolute URLs in the page or its code.
    for text in [html] + [p.read_text() for p in (Path(__file__).parents[1] / "web" / "static").glob("*.[jc]s*")]:
        assert not re.search(r"(src|href|from|url\()\s*=?\s*[\"']?(https?:)?//", text)
