"""A business's look: name, logo and colours as CSS variables, with readable text.

Text on a brand colour is black or white, whichever contrasts more (WCAG 2
relative luminance); either always reaches AA's 4.5:1 against some colour,
and the better of the two always does. Brand colours used as text on the white
page (links, outlines) are darkened until they reach 4.5:1.
"""

from __future__ import annotations

import functools
import re
from urllib.parse import urlparse

HEX_RE = re.compile(r"^#[0-9a-fA-F]{6}$")
ORIGIN_RE = re.compile(r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?$")
DEFAULT_PRIMARY = "#1d4ed8"
DEFAULT_ACCENT = "#f59e0b"
WHITE, BLACK = "#ffffff", "#000000"
AA = 4.5


def _channel(c: int) -> float:
    s = c / 255
    return s / 12.92 if s <= 0.04045 else ((s + 0.055) / 1.055) ** 2.4


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    h = hex_colour.lstrip("#")
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


def relative_luminance(hex_colour: str) -> float:
    r, g, b = (_channel(c) for c in _rgb(hex_colour))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast_ratio(a: str, b: str) -> float:
    la, lb = sorted((relative_luminance(a), relative_luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def text_on(background: str) -> str:
    """Black or white, whichever reads better on ``background``."""
    return BLACK if contrast_ratio(background, BLACK) >= contrast_ratio(background, WHITE) else WHITE


def ink_on_white(colour: str) -> str:
    """``colour`` darkened just enough to be AA-readable as text on white."""
    r, g, b = _rgb(colour)
    for step in range(0, 101):
        f = 1 - step / 100
        candidate = "#{:02x}{:02x}{:02x}".format(round(r * f), round(g * f), round(b * f))
        if contrast_ratio(candidate, WHITE) >= AA:
            return candidate
    return BLACK


def safe_colour(value: str | None, default: str) -> str:
    # Colours are interpolated into a <style> block: accept #rrggbb only.
    return value.lower() if value and HEX_RE.match(value) else default


def safe_logo(url: str | None) -> str | None:
    if not url:
        return None
    if url.startswith("/") and not url.startswith("//"):
        return url
    parsed = urlparse(url)
    return url if parsed.scheme == "https" and parsed.netloc else None


def embed_origins(business) -> list[str]:
    """The business's allowed embedding origins, only well-formed ones (they go into a header)."""
    origins = getattr(business, "embed_origins", None) or []
    return [o.rstrip("/") for o in origins if isinstance(o, str) and ORIGIN_RE.match(o.rstrip("/"))]


def theme(business) -> dict:
    primary = safe_colour(business.primary_color, DEFAULT_PRIMARY)
    accent = safe_colour(business.accent_color, DEFAULT_ACCENT)
    return {
        "name": business.name,
        "logo_url": safe_logo(business.logo_url),
        "primary": primary,
        "accent": accent,
        **_readable(primary, accent),
    }


@functools.lru_cache(maxsize=1024)
def _readable(primary: str, accent: str) -> dict:
    # Pure function of two colours, computed on every page otherwise (contrast search).
    return {"on_primary": text_on(primary), "primary_ink": ink_on_white(primary), "on_accent": text_on(accent)}


def css_variables(t: dict) -> str:
    return (f"--brand:{t['primary']};--on-brand:{t['on_primary']};--brand-ink:{t['primary_ink']};"
            f"--accent:{t['accent']};--on-accent:{t['on_accent']};")
