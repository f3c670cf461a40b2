"""The built-in gateway for dev and tests: pick a named test card, no network.

The form offers named choices ("Visa ending 4242"), never a card-number field,
so even in dev no card number reaches this server. One choice is declined, to
try the error path.
"""

from __future__ import annotations

import secrets
from datetime import date
from typing import Mapping

from portal.errors import ValidationError
from portal.models import Customer
from portal.payments import CardDetails, SetupSession

# token -> (label, brand, last4); "declined" fails like a real decline.
TEST_CARDS = {
    "visa_4242": ("Visa ending 4242", "visa", "4242"),
    "mastercard_4444": ("Mastercard ending 4444", "mastercard", "4444"),
    "amex_0005": ("American Express ending 0005", "amex", "0005"),
    "declined_0002": ("Visa ending 0002 (always declined)", "visa", "0002"),
}


class TestGateway:
    __test__ = False  # not a pytest test class
    name = "test"
    template = "portal/payment_method_test.html"

    def begin_setup(self, customer: Customer, *, return_url: str) -> SetupSession:
        return SetupSession(id=f"test_seti_{secrets.token_hex(8)}",
                            choices=[(token, label) for token, (label, _b, _l) in TEST_CARDS.items()])

    def complete_setup(self, customer: Customer, params: Mapping[str, str]) -> CardDetails:
        choice = params.get("test_card") or ""
        if choice not in TEST_CARDS:
            raise ValidationError("Choose a test card.", {"test_card": "required"})
        _label, brand, last4 = TEST_CARDS[choice]
        if choice.startswith("declined"):
            raise ValidationError("Your card was declined. Please use another card.", {"test_card": "declined"})
        return CardDetails(token=f"test_pm_{secrets.token_hex(8)}", brand=brand, last4=last4,
                           exp_month=12, exp_year=date.today().year + 3)
