import re
from datetime import datetime, timezone

import icalendar
import pytest
from sqlalchemy import select

from messages import compose, registry
from messages.providers.base import MESSAGE_ID_ARG, Email, Sms
from messages.render import render
from messages.segments import measure, segments
from portal.models import MagicLinkToken, Message
from portal.security import hash_token
from tests.factories import make_booking, make_business, make_customer, make_invoice, make_provider, make_quote, \
    make_service

KINDS = sorted(registry.all_types())
STARTS = datetime(2025, 1, 14, 14, 0, tzinfo=timezone.utc)  # 09:00 in Toronto


def make_message(db, kind, customer, channel, booking=None, params=None, n=[0]):
    n[0] += 1
    message = Message(
        business_id=customer.business_id, idempotency_key=f"test:{kind}:{channel}:{n[0]}:{customer.id}", kind=kind,
        category=registry.get(kind).category, channel=channel, customer_id=customer.id,
        booking_id=booking.id if booking else None, booking_version=booking.version if booking else None,
        recipient=customer.email if channel == "email" else customer.phone, locale=customer.locale,
        params=params or {}, status="queued",
    )
    db.add(message)
    db.flush()
    return message


@pytest.fixture
def world(db):
    business = make_business(db, name="Pro Home Services", primary_color="#0f766e", accent_color="#f59e0b",
                             logo_url="/static/demo/logo.svg", support_email="help@prohome.test",
                             support_phone="+15145550000", timezone="America/Toronto")
    customer = make_customer(db, business, name="Marie Tremblay", locale="fr", timezone="America/Toronto")
    provider = make_provider(db, business, name="Alex Martin")
    service = make_service(db, business, name="Nettoyage complet")
    booking = make_booking(db, customer, starts_at=STARTS, provider_id=provider.id, service_id=service.id,
                           address="1234 rue Saint-Denis, Montréal")
    invoice = make_invoice(db, customer, amount_cents=12345, amount_paid_cents=12345)
    quote = make_quote(db, customer)
    return dict(business=business, customer=customer, booking=booking, invoice=invoice, quote=quote)


def message_for(db, world, kind, channel, locale):
    customer = world["customer"]
    customer.locale = locale
    params = {}
    booking = None
    if registry.get(kind).needs_booking:
        booking = world["booking"]
        if kind == "cancellation_confirmation":
            booking.status = "cancelled"
        if kind == "reschedule_confirmation":
            params = {"previous_starts_at": "2025-01-10T15:00:00+00:00"}
    if kind in ("invoice_issued", "payment_receipt"):
        params = {"invoice": world["invoice"].public_id}
    if kind == "quote_ready":
        params = {"quote_id": world["quote"].id}
    return make_message(db, kind, customer, channel, booking, params)


@pytest.mark.parametrize("locale", ["en", "fr"])
@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_renders_email_and_sms(db, settings, world, kind, locale):
    email, _ = compose.compose(db, message_for(db, world, kind, "email", locale), settings)
    assert isinstance(email, Email)
    assert email.subject and "\n" not in email.subject
    assert email.text.strip() and email.html
    assert "Pro Home Services" in email.text and "Pro Home Services" in email.html
    # Branded and inlined: no <style> block left, colours on the elements.
    assert "<style" not in email.html
    assert re.search(r'style="[^"]*#0f766e', email.html)
    assert 'src="http://portal.test/static/demo/logo.svg"' in email.html
    assert f'lang="{locale}"' in email.html
    assert email.custom_args[MESSAGE_ID_ARG] == str(email.message_id) and email.categories[0] == kind
    critical = registry.get(kind).critical
    if critical:
        assert "List-Unsubscribe" not in email.headers
        assert "/unsubscribe/" not in email.text
    else:
        assert email.headers["List-Unsubscribe"].startswith("<http://portal.test/unsubscribe/")
        assert email.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert "http://portal.test/unsubscribe/" in email.text and "http://portal.test/unsubscribe/" in email.html

    sms, _ = compose.compose(db, message_for(db, world, kind, "sms", locale), settings)
    assert isinstance(sms, Sms)
    assert sms.body and "\n" not in sms.body
    assert sms.message_id is not None  # the Twilio adapter builds the StatusCallback URL from it
    assert segments(sms.body) <= 2


def test_french_reminder_uses_customer_timezone_and_babel(db, settings, world):
    email, _ = compose.compose(db, message_for(db, world, "appointment_reminder", "email", "fr"), settings)
    assert "mardi 14 janvier 2025 à 09:00" in email.text
    assert "Nettoyage complet" in email.text and "Alex Martin" in email.text
    assert "1234 rue Saint-Denis, Montréal" in email.text
    assert f"http://portal.test/{world['business'].slug}/bookings/{world['booking'].public_id}" in email.text
    assert email.subject.startswith("Rappel : ")


def test_english_reminder_in_another_timezone(db, settings, world):
    world["customer"].timezone = "America/Vancouver"
    email, _ = compose.compose(db, message_for(db, world, "appointment_reminder", "email", "en"), settings)
    assert "Tuesday, January 14, 2025 at 6:00 AM" in email.text


def test_html_is_escaped_text_is_not(db, settings, world):
    world["business"].name = "Bob <b>&</b> Sons"
    email, _ = compose.compose(db, message_for(db, world, "invoice_issued", "email", "en"), settings)
    assert "Bob <b>&</b> Sons" in email.text
    assert "Bob &lt;b&gt;&amp;&lt;/b&gt; Sons" in email.html and "<b>&</b>" not in email.html


def test_signin_token_is_minted_at_send_and_only_its_hash_stored(db, settings, world):
    message = message_for(db, world, "signin_link", "email", "en")
    assert message.params == {}
    email, _ = compose.compose(db, message, settings)
    link = re.search(r"http://portal\.test/[a-z0-9-]+/link/(\S+)", email.text)
    assert link, email.text
    raw = link.group(1)
    token = db.scalar(select(MagicLinkToken).where(MagicLinkToken.token_hash == hash_token(raw)))
    assert token is not None and token.purpose == "signin" and token.customer_id == world["customer"].id
    assert raw not in str(message.params)
    ttl = (token.expires_at - token.created_at).total_seconds()
    assert abs(ttl - settings.signin_token_ttl_s) < 5


def test_invitation_token_lives_longer(db, settings, world):
    compose.compose(db, message_for(db, world, "invitation", "sms", "fr"), settings)
    token = db.scalar(select(MagicLinkToken).where(MagicLinkToken.purpose == "invitation"))
    assert (token.expires_at - token.created_at).total_seconds() > 6 * 86400


def calendar_of(email):
    (name, ctype, data), = email.attachments
    assert name.endswith(".ics") and ctype.startswith("text/calendar")
    cal = icalendar.Calendar.from_ical(data)
    (event,) = cal.walk("VEVENT")
    return cal, event


def test_booking_and_reschedule_confirmations_carry_a_calendar_request(db, settings, world):
    booking = world["booking"]
    first, _ = compose.compose(db, message_for(db, world, "booking_confirmation", "email", "en"), settings)
    cal, event = calendar_of(first)
    assert str(cal["method"]) == "REQUEST"
    assert int(event["sequence"]) == booking.version == 1
    assert event.decoded("dtstart") == STARTS
    assert "Nettoyage complet" in str(event["summary"])
    booking.version = 2
    moved, _ = compose.compose(db, message_for(db, world, "reschedule_confirmation", "email", "en"), settings)
    _, moved_event = calendar_of(moved)
    assert str(moved_event["uid"]) == str(event["uid"])  # same event, updated
    assert int(moved_event["sequence"]) == 2


def test_cancellation_confirmation_carries_a_calendar_cancel(db, settings, world):
    world["booking"].version = 3
    email, _ = compose.compose(db, message_for(db, world, "cancellation_confirmation", "email", "fr"), settings)
    cal, event = calendar_of(email)
    assert str(cal["method"]) == "CANCEL" and str(event["status"]) == "CANCELLED"
    assert int(event["sequence"]) == 3


@pytest.mark.parametrize("locale, label", [("en", "See my appointments"), ("fr", "Voir mes rendez-vous")])
def test_cancellation_email_links_to_the_appointments_its_button_names(db, settings, world, locale, label):
    email, _ = compose.compose(db, message_for(db, world, "cancellation_confirmation", "email", locale), settings)
    bookings = f"{settings.public_base_url}/{world['business'].slug}/bookings"
    assert f'href="{bookings}"' in email.html and label in email.html
    assert f"{bookings}\n" in email.text
    assert world["booking"].public_id not in email.html  # not the cancelled booking alone


def test_reminders_have_no_attachment(db, settings, world):
    email, _ = compose.compose(db, message_for(db, world, "appointment_reminder", "email", "en"), settings)
    assert email.attachments == []


@pytest.mark.parametrize("locale", ["en", "fr"])
def test_every_reminder_sms_fits_in_two_segments(db, settings, world, locale):
    # Long but realistic values, with letters outside GSM-7 (ô, ê, ç).
    world["business"].name = "Rénovations Côté-Saint-Luc & Fils"
    world["booking"].service.name = "Entretien ménager complet (fenêtres, façade)"
    sms, _ = compose.compose(db, message_for(db, world, "appointment_reminder", "sms", locale), settings)
    assert segments(sms.body) <= 2, (sms.body, measure(sms.body))
    assert world["booking"].public_id in sms.body  # the link survives


def test_french_accents_outside_gsm7_change_the_count():
    ctx = {
        "business": {"name": "Pro Home"}, "customer": {"first_name": "Marie"},
        "booking": {"service": "Nettoyage", "short_when": "mar. 14 janv. 09:00",
                    "url": "https://p.test/pro/bookings/abc"},
    }
    plain = render("appointment_reminder", "sms", "fr", ctx).sms
    ctx["business"] = {"name": "Pro Hôme"}
    accented = render("appointment_reminder", "sms", "fr", ctx).sms
    assert measure(plain).encoding == "GSM-7" and measure(accented).encoding == "UCS-2"
    assert segments(plain) == 1 and segments(accented) == 2


def test_the_business_phone_reads_as_a_phone_number(db, settings, world):
    email, _ = compose.compose(db, message_for(db, world, "booking_confirmation", "email", "en"), settings)
    assert "+1 514-555-0000" in email.html and "+1 514-555-0000" in email.text
    assert "+15145550000" not in email.text


@pytest.mark.parametrize("locale, amount", [("en", "$123.45"), ("fr", "123,45 $")])
def test_amounts_read_as_on_the_portal(db, settings, world, locale, amount):
    from portal_web.i18n import fmt_money

    email, _ = compose.compose(db, message_for(db, world, "invoice_issued", "email", locale), settings)
    assert amount in email.text and "CA$" not in email.text
    assert fmt_money(12345, "CAD", locale).replace("\u202f", " ").replace("\u00a0", " ") == amount


def test_french_messages_call_a_quote_what_the_portal_calls_it(db, settings, world):
    # The link opens a page titled "Soumission Q-…" (portal_web/locale/fr): the messages use the same word.
    email, _ = compose.compose(db, message_for(db, world, "quote_ready", "email", "fr"), settings)
    sms, _ = compose.compose(db, message_for(db, world, "quote_ready", "sms", "fr"), settings)
    invitation, _ = compose.compose(db, message_for(db, world, "invitation", "email", "fr"), settings)
    for text in (email.subject, email.text, email.html, sms.body, invitation.text, invitation.html):
        assert "devis" not in text.lower()
    assert email.subject.startswith("Votre soumission ") and "soumission" in sms.body.lower()
    assert "vos factures et soumissions" in invitation.text


@pytest.mark.parametrize("locale", ["en", "fr"])
@pytest.mark.parametrize("kind, hidden", [("invoice_issued", "show_invoices"), ("payment_receipt", "show_invoices"),
                                          ("quote_ready", "show_quotes")])
def test_no_link_to_a_section_the_business_hides(db, settings, world, kind, hidden, locale):
    # A hidden section's pages answer 404: its notices still go out, without a button to that 404.
    shown, _ = compose.compose(db, message_for(db, world, kind, "email", locale), settings)
    section = "/quotes/" if kind == "quote_ready" else "/invoices/"
    assert section in shown.text and section in shown.html
    setattr(world["business"], hidden, False)
    db.flush()
    email, _ = compose.compose(db, message_for(db, world, kind, "email", locale), settings)
    sms, _ = compose.compose(db, message_for(db, world, kind, "sms", locale), settings)
    for text in (email.text, email.html, sms.body):
        assert section not in text
    assert world["invoice"].number in email.text or world["quote"].number in email.text
    assert 'class="button"' not in email.html and "portal:" not in email.text and "client :" not in email.text


BOOKING_KINDS = ["appointment_reminder", "booking_confirmation", "reschedule_confirmation", "cancellation_confirmation"]


@pytest.mark.parametrize("locale", ["en", "fr"])
def test_no_portal_link_when_the_business_has_its_portal_off(db, settings, world, locale):
    # Its portal pages answer 404 ("There is no customer portal at this address"): reminders and
    # confirmations still go out, without a button to that 404 (nor a URL in the calendar file).
    world["business"].portal_enabled = False
    world["business"].show_invoices = world["business"].show_quotes = True
    db.flush()
    for kind in BOOKING_KINDS + ["invoice_issued", "payment_receipt", "quote_ready"]:
        email, _ = compose.compose(db, message_for(db, world, kind, "email", locale), settings)
        sms, _ = compose.compose(db, message_for(db, world, kind, "sms", locale), settings)
        calendars = [a[2].decode() for a in email.attachments or []]
        for text in (email.text, email.html, sms.body, *calendars):
            assert f"/{world['business'].slug}/" not in text, (kind, text)
        assert 'class="button"' not in email.html, kind
        assert "Pro Home Services" in email.text and sms.body


@pytest.mark.parametrize("locale, everything, quotes_only", [
    ("en", "See your upcoming appointments, reschedule or cancel them, and find your invoices and quotes, at any time.",
     "See your upcoming appointments, and find your quotes, at any time."),
    ("fr", "Consultez vos prochains rendez-vous, déplacez-les ou annulez-les, et retrouvez vos factures et "
           "soumissions, à tout moment.",
     "Consultez vos prochains rendez-vous, et retrouvez vos soumissions, à tout moment."),
])
def test_the_invitation_offers_what_the_business_lets_customers_do(db, settings, world, locale, everything,
                                                                   quotes_only):
    email, _ = compose.compose(db, message_for(db, world, "invitation", "email", locale), settings)
    assert everything + "\n\n" in email.text and everything in email.html
    business = world["business"]
    business.allow_reschedule = business.allow_cancel = business.show_invoices = False
    db.flush()
    email, _ = compose.compose(db, message_for(db, world, "invitation", "email", locale), settings)
    assert quotes_only in email.text and quotes_only in email.html


@pytest.mark.parametrize("locale, change, view", [
    ("en", "View or change", "View your appointment:"),
    ("fr", "Voir ou modifier", "Voir votre rendez-vous :"),
])
def test_booking_emails_offer_changes_only_where_the_business_allows_them(db, settings, world, locale, change, view):
    email, _ = compose.compose(db, message_for(db, world, "appointment_reminder", "email", locale), settings)
    assert change in email.text and change in email.html
    world["business"].allow_reschedule = world["business"].allow_cancel = False
    db.flush()
    for kind in ("appointment_reminder", "booking_confirmation", "reschedule_confirmation"):
        email, _ = compose.compose(db, message_for(db, world, kind, "email", locale), settings)
        assert change not in email.text and change not in email.html, kind
        assert view in email.text, kind
