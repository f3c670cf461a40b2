"""Message types by name, each tagged with a category.

Critical categories (sign-in links) cannot be turned off; the others can,
per channel, in the customer's communication preferences.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

CATEGORIES = {
    # category: (critical, urgent) -- urgent messages ignore quiet hours. Urgency is
    # mostly per type: a sign-in link is urgent, a (bulk) invitation is not.
    "account": (True, False),         # sign-in links, invitations
    "reminders": (False, False),
    "booking_updates": (False, False),
    "billing": (False, False),
    "quotes": (False, False),
}
CRITICAL_CATEGORIES = frozenset(c for c, (critical, _) in CATEGORIES.items() if critical)
OPTIONAL_CATEGORIES = tuple(c for c, (critical, _) in CATEGORIES.items() if not critical)
CHANNELS = ("email", "sms")


@dataclass(frozen=True)
class MessageType:
    name: str
    category: str
    context: Callable | None = None  # (session, message, settings) -> dict, see messages.types
    urgent: bool = False             # sent at once, even in quiet hours
    ics: str | None = None           # "REQUEST" or "CANCEL": emails carry a calendar attachment
    needs_booking: bool = False      # re-checked against the booking at send time

    @property
    def critical(self) -> bool:
        return self.category in CRITICAL_CATEGORIES


_REGISTRY: dict[str, MessageType] = {}


def register(name: str, category: str, *, urgent: bool = False, ics: str | None = None,
             needs_booking: bool = False):
    """Decorator: ``@register("appointment_reminder", "reminders")`` on a context function."""
    if category not in CATEGORIES:
        raise ValueError(f"unknown category {category!r}")
    if ics not in (None, "REQUEST", "CANCEL"):
        raise ValueError(f"unknown calendar method {ics!r}")

    def decorate(fn: Callable) -> Callable:
        _REGISTRY[name] = MessageType(name, category, fn, urgent or CATEGORIES[category][1], ics,
                                      needs_booking or ics is not None)
        return fn

    return decorate


def is_urgent(name: str) -> bool:
    """Whether a kind goes on the "urgent" queue; an unknown kind is not (its send will say why)."""
    _load()
    mtype = _REGISTRY.get(name)
    return mtype is not None and mtype.urgent


def get(name: str) -> MessageType:
    _load()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown message type {name!r}") from None


def all_types() -> dict[str, MessageType]:
    _load()
    return dict(_REGISTRY)


def _load() -> None:
    import messages.types  # noqa: F401  (registers the types)
