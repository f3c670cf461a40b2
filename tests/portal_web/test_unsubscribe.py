"""One-click unsubscribe (RFC 8058): GET confirms and changes nothing; POST works without a session."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from messages.links import unsubscribe_token
from portal.models import CommunicationPreference, Consent
from tests.factories import make_business, make_customer


@pytest.fixture
def customer(db):
    return make_customer(db, make_business(db, name="Pro Home"))


def token_for(settings, customer, category="reminders", channel="email") -> str:
    return unsubscribe_token(settings.secret_key, customer.business_id, customer.id, category, channel)


def counts(db, customer) -> tuple[int, int]:
    prefs = db.scalar(select(func.count()).select_from(CommunicationPreference)
                      .where(CommunicationPreference.customer_id == customer.id))
    consents = db.scalar(select(func.count()).select_from(Consent).where(Consent.customer_id == customer.id))
    return prefs, consents


async def test_get_shows_a_confirmation_form_and_changes_nothing(client, db, settings, customer):
    path = f"/unsubscribe/{token_for(settings, customer)}"
    for _ in range(3):  # scanners, previews, the person
        resp = await client.get(path)
        assert resp.status == 200
        html = await resp.text()
        assert '<form method="post"' in html and f'action="{path}"' in html
        assert "appointment reminders" in html and "Pro Home" in html
        assert resp.headers["Cache-Control"] == "no-store"
    assert (await client.head(path)).status == 200
    db.expire_all()
    assert counts(db, customer) == (0, 0)


async def test_one_click_post_needs_no_session_or_csrf_token(client, db, settings, customer):
    path = f"/unsubscribe/{token_for(settings, customer)}"
    resp = await client.post(path, data="List-Unsubscribe=One-Click",
                             headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert resp.status == 200
    assert "no longer receive appointment reminders" in await resp.text()
    db.expire_all()
    pref = db.scalar(select(CommunicationPreference).where(CommunicationPreference.customer_id == customer.id))
    assert (pref.category, pref.channel, pref.enabled) == ("reminders", "email", False)
    consent = db.scalar(select(Consent).where(Consent.customer_id == customer.id))
    assert (consent.category, consent.channel, consent.granted, consent.source) == (
        "reminders", "email", False, "unsubscribe_link")
    # A second click (or a mailbox provider retrying) writes nothing more.
    again = await client.post(path, data="List-Unsubscribe=One-Click")
    assert again.status == 200 and "already unsubscribed" in await again.text()
    db.expire_all()
    assert counts(db, customer) == (1, 1)


async def test_the_link_opened_again_says_it_is_done_and_points_to_preferences(client, db, settings, customer):
    path = f"/unsubscribe/{token_for(settings, customer)}"
    assert (await client.post(path, data="List-Unsubscribe=One-Click")).status == 200
    html = await (await client.get(path)).text()
    assert "already unsubscribed from appointment reminders" in html and "<form" not in html
    assert f'<a href="/{customer.business.slug}/preferences">' in html



async def test_no_preferences_link_when_the_business_has_its_portal_off(client, db, settings, customer):
    # Unsubscribing still works; the portal's preferences page would be a 404.
    customer.business.portal_enabled = False
    db.commit()
    path = f"/unsubscribe/{token_for(settings, customer)}"
    shown = await client.get(path)
    done = await client.post(path, data="List-Unsubscribe=One-Click")
    assert shown.status == done.status == 200
    assert "no longer receive appointment reminders" in await done.text()
    for html in (await shown.text(), await done.text()):
        assert "/preferences" not in html

async def test_the_confirmation_form_posts_the_same_way(client, db, settings, customer):
    path = f"/unsubscribe/{token_for(settings, customer, 'billing', 'sms')}"
    resp = await client.post(path, data={"List-Unsubscribe": "One-Click"})
    assert resp.status == 200
    db.expire_all()
    pref = db.scalar(select(CommunicationPreference).where(CommunicationPreference.customer_id == customer.id))
    assert (pref.category, pref.channel, pref.enabled) == ("billing", "sms", False)


async def test_a_preference_turned_back_on_can_be_turned_off_again(client, db, settings, customer):
    db.add(CommunicationPreference(business_id=customer.business_id, customer_id=customer.id, category="reminders",
                                   channel="email", enabled=True))
    db.flush()
    assert (await client.post(f"/unsubscribe/{token_for(settings, customer)}")).status == 200
    db.expire_all()
    assert counts(db, customer) == (1, 1)
    assert db.scalar(select(CommunicationPreference.enabled)
                     .where(CommunicationPreference.customer_id == customer.id)) is False


async def test_french_customers_get_a_french_page(client, db, settings):
    customer = make_customer(db, make_business(db, name="Ménage Pro"), locale="fr")
    html = await (await client.get(f"/unsubscribe/{token_for(settings, customer)}")).text()
    assert 'lang="fr"' in html and "rappels de rendez-vous" in html and "Me désabonner" in html


async def test_sign_in_links_cannot_be_unsubscribed(client, db, settings, customer):
    path = f"/unsubscribe/{token_for(settings, customer, 'account')}"
    assert "<form" not in await (await client.get(path)).text()
    assert (await client.post(path)).status == 200
    db.expire_all()
    assert counts(db, customer) == (0, 0)


@pytest.mark.parametrize("method", ["get", "post"])
async def test_invalid_tokens_get_a_404_page(client, db, settings, customer, method):
    good = token_for(settings, customer)
    other_business = make_customer(db, make_business(db))
    # A genuine token naming a customer of another business (e.g. deleted and reused id) finds nobody.
    cross = unsubscribe_token(settings.secret_key, customer.business_id, other_business.id, "reminders", "email")
    for token in (good[:-2], good.replace(".reminders.", ".billing."), "nonsense",
                  unsubscribe_token("another-secret-key-0000", customer.business_id, customer.id, "reminders", "email"),
                  cross):
        resp = await getattr(client, method)(f"/unsubscribe/{token}")
        assert resp.status == 404, token
        assert "text/html" in resp.headers["Content-Type"]
    db.expire_all()
    assert counts(db, customer) == (0, 0) and counts(db, other_business) == (0, 0)
