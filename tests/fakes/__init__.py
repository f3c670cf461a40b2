"""Local fakes of the providers' HTTP APIs (Twilio Messages, SendGrid v3 mail/send).

Each fake is an aiohttp server on 127.0.0.1, port 0, run in a background thread so
the real, blocking SDKs can talk to it. Fixtures live in ``tests.fakes.plugin``.
"""

from tests.fakes.sendgrid import FakeSendGrid, sign_sendgrid_events, sendgrid_event, sendgrid_keypair
from tests.fakes.server import SignedRequest, closed_port_url
from tests.fakes.twilio import FakeTwilio, inbound_sms, sign_twilio, twilio_status_callback

__all__ = [
    "FakeSendGrid", "FakeTwilio", "SignedRequest", "closed_port_url", "inbound_sms", "sendgrid_event",
    "sendgrid_keypair", "sign_sendgrid_events", "sign_twilio", "twilio_status_callback",
]
