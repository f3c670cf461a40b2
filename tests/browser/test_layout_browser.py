"""Headless Chromium on a phone-sized screen: no signed-in page is wider than the screen.

A table of invoice or quote lines (four columns of amounts) used to push the page
sideways on a 375-pixel phone, past the header and the card around it; so did a booking's
facts list, whose French labels ("Motif de l'annulation") left too little room for the value.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from portal.db import scope_to
from portal.models import Booking, Business, Customer, Invoice, Quote


@pytest.mark.parametrize("width", [320, 375])
async def test_signed_in_pages_fit_a_phone_screen(live_portal, browser, width):
    base = f"{live_portal.url}/{live_portal.slug}"
    link = live_portal.signin_link("cust-marie")
    with live_portal.db() as db:
        business = db.scalar(select(Business).where(Business.slug == live_portal.slug))
        scope_to(db, business.id)
        marie = db.scalar(select(Customer).where(Customer.external_id == "cust-marie"))
        invoices = db.scalars(select(Invoice.public_id).where(Invoice.customer_id == marie.id)).all()
        quotes = db.scalars(select(Quote.public_id).where(Quote.customer_id == marie.id)).all()
        bookings = db.scalars(select(Booking).where(Booking.customer_id == marie.id)).all()
        bookings[0].status, bookings[0].cancel_reason = "cancelled", "Déménagement"
        bookings = [b.public_id for b in bookings]
        db.commit()
    assert invoices and quotes

    page = await (await browser.new_context(viewport={"width": width, "height": 740}, locale="fr-CA")).new_page()
    await page.goto(link)
    await page.get_by_role("button", name="Continuer en tant que m•••@example.com vers Pro Home Services").click()
    await page.wait_for_url(f"{base}/")
    paths = ["/", "/bookings", "/invoices", "/quotes", "/payment-method", "/preferences"]
    paths += [f"/invoices/{i}" for i in invoices] + [f"/invoices/{i}/print" for i in invoices]
    paths += [f"/quotes/{q}" for q in quotes] + [f"/bookings/{b}" for b in bookings]
    too_wide = {}
    for path in paths:
        resp = await page.goto(base + path)
        assert resp.status == 200, path
        extra = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        if extra > 0:
            too_wide[path] = extra
    assert too_wide == {}
