"""Branding contrast (WCAG AA) and the French catalog covering the shell's strings."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from jinja2.ext import babel_extract

from portal_web import branding, i18n

TEMPLATES = Path(__file__).resolve().parents[2] / "templates" / "portal"
SHELL_TEMPLATES = ["base.html", "signin.html", "signin_sent.html", "link.html", "link_invalid.html",
                   "dashboard.html", "error.html"]


def test_known_contrast_values():
    assert branding.contrast_ratio("#000000", "#ffffff") == pytest.approx(21.0)
    assert branding.contrast_ratio("#777777", "#ffffff") == pytest.approx(4.48, abs=0.01)
    assert branding.text_on("#ffff00") == "#000000"
    assert branding.text_on("#0f766e") == "#ffffff"


def test_text_on_every_brand_colour_meets_aa():
    for rgb in itertools.product(range(0, 256, 17), repeat=3):
        colour = "#%02x%02x%02x" % rgb
        assert branding.contrast_ratio(colour, branding.text_on(colour)) >= branding.AA, colour
        assert branding.contrast_ratio(branding.ink_on_white(colour), "#ffffff") >= branding.AA, colour


def test_colours_and_logos_cannot_inject_css_or_scripts():
    assert branding.safe_colour("red;}body{display:none", "#123456") == "#123456"
    assert branding.safe_colour("#ABCDEF", "#123456") == "#abcdef"
    assert branding.safe_logo("javascript:alert(1)") is None
    assert branding.safe_logo("//evil.example/x.png") is None
    assert branding.safe_logo("http://insecure.example/x.png") is None
    assert branding.safe_logo("https://cdn.example/logo.png") == "https://cdn.example/logo.png"
    assert branding.safe_logo("/static/demo/logo.svg") == "/static/demo/logo.svg"


def _messages(path: Path) -> list:
    with path.open("rb") as fh:
        return [message for _line, _func, message, _comments
                in babel_extract(fh, ("_", "gettext", "ngettext"), [], {}) if message]


def test_every_shell_string_has_a_french_translation():
    fr = i18n.translations("fr")
    missing = []
    for name in SHELL_TEMPLATES:
        for message in _messages(TEMPLATES / name):
            if isinstance(message, tuple):  # (msgid, None) with kwargs, or ngettext's (singular, plural, ...)
                message = tuple(m for m in message if isinstance(m, str))
                message = message[0] if len(message) == 1 else message
            if isinstance(message, tuple):
                translated = fr.ngettext(message[0], message[1], 2) != message[1]
            else:
                translated = fr.gettext(message) != message
            if not translated:
                missing.append((name, message))
    assert missing == []


def test_locale_normalisation_and_formatting():
    assert i18n.normalise("fr-CA") == "fr" and i18n.normalise("EN_us") == "en" and i18n.normalise("de") is None
    assert i18n.gettext("fr", "Sign in to %(business)s", business="X") == "Connexion à X"
    assert i18n.fmt_money(12345, "CAD", "fr") == "123,45\xa0$"
    assert i18n.fmt_money(12345, "CAD", "en") == "$123.45"
