"""The browser UI: one Jinja2 page plus static ES modules and CSS, served by the FastAPI app (no build step)."""

from pathlib import Path

WEB_DIR = Path(__file__).resolve().parent
TEMPLATES_DIR = WEB_DIR / "templates"
STATIC_DIR = WEB_DIR / "static"
