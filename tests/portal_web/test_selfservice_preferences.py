"""Preferences page: toggles with their consent wording, critical categories, language."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from portal.models import Consent, Customer
from tests.factories import make_business, make_customer
from tests.portal_web.signin_support import sign_in

EMAIL_ON = [f"{c}:email" for c in ("reminders", "booking_updates", "billing", "quotes")]


@pytest.fixture
def shop(db):
    business = make_business(db, name="Pro Home", webhook_url="https://booking.example/hooks")
    customer = make_customer(db, business, phone="+15145550123")
    db.commit()
    return business, customer


async def test_page_shows_toggles_wording_and_critical_always_on(client, db, shop):
    business, customer = shop
    await sign_in(client, db, customer)
    html = await (await client.get(f"/{business.slug}/preferences")).text()
    assert 'value="reminders:email"' in html and 'value="reminders:sms"' in html
    assert "I agree to receive appointment reminders from Pro Home by text message at +15145550123" in html
    assert 'id="pref-account" checked disabled' in html and "Always on" in html
    assert 'name="pref" value="account' not in html


async def test_saving_records_consent_and_language(client, db, shop, stub_broker):
    business, customer = shop
    csrf = await sign_in(client, db, customer)
    data = [("csrf_token", csrf), ("locale", "fr"), ("pref", "reminders:sms")]
    data += [("pref", v) for v in EMAIL_ON if v != "reminders:email"]
    resp = await client.post(f"/{business.slug}/preferences", data=data, allow_redirects=False)
    assert resp.status == 303
    assert "portal_lang=fr" in resp.headers.get("Set-Cookie", "")
    db.expire_all()
    assert db.get(Customer, customer.id).locale == "fr"
    consents = db.scalars(select(Consent).where(Consent.customer_id == customer.id).order_by(Consent.id)).all()
    assert [(c.category, c.channel, c.granted, c.source) for c in consents] == [
        ("reminders", "email", False, "portal"), ("reminders", "sms", True, "portal")]
    page = await (await client.get(resp.headers["Location"])).text()
    assert 'lang="fr"' in page
    assert re.search(r'value="reminders:sms"\s+checked', page)
    assert not re.search(r'value="reminders:email"\s+checked', page)


async def test_bad_values_are_refused(client, db, shop):
    business, customer = shop
    csrf = await sign_in(client, db, customer)
    for data in ({"csrf_token": csrf, "pref": "account:email"}, {"csrf_token": csrf, "locale": "de"}):
        resp = await client.post(f"/{business.slug}/preferences", data=data)
        assert resp.status == 422
    assert db.scalars(select(Consent).where(Consent.customer_id == customer.id)).all() == []
    assert (await client.post(f"/{business.slug}/preferences", data={"pref": "reminders:sms"})).status == 403
