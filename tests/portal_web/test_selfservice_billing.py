"""Invoices and quotes pages: statuses, money in the page's language, printable view, decisions, toggles."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import select

from portal.models import Business, Quote, WebhookDelivery
from tests.factories import make_business, make_customer, make_invoice, make_quote
from tests.portal_web.signin_support import sign_in


@pytest.fixture
def shop(db):
    business = make_business(db, webhook_url="https://booking.example/hooks")
    customer = make_customer(db, business, locale="en")
    today = date.today()
    invoices = {
        "paid": make_invoice(db, customer, number="INV-PAID", payment_status="paid", amount_paid_cents=10000),
        "unpaid": make_invoice(db, customer, number="INV-UNPAID", amount_cents=123456),
        "overdue": make_invoice(db, customer, number="INV-LATE", due_on=today - timedelta(days=3)),
        "partially_paid": make_invoice(db, customer, number="INV-PART", payment_status="partially_paid",
                                       amount_paid_cents=2500, lines=[{"description": "Windows", "quantity": 2,
                                                                       "unit_cents": 5000}]),
    }
    quote = make_quote(db, customer, number="Q-77")
    db.commit()
    return business, customer, invoices, quote


async def test_invoice_list_statuses_and_amounts(client, db, shop):
    business, customer, invoices, quote = shop
    await sign_in(client, db, customer)
    resp = await client.get(f"/{business.slug}/invoices")
    html = await resp.text()
    assert resp.status == 200
    for status, label in (("paid", "Paid"), ("unpaid", "Unpaid"), ("overdue", "Overdue"),
                          ("partially_paid", "Partially paid")):
        row = html.split(f'data-invoice="{invoices[status].public_id}"')[1].split("</tr>")[0]
        assert f"badge--{status}" in row and label in row
    assert "$1,234.56" in html  # Babel, English


async def test_invoice_detail_and_printable_view_in_french(client, db, shop):
    business, customer, invoices, quote = shop
    await sign_in(client, db, customer)
    inv = invoices["partially_paid"]
    resp = await client.get(f"/{business.slug}/invoices/{inv.public_id}?lang=fr")
    html = await resp.text()
    assert resp.status == 200
    assert "100,00\xa0$" in html and "25,00\xa0$" in html and "75,00\xa0$" in html  # amount, paid, balance
    assert "Windows" in html and f"/invoices/{inv.public_id}/print" in html
    printable = await client.get(f"/{business.slug}/invoices/{inv.public_id}/print")
    text = await printable.text()
    assert printable.status == 200 and "selfservice.css" in text and "data-print" in text
    assert 'class="site-header"' not in text  # a clean page to print
    assert f"Facturé à : {customer.name}" in text  # French spacing: the colon is in the translation


async def test_quote_total_in_french_and_english(client, db, shop):
    business, customer, invoices, quote = shop
    await sign_in(client, db, customer)
    fr = await (await client.get(f"/{business.slug}/quotes/{quote.public_id}?lang=fr")).text()
    assert '<p class="total">Total : <strong>' in fr
    en = await (await client.get(f"/{business.slug}/quotes/{quote.public_id}?lang=en")).text()
    assert '<p class="total">Total: <strong>' in en


async def test_hidden_invoices_answer_404_everywhere(client, db, shop):
    business, customer, invoices, quote = shop
    db.get(Business, business.id).show_invoices = False
    db.commit()
    await sign_in(client, db, customer)
    inv = invoices["unpaid"]
    for path in ("/invoices", f"/invoices/{inv.public_id}", f"/invoices/{inv.public_id}/print"):
        resp = await client.get(f"/{business.slug}{path}")
        assert resp.status == 404, path
        assert inv.number not in await resp.text()


async def test_quote_approve_with_comment(client, db, shop, stub_broker):
    business, customer, invoices, quote = shop
    csrf = await sign_in(client, db, customer)
    page = await client.get(f"/{business.slug}/quotes/{quote.public_id}")
    html = await page.text()
    assert page.status == 200 and "Q-77" in html and "$250.00" in html and 'value="approve"' in html
    resp = await client.post(f"/{business.slug}/quotes/{quote.public_id}/decision",
                             data={"csrf_token": csrf, "decision": "approve", "comment": "Next Tuesday please"},
                             allow_redirects=False)
    assert resp.status == 303
    db.expire_all()
    row = db.get(Quote, quote.id)
    assert (row.status, row.decision_comment) == ("approved", "Next Tuesday please")
    hook = db.scalar(select(WebhookDelivery).where(WebhookDelivery.business_id == business.id))
    assert hook.event_type == "quote.approved" and hook.payload["comment"] == "Next Tuesday please"
    html = await (await client.get(resp.headers["Location"])).text()
    assert "you approved this quote" in html and 'value="approve"' not in html
    # Only pending quotes can be decided.
    again = await client.post(f"/{business.slug}/quotes/{quote.public_id}/decision",
                              data={"csrf_token": csrf, "decision": "decline"})
    assert again.status == 409 and "already been decided" in await again.text()
    db.expire_all()
    assert db.get(Quote, quote.id).status == "approved"


async def test_quote_decline_and_bad_decisions(client, db, shop):
    business, customer, invoices, quote = shop
    csrf = await sign_in(client, db, customer)
    bad = await client.post(f"/{business.slug}/quotes/{quote.public_id}/decision",
                            data={"csrf_token": csrf, "decision": "maybe"})
    assert bad.status == 422
    no_token = await client.post(f"/{business.slug}/quotes/{quote.public_id}/decision", data={"decision": "decline"})
    assert no_token.status == 403
    ok = await client.post(f"/{business.slug}/quotes/{quote.public_id}/decision",
                           data={"csrf_token": csrf, "decision": "decline"}, allow_redirects=False)
    assert ok.status == 303
    db.expire_all()
    assert db.get(Quote, quote.id).status == "declined"
    listing = await (await client.get(f"/{business.slug}/quotes")).text()
    assert "Declined" in listing


async def test_get_on_the_decision_address_goes_back_to_the_quote(client, db, shop):
    # The address a refused decision leaves in the bar: reloading it is not a 405 page.
    business, customer, invoices, quote = shop
    await sign_in(client, db, customer)
    resp = await client.get(f"/{business.slug}/quotes/{quote.public_id}/decision", allow_redirects=False)
    assert (resp.status, resp.headers["Location"]) == (303, f"/{business.slug}/quotes/{quote.public_id}")
    page = await client.get(resp.headers["Location"])
    assert page.status == 200 and 'value="approve"' in await page.text()
    db.expire_all()
    assert db.get(Quote, quote.id).status == "pending"


async def test_hidden_quotes_answer_404_everywhere(client, db, shop):
    business, customer, invoices, quote = shop
    db.get(Business, business.id).show_quotes = False
    db.commit()
    csrf = await sign_in(client, db, customer)
    for path in ("/quotes", f"/quotes/{quote.public_id}"):
        assert (await client.get(f"/{business.slug}{path}")).status == 404
    resp = await client.post(f"/{business.slug}/quotes/{quote.public_id}/decision",
                             data={"csrf_token": csrf, "decision": "approve"})
    assert resp.status == 404
    db.expire_all()
    assert db.get(Quote, quote.id).status == "pending"
