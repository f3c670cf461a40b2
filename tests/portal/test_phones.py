"""Phone numbers shown to people and read from what people type."""

from __future__ import annotations

import pytest

from portal import phones


@pytest.mark.parametrize("stored, shown", [
    ("+15145550199", "+1 514-555-0199"),
    ("+33142685300", "+33 1 42 68 53 00"),
    ("", ""),
    (None, ""),
    ("ask for Alex", "ask for Alex"),  # not a number: shown as given
])
def test_display(stored, shown):
    assert phones.display(stored) == shown


@pytest.mark.parametrize("typed, e164", [
    ("514-555-0177", "+15145550177"),
    ("(514) 555 0177", "+15145550177"),
    ("+1 514 555 0177", "+15145550177"),
    ("jane@example.com", None),
    ("bob", None),
    ("555", None),
])
def test_as_e164(typed, e164):
    assert phones.as_e164(typed) == e164


@pytest.mark.parametrize("typed, number", [
    ("+1 514 555 0100", "+15145550100"),
    ("514.555.0100", "+15145550100"),
    ("12", None),
    ("not a number", None),
])
def test_e164(typed, number):
    assert phones.e164(typed) == number
