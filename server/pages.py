"""Server-rendered pages (Jinja2, no inline script): one environment for the whole app.

Every page is Dutch first, with English on request (`?lang=en`, remembered in a cookie); the
texts live in `server.texts`. A page's scripts are ES modules under /static.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web

from server.texts import Language, texts

__all__ = [
    "LANGUAGE_COOKIE",
    "PAGES",
    "TEMPLATES",
    "language",
    "make_environment",
    "message_page",
    "page",
]

TEMPLATES = Path(__file__).resolve().parent.parent / "web" / "templates"
PAGES = web.AppKey("pages", jinja2.Environment)
LANGUAGE_COOKIE = "balie-lang"


def make_environment(directory: Path = TEMPLATES) -> jinja2.Environment:
    """Autoescaping, and an error for any variable a template uses but is not given."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(directory),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )


def language(request: web.Request) -> Language:
    """The reader's language: `?lang=` if given, else the remembered choice, else Dutch."""
    asked = request.query.get("lang") or request.cookies.get(LANGUAGE_COOKIE)
    return "en" if asked == "en" else "nl"


def page(request: web.Request, template: str, *, status: int = 200, **context: Any) -> web.Response:
    """Render `template` as an HTML response in the reader's language.

    The template gets `lang`, `t` (the texts in that language) and `other_lang`, besides
    `context`. A `?lang=` choice is remembered for the rest of the visit.
    """
    lang = language(request)
    html = (
        request.app[PAGES]
        .get_template(template)
        .render(
            lang=lang,
            other_lang="nl" if lang == "en" else "en",
            t=texts(lang),
            here=request.path,
            # The same page in the other language, keeping its query (a report's period).
            switch_url=str(request.rel_url.update_query(lang="nl" if lang == "en" else "en")),
            **context,
        )
    )
    response = web.Response(text=html, status=status, content_type="text/html", charset="utf-8")
    if "lang" in request.query:
        response.set_cookie(LANGUAGE_COOKIE, lang, path="/", secure=True, samesite="Lax")
    return response


def message_page(
    request: web.Request, status: int, title: str, message: str, english: str = ""
) -> web.Response:
    """A page that says one thing (a refusal, or where someone stands), in Dutch and English."""
    return page(
        request,
        "message.html",
        status=status,
        title=title,
        message=message,
        english=english,
    )
