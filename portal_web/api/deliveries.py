"""The outbound webhooks' delivery log, for the booking system: what was sent, whether its
endpoint took it, and a way to have an event sent again (after an outage outlasted the retries).

    GET  /api/v1/webhook-deliveries?status=failed&limit=50
    POST /api/v1/webhook-deliveries/{event_id}/redeliver
"""

from __future__ import annotations

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.orm import Session

from portal import webhooks_out
from portal.api_schemas import WebhookDeliveryList, WebhookDeliveryOut
from portal.errors import ValidationError
from portal.models import Business, WebhookDelivery
from portal_web.api.base import Route, dump, endpoint, in_business, query_limit, read_json

MAX_LISTED = 200
STATUSES = ("pending", "delivered", "failed")


def delivery_json(d: WebhookDelivery) -> dict:
    return dump(WebhookDeliveryOut, dict(
        event_id=d.event_id, type=d.event_type, status=d.status, attempts=d.attempts,
        last_status_code=d.last_status_code, last_error=d.last_error, created_at=d.created_at,
        next_attempt_at=d.next_attempt_at, delivered_at=d.delivered_at, data=d.payload or {}))


@endpoint
async def list_deliveries(request: web.Request, business: Business) -> web.Response:
    status = request.query.get("status")
    if status is not None and status not in STATUSES:
        raise ValidationError("invalid query", {"status": "pending, delivered or failed"})
    limit = query_limit(request, MAX_LISTED)

    def work(session: Session):
        query = select(WebhookDelivery).order_by(WebhookDelivery.id.desc()).limit(limit)
        if status is not None:
            query = query.where(WebhookDelivery.status == status)
        return dump(WebhookDeliveryList, {"deliveries": [delivery_json(d) for d in session.scalars(query)]})

    return web.json_response(await in_business(request, business, work))


@endpoint
async def redeliver(request: web.Request, business: Business) -> web.Response:
    event_id = request.match_info["event_id"]
    data, _ = await read_json(request)
    if data != {}:
        raise ValidationError("this request takes no body", {"body": "send no body (or {})"})

    def work(session: Session):
        return delivery_json(webhooks_out.redeliver(session, business.id, event_id))

    return web.json_response(await in_business(request, business, work), status=202)


ROUTES: list[Route] = [
    Route("GET", "/webhook-deliveries", list_deliveries,
          "Webhook events sent to your endpoint, newest first, with their delivery state", WebhookDeliveryList,
          query={"status": "pending, delivered or failed", "limit": "1-200, default 50"}, tag="webhooks"),
    Route("POST", "/webhook-deliveries/{event_id}/redeliver", redeliver,
          "Send an event again: a new round of attempts to the current webhook URL, same id and body "
          "(a pending one is left as it is)", WebhookDeliveryOut, statuses=(202,), tag="webhooks", replays=False),
]
