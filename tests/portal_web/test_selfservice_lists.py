"""The customer's lists (bookings, invoices, quotes) come a page at a time, in a
fixed number of queries however long the customer's history is."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone

import pytest
from sqlalchemy import event

from tests.factories import make_booking, make_business, make_customer, make_invoice, make_quote
from tests.portal_web.signin_support import sign_in

CARD_RE = re.compile(r'data-booking="([^"]+)"')
NOW = datetime.now(timezone.utc).replace(microsecond=0)


def past(db, customer, count):
    """``count`` completed bookings, one a day back from yesterday (newest first), each with
    its own service and provider, as a long-time customer's history has."""
    return [make_booking(db, customer, starts_at=NOW - timedelta(days=d), status="completed").public_id
            for d in range(1, count + 1)]


@pytest.fixture
def shop(db):
    business = make_business(db)
    customer = make_customer(db, business)
    db.commit()
    return business, customer


async def test_bookings_page_by_page(client, db, shop):
    business, customer = shop
    coming = make_booking(db, customer, starts_at=NOW + timedelta(days=2)).public_id
    history = past(db, customer, 25)
    db.commit()
    await sign_in(client, db, customer)
    base = f"/{business.slug}/bookings"

    first = await (await client.get(base)).text()
    upcoming, _, older = first.partition("Past and cancelled")
    assert CARD_RE.findall(upcoming) == [coming]
    assert CARD_RE.findall(older) == history[:20]
    assert f'href="{base}?page=2"' in older and "?page=0" not in older

    resp = await client.get(f"{base}?page=2")
    second = await resp.text()
    assert resp.status == 200
    assert coming not in second  # upcoming bookings are on the first page only
    assert CARD_RE.findall(second) == history[20:]
    assert f'href="{base}?page=1"' in second and "?page=3" not in second

    resp = await client.get(f"{base}?page=3")
    assert resp.status == 404 and "This page does not exist." in await resp.text()

    french = await (await client.get(f"{base}?page=2&lang=fr")).text()
    assert "Plus récents" in french and "Page 2" in french


@pytest.mark.parametrize("page", ["0", "-1", "abc", "1e3", "²", "10001", "9" * 40, "1.5"])
async def test_a_bad_page_number_is_a_clear_404(client, db, shop, page):
    business, customer = shop
    await sign_in(client, db, customer)
    for section in ("bookings", "invoices", "quotes"):
        resp = await client.get(f"/{business.slug}/{section}", params={"page": page})
        html = await resp.text()
        assert resp.status == 404, section
        assert "This page does not exist." in html and "Traceback" not in html


async def test_invoices_and_quotes_page_by_page(client, db, shop):
    business, customer = shop
    invoices = [make_invoice(db, customer, issued_on=date.today() - timedelta(days=d)).number for d in range(23)]
    quotes = [make_quote(db, customer, created_at=NOW - timedelta(days=d)).number for d in range(21)]
    db.commit()
    await sign_in(client, db, customer)
    base = f"/{business.slug}"

    page1, page2 = [await (await client.get(f"{base}/invoices?page={n}")).text() for n in (1, 2)]
    assert [n for n in invoices if f">{n}<" in page1] == invoices[:20]
    assert [n for n in invoices if f">{n}<" in page2] == invoices[20:]
    assert f'href="{base}/invoices?page=2"' in page1 and f'href="{base}/invoices?page=1"' in page2

    page1, page2 = [await (await client.get(f"{base}/quotes?page={n}")).text() for n in (1, 2)]
    assert [n for n in quotes if f"Quote {n}<" in page1] == quotes[:20]
    assert [n for n in quotes if f"Quote {n}<" in page2] == quotes[20:]
    assert (await client.get(f"{base}/quotes?page=3")).status == 404


async def test_bookings_page_queries_do_not_grow_with_history(client, db, connection, shop):
    """One query per card (lazy-loading each booking's service and provider) made a
    customer with a long history wait: the page's query count is fixed."""
    business, customer = shop
    other = make_customer(db, business)
    past(db, other, 3)
    past(db, customer, 20)
    make_booking(db, customer, starts_at=NOW + timedelta(days=2))
    make_booking(db, other, starts_at=NOW + timedelta(days=2))
    db.commit()

    statements: list[str] = []

    def count(conn, cursor, statement, *args):
        statements.append(statement)

    async def queries_for(who) -> int:
        client.session.cookie_jar.clear()
        await sign_in(client, db, who)
        statements.clear()
        event.listen(connection, "before_cursor_execute", count)
        try:
            resp = await client.get(f"/{business.slug}/bookings")
            assert resp.status == 200
        finally:
            event.remove(connection, "before_cursor_execute", count)
        return len(statements)

    assert await queries_for(customer) == await queries_for(other)
