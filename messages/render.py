"""Render a message from ``templates/messages/<kind>/<locale>/``.

Email: ``subject.txt``, ``body.txt`` (the plain-text part, always sent) and
``body.html`` (autoescaped, branded through ``_base.html``, CSS inlined with
css_inline so mail clients that drop ``<style>`` still show it). SMS: ``sms.txt``,
whitespace collapsed, transliterated to GSM-7 when that is what keeps it within
``SMS_MAX_SEGMENTS``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import css_inline
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from messages import segments
from portal import phones
from portal.settings import ROOT

TEMPLATE_DIR = ROOT / "templates" / "messages"
LOCALES = ("en", "fr")
SMS_MAX_SEGMENTS = 2


@dataclass(frozen=True)
class Rendered:
    subject: str | None = None
    text: str | None = None
    html: str | None = None
    sms: str | None = None

    @property
    def sms_segments(self) -> int:
        return segments.segments(self.sms or "")


@lru_cache(maxsize=1)
def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATE_DIR)),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False, default=False),
        undefined=StrictUndefined,  # a missing context value is a bug, not an empty string
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )
    env.filters["phone"] = phones.display
    return env


def template_locale(locale: str | None) -> str:
    lang = (locale or "en").replace("_", "-").split("-")[0].lower()
    return lang if lang in LOCALES else "en"


def _one_line(text: str) -> str:
    # A subject is one header line: no CR/LF can slip in from a name.
    return re.sub(r"\s+", " ", text).strip()


def _tidy_text(text: str) -> str:
    text = re.sub(r"[ \t]+\n", "\n", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


def _inliner() -> css_inline.CSSInliner:
    return css_inline.CSSInliner(keep_style_tags=False, load_remote_stylesheets=False)


def render(kind: str, channel: str, locale: str | None, context: dict) -> Rendered:
    env = environment()
    loc = template_locale(locale)
    ctx = {**context, "locale": loc}
    path = f"{kind}/{loc}"
    if channel == "email":
        subject = _one_line(env.get_template(f"{path}/subject.txt").render(ctx))
        text = _tidy_text(env.get_template(f"{path}/body.txt").render(ctx))
        html = _inliner().inline(env.get_template(f"{path}/body.html").render(ctx))
        return Rendered(subject=subject, text=text, html=html)
    if channel == "sms":
        body = _one_line(env.get_template(f"{path}/sms.txt").render(ctx))
        return Rendered(sms=segments.fit(body, SMS_MAX_SEGMENTS))
    raise ValueError(f"unknown channel {channel!r}")
