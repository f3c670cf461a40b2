"""Numbered pages of a customer's lists (past bookings, invoices, quotes).

A page is read as ``LIMIT per_page + 1``: the extra row only says whether an
older page exists, so no ``count(*)`` runs. Offsets are fine here: one
customer's rows, walked through an index on (customer_id, date).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

from sqlalchemy import Select
from sqlalchemy.orm import Session

from portal.errors import NotFound

T = TypeVar("T")

PER_PAGE = 20
MAX_PAGE = 10_000  # deeper than any real history; keeps OFFSET bounded
BAD_PAGE = "This page does not exist."  # translated already (a hidden section says the same)


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    number: int
    has_next: bool

    @property
    def has_previous(self) -> bool:
        return self.number > 1


def page_number(raw: str | None) -> int:
    """``?page=`` as an int in 1..MAX_PAGE (absent: 1); anything else names no page: 404."""
    if raw is None or raw == "":
        return 1
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 5 or not 1 <= int(raw) <= MAX_PAGE:
        raise NotFound(BAD_PAGE)
    return int(raw)


def fetch_page(session: Session, stmt: Select, number: int, per_page: int = PER_PAGE) -> Page:
    """Page ``number`` (from 1) of ``stmt``'s ORM rows; ``stmt`` must be ordered.

    Page 1 may be empty; a later page past the end is NotFound."""
    rows = list(session.scalars(stmt.offset((number - 1) * per_page).limit(per_page + 1)))
    if number > 1 and not rows:
        raise NotFound(BAD_PAGE)
    return Page(rows[:per_page], number, len(rows) > per_page)
