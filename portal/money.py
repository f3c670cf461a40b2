"""Amounts as people read them, the same on portal pages and in messages."""

from __future__ import annotations

from functools import cache

from babel import Locale, UnknownLocaleError
from babel.numbers import format_currency


@cache
def _regional(lang: str) -> Locale:
    # The Canadian regional locale: "$123.45" / "123,45 $", not "CA$123.45".
    try:
        return Locale.parse(f"{lang}_CA")
    except (UnknownLocaleError, ValueError):
        return Locale.parse("en_CA")


def format_money(cents: int, currency: str | None, locale: str | None) -> str:
    """``12345, "CAD", "fr"`` -> ``123,45 $`` (Babel's spacing, non-breaking)."""
    lang = (locale or "en").replace("-", "_").split("_")[0].lower()
    return format_currency(cents / 100, currency or "CAD", locale=_regional(lang))
