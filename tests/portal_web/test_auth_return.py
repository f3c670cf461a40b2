"""A link from an email opened while signed out: sign-in leads back to that page.

The page goes along as ``?next=`` through the sign-in form, the queued request, the
link in the message and the link page; each step keeps only a path of the same
business's portal (``tokens.safe_return_path``)."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select

from messages import compose
from portal import tokens
from portal.models import Message
from tests.factories import make_booking
from tests.portal_web.signin_support import csrf_from, drain_signin_requests

LINK_RE = re.compile(r"https?://[^\s\"<]+/link/[^\s\"<]+")


@pytest.mark.parametrize("value, kept", [
    ("/pro-home/bookings/abc", True),
    ("/pro-home/invoices/xyz?lang=fr", True),
    ("/pro-home/", True),
    ("/pro-home", False),
    ("/other-business/bookings/abc", False),
    ("https://evil.example/pro-home/", False),
    ("//evil.example/pro-home/", False),
    ("/pro-home//evil.example", False),
    ("/pro-home/bookings/a%2F%2Fb", True),  # percent-encoded: stays a path under /pro-home/
    ("/pro-home/../other/", False),
    ("/pro-home/\\evil", False),
    ("/pro-home/bookings#x", False),
    ("/pro-home/bookings\r\nSet-Cookie: x=1", False),
    ("/pro-home/réservations", False),
    ("/pro-home/link/sometoken", False),
    ("/pro-home/signin", False),
    ("/pro-home/connexion?next=/pro-home/", False),
    ("/pro-home/signout", False),
    ("/pro-home/" + "a" * 600, False),
    ("", False),
    (None, False),
])
def test_only_pages_of_the_same_portal_are_returned_to(value, kept):
    assert tokens.safe_return_path("pro-home", value) == (value if kept else None)


def test_the_link_carries_a_safe_return_path_only():
    assert tokens.link_path("pro-home", "tok") == "/pro-home/link/tok"
    assert tokens.link_path("pro-home", "tok", "/pro-home/bookings/a?b=c") == (
        "/pro-home/link/tok?next=/pro-home/bookings/a%3Fb%3Dc")
    assert tokens.link_path("pro-home", "tok", "https://evil.example/") == "/pro-home/link/tok"


async def test_signed_out_visitor_of_a_booking_lands_on_it_after_signing_in(
        client, db, settings, stub_broker, session_factory, business, jane):
    booking = make_booking(db, jane)
    db.commit()
    page = f"/pro-home/bookings/{booking.public_id}"

    resp = await client.get(page, allow_redirects=False)
    assert resp.status == 303
    signin = resp.headers["Location"]
    assert urlsplit(signin).path == "/pro-home/signin" and parse_qs(urlsplit(signin).query) == {"next": [page]}

    form = await client.get(signin)
    html = await form.text()
    action = re.search(r'<form method="post" action="([^"]+)"', html).group(1).replace("&amp;", "&")
    assert parse_qs(urlsplit(action).query) == {"next": [page]}
    assert "/pro-home/connexion?next=" in html  # switching language keeps it
    sent = await client.post(action, data={"identifier": "jane.doe@example.com", "csrf_token": csrf_from(html)})
    assert sent.status == 200

    assert drain_signin_requests(stub_broker, session_factory) == 1
    db.expire_all()
    message = db.scalar(select(Message).where(Message.customer_id == jane.id, Message.kind == "signin_link"))
    assert message.params["next"] == page
    email, _ = compose.compose(db, message, settings)
    link = LINK_RE.search(email.text).group(0)
    assert parse_qs(urlsplit(link).query) == {"next": [page]}

    path = link.removeprefix(settings.public_base_url)
    shown = await client.get(path)
    html = await shown.text()
    action = re.search(r'<form method="post" action="([^"]+)"', html).group(1).replace("&amp;", "&")
    assert action == path
    resp = await client.post(action, data={"csrf_token": csrf_from(html)}, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == page
    assert (await client.get(page)).status == 200
    # Signed in now: the sign-in page itself sends on to the page asked for.
    again = await client.get(signin, allow_redirects=False)
    assert again.status == 303 and again.headers["Location"] == page


async def test_a_foreign_or_missing_return_path_leads_home(client, db, stub_broker, session_factory, business, jane):
    home = await client.get("/pro-home/", allow_redirects=False)
    assert home.headers["Location"] == "/pro-home/signin"  # the home page needs no return path
    raw = tokens.mint(db, jane, "signin", 900)
    db.commit()
    for nxt in ("https://evil.example/", "//evil.example", "/other/bookings"):
        path = f"/pro-home/link/{raw}"
        shown = await client.get(path, params={"next": nxt})
        html = await shown.text()
        assert f'action="{path}"' in html  # the unsafe value is dropped, not passed on
    resp = await client.post(f"/pro-home/link/{raw}?next=https://evil.example/",
                             data={"csrf_token": csrf_from(html)}, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/pro-home/"


async def test_an_api_client_gets_a_401_not_a_return_path(client, business):
    resp = await client.get("/pro-home/bookings", headers={"Accept": "application/json"}, allow_redirects=False)
    assert resp.status == 401
