"""Signing a customer in from tests (shared with the self-service tests).

    csrf = await sign_in(client, db, customer)   # the client now carries the session cookie
    await client.post(f"/{slug}/...", data={"csrf_token": csrf, ...})
"""

from __future__ import annotations

import re

from portal import tokens

CSRF_RE = re.compile(r'name="csrf_token" value="([^"]*)"')


def csrf_from(html: str) -> str:
    match = CSRF_RE.search(html)
    assert match, "no csrf_token field in the page"
    return match.group(1)


def mint_link(db, customer, purpose: str = "signin", ttl_s: int = 900) -> str:
    raw = tokens.mint(db, customer, purpose, ttl_s)
    db.flush()
    return tokens.link_path(customer.business.slug, raw)


async def sign_in(client, db, customer) -> str:
    """Sign ``customer`` in through a real link; returns the session's CSRF token."""
    path = mint_link(db, customer)
    page = await client.get(path)
    assert page.status == 200, await page.text()
    resp = await client.post(path, data={"csrf_token": csrf_from(await page.text())}, allow_redirects=False)
    assert resp.status == 303, await resp.text()
    home = await client.get(f"/{customer.business.slug}/")
    assert home.status == 200, await home.text()
    return csrf_from(await home.text())


def drain_signin_requests(broker, session_factory) -> int:
    """Run the queued ``request_signin_link`` actors in this thread (as a worker would).

    Other queued messages (``deliver_message``...) are dropped: these tests look at the
    outbox rows, not at delivery. Returns how many sign-in requests were run.
    """
    import dramatiq

    import workers.signin as signin_worker

    signin_worker.configure(session_factory=session_factory)
    queue = broker.queues.get("urgent")
    pending = []
    while queue is not None and not queue.empty():
        pending.append(queue.get_nowait())
        queue.task_done()
    ran = 0
    for raw in pending:
        message = dramatiq.Message.decode(raw)
        if message.actor_name == "request_signin_link":
            signin_worker.request_signin_link.fn(*message.args, **message.kwargs)
            ran += 1
    return ran


def queued_signin_requests(broker) -> int:
    import dramatiq

    queue = broker.queues.get("urgent")
    if queue is None:
        return 0
    return sum(1 for raw in list(queue.queue) if dramatiq.Message.decode(raw).actor_name == "request_signin_link")
