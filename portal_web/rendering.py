"""Jinja2 for portal pages (templates/portal, templates/dev, ...)."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web
from jinja2 import Environment, FileSystemLoader, select_autoescape

from portal_web.keys import JINJA

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


def make_jinja(auto_reload: bool = True) -> Environment:
    """``auto_reload=False`` in production: no stat() of every template file on each render."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        auto_reload=auto_reload,
        autoescape=select_autoescape(["html"]),
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.install_null_translations(newstyle=True)
    # Dates and money in the page's language and timezone (``locale``/``tz`` in the context).
    from portal_web.i18n import install_filters

    install_filters(env)
    return env


def render(request: web.Request, template: str, context: dict | None = None, *, status: int = 200) -> web.Response:
    html = request.app[JINJA].get_template(template).render(**(context or {}))
    return web.Response(text=html, status=status, content_type="text/html", charset="utf-8")
