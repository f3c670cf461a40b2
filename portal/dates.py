"""Dates as French readers expect them: "1er décembre", with the ordinal on the
first of the month only. Babel's CLDR patterns have no such rule ("1 décembre"),
so it is applied to their output, on pages and in messages alike."""

from __future__ import annotations

import re

# A day number "1" standing alone before a space (plain, non-breaking or narrow):
# not the 1 of "11", "01" or "2021", nor a numeric date such as "2026-12-01".
_DAY_ONE = re.compile(r"(?<!\d)1(?=[ \u00a0\u202f])")


def french_ordinal(text: str, day: int, locale: str | None) -> str:
    """``"mardi 1 décembre 2026"`` -> ``"mardi 1er décembre 2026"`` in French; anything else unchanged."""
    if day != 1 or not (locale or "").lower().startswith("fr"):
        return text
    return _DAY_ONE.sub("1er", text, count=1)
