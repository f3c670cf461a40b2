"""SMS length in segments: what the carrier bills and what the customer's phone stitches together.

A text that uses only the GSM 03.38 alphabet is sent as 7-bit GSM: 160 characters
in one segment, 153 per segment once split (the rest carries the concatenation
header). Characters of the extension table (``{ } [ ] ~ \\ | ^ €``) take two.
One character outside it (``ê``, ``ô``, ``ç``, an emoji...) switches the whole
text to UCS-2: 70 UTF-16 units in one segment, 67 per segment once split.
French ``é è à ù`` are in GSM-7; ``â ê î ô û ç ë ï œ`` are not.
"""

from __future__ import annotations

import math
import unicodedata
from dataclasses import dataclass

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")


@dataclass(frozen=True)
class SmsLength:
    encoding: str   # "GSM-7" or "UCS-2"
    units: int      # septets (GSM-7) or UTF-16 code units (UCS-2)
    segments: int


def is_gsm7(text: str) -> bool:
    return all(ch in GSM7_BASIC or ch in GSM7_EXTENSION for ch in text)


def measure(text: str) -> SmsLength:
    if is_gsm7(text):
        units = sum(2 if ch in GSM7_EXTENSION else 1 for ch in text)
        single, multi, encoding = 160, 153, "GSM-7"
    else:
        units = len(text.encode("utf-16-le")) // 2  # an emoji is two units
        single, multi, encoding = 70, 67, "UCS-2"
    if units == 0:
        segments = 0
    elif units <= single:
        segments = 1
    else:
        segments = math.ceil(units / multi)
    return SmsLength(encoding, units, segments)


def segments(text: str) -> int:
    return measure(text).segments


# Typographic characters with a plain GSM-7 look-alike.
_PLAIN = {
    "\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u00ab": '"', "\u00bb": '"',
    "\u2013": "-", "\u2014": "-", "\u2026": "...", "\u00a0": " ", "\u202f": " ", "\u2009": " ",
    "\u0153": "oe", "\u0152": "OE", "\u00e7": "c",
}


def to_gsm7(text: str) -> str:
    """Replace characters outside GSM-7 by their closest plain letters (``ô`` -> ``o``).

    Used only when a text would otherwise need more segments than allowed:
    ``bientot`` reads fine and halves the cost of a French reminder.
    """
    out = []
    for ch in text:
        if ch in GSM7_BASIC or ch in GSM7_EXTENSION:
            out.append(ch)
        elif ch in _PLAIN:
            out.append(_PLAIN[ch])
        else:
            base = "".join(c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c))
            out.append(base if base and all(c in GSM7_BASIC for c in base) else "?")
    return "".join(out)


def fit(text: str, max_segments: int) -> str:
    """The text itself if it fits, else its GSM-7 transliteration (which may still not fit)."""
    if segments(text) <= max_segments:
        return text
    return to_gsm7(text)
