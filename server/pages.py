"""Server-rendered pages (Jinja2, no inline script): one environment for the whole app."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web

__all__ = ["TEMPLATES", "make_environment", "page"]

TEMPLATES = Path(__file__).resolve().parent.parent / "web" / "templates"


def make_environment(directory: Path = TEMPLATES) -> jinja2.Environment:
    """Autoescaping, and an error for any variable a template uses but is not given."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(directory),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )


def page(
    environment: jinja2.Environment, template: str, *, status: int = 200, **context: Any
) -> web.Response:
    """Render `template` as an HTML response."""
    html = environment.get_template(template).render(**context)
    return web.Response(text=html, status=status, content_type="text/html", charset="utf-8")
