"""Phone numbers for people to read, and as typed by people.

Stored numbers are E.164 (``+15145550199``): right for providers and ``tel:``
links, hard to read. ``display`` is how pages and emails show them; ``e164``
reads a number a person typed (sign-in), ``as_e164`` one typed into a search box.
"""

from __future__ import annotations

from functools import lru_cache

import phonenumbers

DEFAULT_REGION = "CA"  # +1 numbers: Canada and the US share the plan


def _parse(text: str) -> phonenumbers.PhoneNumber | None:
    try:
        number = phonenumbers.parse(text, DEFAULT_REGION)
    except phonenumbers.NumberParseException:
        return None
    return number if phonenumbers.is_possible_number(number) else None


@lru_cache(maxsize=1024)
def display(value: str | None) -> str:
    """``+15145550199`` -> ``+1 514-555-0199``; anything that is not a number is shown as given."""
    number = _parse(value) if value else None
    if number is None:
        return value or ""
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)


def e164(text: str) -> str | None:
    """``text`` as E.164 if it can be a phone number (``+1 514 555 0177`` -> ``+15145550177``), else None."""
    number = _parse(text)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164) if number else None


def as_e164(text: str | None) -> str | None:
    """The E.164 form of a number typed into a search box (``514-555-0177``, ``(514) 555 0177``),
    or None for text that is not one (an email, a name, a few digits)."""
    text = (text or "").strip()
    if not text or "@" in text or sum(c.isdigit() for c in text) < 7:
        return None
    return e164(text)
