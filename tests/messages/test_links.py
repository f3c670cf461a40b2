from types import SimpleNamespace

import pytest

from messages.links import make_unsubscribe_token, parse_unsubscribe_token, unsubscribe_token

SETTINGS = SimpleNamespace(secret_key="test-secret-key-0123456789", public_base_url="http://portal.test")


def test_round_trip():
    message = SimpleNamespace(business_id=3, customer_id=41, category="reminders", channel="sms")
    token = make_unsubscribe_token(SETTINGS, message)
    target = parse_unsubscribe_token(SETTINGS, token)
    assert (target.business_id, target.customer_id, target.category, target.channel) == (3, 41, "reminders", "sms")


@pytest.mark.parametrize("mangle", [
    lambda t: t.replace(".41.", ".42."),          # another customer
    lambda t: t.replace("reminders", "billing"),  # another category
    lambda t: t[:-2],                              # truncated
    lambda t: "",
    lambda t: "../../etc/passwd",
    lambda t: t + "x",
])
def test_tampered_tokens_are_refused(mangle):
    token = unsubscribe_token(SETTINGS.secret_key, 3, 41, "reminders", "email")
    assert parse_unsubscribe_token(SETTINGS, mangle(token)) is None


def test_other_secret_is_refused():
    token = unsubscribe_token("another-secret-key-xxxxxxxx", 3, 41, "reminders", "email")
    assert parse_unsubscribe_token(SETTINGS, token) is None


def test_unknown_category_cannot_be_signed():
    with pytest.raises(ValueError):
        unsubscribe_token(SETTINGS.secret_key, 3, 41, "everything", "email")
