"""Live events for open portal pages: published to Redis pub/sub after commit.

The portal's Server-Sent Events endpoint subscribes to ``channel(business_id, customer_id)``.
"""

from __future__ import annotations

import json
import logging

from sqlalchemy.orm import Session

from portal import redis_client
from portal.db import after_commit

log = logging.getLogger(__name__)


def channel(business_id: int, customer_id: int) -> str:
    return f"portal:live:{business_id}:{customer_id}"


def publish(business_id: int, customer_id: int, event_type: str, data: dict | None = None) -> None:
    client = redis_client.get()
    if client is None:
        return
    try:
        client.publish(channel(business_id, customer_id), json.dumps({"type": event_type, "data": data or {}}))
    except Exception:  # a live update is a nicety: never fail the change that caused it
        log.warning("could not publish live event %s", event_type, exc_info=True)


def emit(session: Session, business_id: int, customer_id: int, event_type: str, data: dict | None = None) -> None:
    """Publish once the session's transaction commits (nothing if it rolls back)."""
    after_commit(session, lambda: publish(business_id, customer_id, event_type, data))
