"""Portal translations: English source strings, French from Babel .po catalogs.

Every ``portal_web/locale/<lang>/LC_MESSAGES/*.po`` file is read with Babel
and compiled to an in-memory .mo at first use, so no ``pybabel compile``
step (and no committed .mo) is needed. Several .po files per language are
merged, so each part of the portal can keep its own catalog.
"""

from __future__ import annotations

import functools
import gettext as _gettext
from datetime import date, datetime
from io import BytesIO
from pathlib import Path
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_date, format_datetime, format_time
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from jinja2 import pass_context
from markupsafe import Markup

from portal import phones
from portal.dates import french_ordinal
from portal.money import format_money

LOCALE_DIR = Path(__file__).resolve().parent / "locale"
SUPPORTED = ("en", "fr")
DEFAULT = "en"
LANGUAGE_NAMES = {"en": "English", "fr": "Français"}


def normalise(value: str | None) -> str | None:
    """'fr-CA', 'FR', 'fr_CA' -> 'fr'; anything unsupported -> None."""
    if not value:
        return None
    lang = value.strip().replace("_", "-").split("-")[0].lower()
    return lang if lang in SUPPORTED else None


def _compile(po_path: Path):
    with po_path.open("rb") as fh:
        catalog = read_po(fh, locale=po_path.parent.parent.name)
    buf = BytesIO()
    write_mo(buf, catalog)  # fuzzy entries are left out, as pybabel would
    buf.seek(0)
    return _gettext.GNUTranslations(buf)


@functools.cache
def translations(locale: str) -> _gettext.NullTranslations:
    lang = normalise(locale) or DEFAULT
    if lang == DEFAULT:
        return _gettext.NullTranslations()
    files = sorted((LOCALE_DIR / lang / "LC_MESSAGES").glob("*.po"))
    if not files:
        return _gettext.NullTranslations()
    merged = _compile(files[0])
    for path in files[1:]:
        merged.add_fallback(_compile(path))
    return merged


def gettext(locale: str, message: str, **variables) -> str:
    """Translate outside templates (flash messages, titles built in Python)."""
    text = translations(locale).gettext(message)
    return text % variables if variables else text


def jinja_callables(locale: str) -> dict:
    """``gettext``/``ngettext``/``_`` for a template context, newstyle like jinja2.ext.i18n:
    ``_("Hello %(name)s", name=x)`` escapes ``x`` and formats; ``ngettext`` gets ``num``.
    ``{% trans %}`` blocks work too (they call ``gettext`` from the context)."""
    tr = translations(locale)

    @pass_context
    def jgettext(ctx, message: str, **variables):
        rv = tr.gettext(message)
        if ctx.eval_ctx.autoescape:
            rv = Markup(rv)
        # Unlike jinja2.ext.i18n, a string without variables is not %-formatted,
        # so an error message with a "%" in it cannot break a page.
        return rv % variables if variables else rv

    @pass_context
    def jngettext(ctx, singular: str, plural: str, num: int, **variables):
        variables.setdefault("num", num)
        rv = tr.ngettext(singular, plural, num)
        if ctx.eval_ctx.autoescape:
            rv = Markup(rv)
        return rv % variables

    return {"gettext": jgettext, "ngettext": jngettext, "_": jgettext}


# Formatting in the customer's language and timezone (Jinja filters, see rendering.py).
# Pure functions of their arguments, memoised: Babel's pattern formatting costs
# tens of microseconds a call, and a page shows the same few times again and again.

@functools.cache
def _locale(code: str) -> Locale:
    return Locale.parse(code)


def _tz(tz: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(tz or "UTC")
    except (KeyError, ValueError):
        return ZoneInfo("UTC")


@functools.lru_cache(maxsize=4096)
def fmt_datetime(value: datetime | None, locale: str, tz: str | None, fmt: str = "medium") -> str:
    if value is None:
        return ""
    if fmt == "long":  # "Tuesday, March 4, 2025, 9:00 AM" / "mardi 4 mars 2025, 09 h 00"
        local = value.astimezone(_tz(tz))
        text = f"{format_date(local, 'full', locale=_locale(locale))}, {format_time(local, 'short', locale=_locale(locale))}"
        return french_ordinal(text, local.day, locale)
    return french_ordinal(format_datetime(value, fmt, tzinfo=_tz(tz), locale=_locale(locale)),
                          value.astimezone(_tz(tz)).day, locale)


@functools.lru_cache(maxsize=4096)
def fmt_date(value: date | datetime | None, locale: str, tz: str | None = None, fmt: str = "medium") -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        value = value.astimezone(_tz(tz)).date()
    return french_ordinal(format_date(value, fmt, locale=_locale(locale)), value.day, locale)


@functools.lru_cache(maxsize=4096)
def fmt_time(value: datetime | None, locale: str, tz: str | None = None) -> str:
    if value is None:
        return ""
    return format_time(value.astimezone(_tz(tz)), "short", locale=_locale(locale))


def fmt_money(cents: int | None, currency: str, locale: str) -> str:
    return "" if cents is None else format_money(cents, currency, locale)


def install_filters(env) -> None:
    """Jinja filters reading ``locale`` and ``tz`` from the template context:
    ``{{ booking.starts_at|datetime }}``, ``|datetime('long')``, ``|date``, ``|time``,
    ``{{ invoice.amount_cents|money(invoice.currency) }}``."""

    def _loc(ctx) -> str:
        return normalise(ctx.get("locale")) or DEFAULT

    @pass_context
    def f_datetime(ctx, value, fmt: str = "medium"):
        return fmt_datetime(value, _loc(ctx), ctx.get("tz"), fmt)

    @pass_context
    def f_date(ctx, value, fmt: str = "medium"):
        return fmt_date(value, _loc(ctx), ctx.get("tz"), fmt)

    @pass_context
    def f_time(ctx, value):
        return fmt_time(value, _loc(ctx), ctx.get("tz"))

    @pass_context
    def f_money(ctx, cents, currency: str = "CAD"):
        return fmt_money(cents, currency, _loc(ctx))

    env.filters.update({"datetime": f_datetime, "date": f_date, "time": f_time, "money": f_money,
                        "phone": phones.display})
