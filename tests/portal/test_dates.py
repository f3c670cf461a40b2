"""French dates say "1er" on the first of the month: pages, messages and the ordinal rule itself."""

from __future__ import annotations

from datetime import date, datetime, timezone

import pytest

from messages import types
from portal.dates import french_ordinal
from portal_web import i18n


@pytest.mark.parametrize(("text", "day", "locale", "expected"), [
    ("mardi 1 décembre 2026", 1, "fr", "mardi 1er décembre 2026"),
    ("1\u00a0déc. 2026, 09 h 00", 1, "fr_CA", "1er\u00a0déc. 2026, 09 h 00"),
    ("mar. 1 déc.", 1, "fr", "mar. 1er déc."),
    ("Tuesday, December 1, 2026", 1, "en", "Tuesday, December 1, 2026"),
    ("mercredi 11 novembre 2026", 11, "fr", "mercredi 11 novembre 2026"),
    ("mercredi 21 octobre 2026", 21, "fr", "mercredi 21 octobre 2026"),
    ("2026-12-01 09 h 00", 1, "fr", "2026-12-01 09 h 00"),
    ("mardi 1 décembre 2026 à 01 h 00", 2, "fr", "mardi 1 décembre 2026 à 01 h 00"),
])
def test_ordinal_only_on_the_first_in_french(text, day, locale, expected):
    assert french_ordinal(text, day, locale) == expected


def test_portal_filters():
    first = datetime(2026, 12, 1, 15, 0, tzinfo=timezone.utc)
    assert i18n.fmt_datetime(first, "fr", "America/Toronto", "long").startswith("mardi 1er décembre 2026, ")
    assert i18n.fmt_date(date(2026, 12, 1), "fr", None, "long") == "1er décembre 2026"
    assert i18n.fmt_date(date(2026, 12, 2), "fr", None, "long") == "2 décembre 2026"
    assert i18n.fmt_date(date(2026, 12, 1), "en", None, "long") == "December 1, 2026"
    # The day that counts is the local one: 02:00 UTC on the 2nd is still the 1st in Toronto.
    assert "1er" in i18n.fmt_datetime(datetime(2026, 12, 2, 2, 0, tzinfo=timezone.utc), "fr", "America/Toronto")


def test_message_dates():
    first = datetime(2026, 12, 1, 15, 0, tzinfo=timezone.utc)
    fr = types.when(first, "America/Toronto", None, "fr")
    assert fr["date"] == "mardi 1er décembre 2026"
    assert fr["when"] == "mardi 1er décembre 2026 à 10:00"
    assert fr["short_when"].startswith("mar. 1er déc.")
    assert types.when(first, "America/Toronto", None, "en")["date"] == "Tuesday, December 1, 2026"
    assert types.day(date(2026, 12, 1), "fr") == "1er décembre 2026"
