"""Provider webhooks (and the one-click unsubscribe page their emails link to).

    POST /webhooks/twilio/status     Twilio message status callbacks (?mid=<our message id>)
    POST /webhooks/twilio/inbound    inbound SMS: STOP/START/HELP keywords, answered with TwiML
    POST /webhooks/sendgrid/events   SendGrid's signed Event Webhook
    GET/POST /unsubscribe/{token}    RFC 8058 one-click unsubscribe (portal_web.unsubscribe)

Every request is verified before anything is read from it: a forged, stale or
malformed one gets 403/400 and changes nothing; a genuine one about a message we
do not know gets 200 and changes nothing. Webhooks are cross-tenant, so handlers
run in a system session and scope their writes to the message's business.
"""

from __future__ import annotations

from aiohttp import web

from messages.providers.sendgrid import EVENTS_PATH
from messages.providers.twilio import INBOUND_PATH, STATUS_PATH
from portal_web import unsubscribe
from portal_web.webhooks import sendgrid, twilio


def setup(app: web.Application) -> None:
    app.router.add_post(STATUS_PATH, twilio.status_callback, name="twilio_status")
    app.router.add_post(INBOUND_PATH, twilio.inbound, name="twilio_inbound")
    app.router.add_post(EVENTS_PATH, sendgrid.events, name="sendgrid_events")
    unsubscribe.setup(app)
