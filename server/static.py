"""Static files: Balie's own CSS and ES modules, and the NL Design System component CSS.

    GET /static/...                 web/static (balie.css, js/*.js)
    GET /static/nlds/components.css the NL Design System (Utrecht) component library CSS

The component CSS comes from npm (`make install`); Balie's own theme (web/static/balie.css)
sets the design tokens, since a municipality brings its own colours, not Utrecht's.
"""

from __future__ import annotations

import logging
from pathlib import Path

from aiohttp import web

__all__ = ["NLDS_COMPONENTS", "STATIC", "add_routes"]

log = logging.getLogger(__name__)

PROJECT = Path(__file__).resolve().parent.parent
STATIC = PROJECT / "web" / "static"
NLDS_COMPONENTS = (
    PROJECT / "node_modules" / "@utrecht" / "component-library-css" / "dist" / "index.css"
)
# Scripts and styles change only with a release; an hour of caching spares phones on the
# way in while a redeploy is still picked up the same day.
CACHE_CONTROL = "public, max-age=3600"


def add_routes(router: web.UrlDispatcher) -> None:
    """Mount /static; warn (once, at start) when the NL Design System CSS is not installed."""
    if not NLDS_COMPONENTS.exists():
        log.warning("NL Design System CSS missing at %s: run `make install`", NLDS_COMPONENTS)
    router.add_get("/static/nlds/components.css", components_css)
    router.add_static("/static", STATIC, append_version=False)


async def components_css(request: web.Request) -> web.StreamResponse:
    """GET /static/nlds/components.css: the component library CSS (404 if not installed)."""
    if not NLDS_COMPONENTS.exists():
        raise web.HTTPNotFound(text="NL Design System CSS is not installed (make install)")
    return web.FileResponse(NLDS_COMPONENTS, headers={"Cache-Control": CACHE_CONTROL})
