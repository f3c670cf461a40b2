"""GET /api/v1/messages: each message with its status history."""

from portal.outbox import record_status
from portal.models import Message
from sqlalchemy import select


async def test_message_log_with_history(api, db, biz):
    await api.put("/customers/c1", {"name": "Jane", "email": "jane@example.com"})
    await api.put("/customers/c2", {"name": "Omar", "email": "omar@example.com"})
    await api.post("/invitations", {"customer": "c1"})
    await api.post("/invitations", {"customer": "c2"})
    db.expire_all()
    message = db.scalar(select(Message).join(Message.customer).where(Message.recipient == "jane@example.com"))
    record_status(db, message, "sent")
    record_status(db, message, "delivered")
    db.commit()

    status, body = await api.get("/messages?customer=c1")
    assert status == 200 and len(body["messages"]) == 1
    entry = body["messages"][0]
    assert entry["kind"] == "invitation" and entry["customer"] == "c1" and entry["status"] == "delivered"
    assert [h["status"] for h in entry["history"]] == ["queued", "sent", "delivered"]
    assert len((await api.get("/messages"))[1]["messages"]) == 2
    assert len((await api.get("/messages?limit=1"))[1]["messages"]) == 1


async def test_skipped_message_shows_its_reason(api, db):
    await api.put("/customers/c1", {"name": "Jane", "email": "jane@example.com"})
    await api.post("/invitations", {"customer": "c1"})
    db.expire_all()
    message = db.scalar(select(Message))
    record_status(db, message, "skipped", "quiet hours: customer opted out of SMS")
    db.commit()
    entry = (await api.get("/messages?customer=c1"))[1]["messages"][0]
    assert entry["status"] == "skipped" and entry["status_reason"].startswith("quiet hours")
    assert entry["history"][-1] == {**entry["history"][-1], "status": "skipped",
                                    "detail": "quiet hours: customer opted out of SMS"}


async def test_unknown_customer_and_bad_limit(api):
    assert (await api.get("/messages?customer=nobody"))[0] == 404
    status, body = await api.get("/messages?limit=abc")
    assert status == 422 and "limit" in body["fields"]
