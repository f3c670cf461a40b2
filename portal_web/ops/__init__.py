"""The operator dashboard at ``/ops`` and Prometheus ``/metrics`` (issue 8)."""

from __future__ import annotations

from aiohttp import web

from portal_web.ops import metrics_view, views


def setup(app: web.Application) -> None:
    r = app.router
    r.add_get("/ops/signin", views.signin_form, name="ops_signin")
    r.add_post("/ops/signin", views.signin)
    r.add_post("/ops/signout", views.signout, name="ops_signout")
    r.add_get("/ops", views.overview, name="ops")
    r.add_get("/ops/", views.to_overview)  # else /{slug}/ takes it: "There is no customer portal at this address"
    r.add_get("/ops/messages", views.messages_page, name="ops_messages")
    r.add_get("/ops/dead-letters", views.dead_letters_page, name="ops_dead_letters")
    r.add_post("/ops/dead-letters/{queue}/{id}/retry", views.retry, name="ops_retry")
    r.add_post("/ops/dead-letters/{queue}/{id}/discard", views.discard, name="ops_discard")
    r.add_get("/ops/api/overview", views.api_overview, name="ops_api_overview")
    r.add_get("/ops/api/queues", views.api_queues, name="ops_api_queues")
    r.add_get("/ops/api/throughput", views.api_throughput, name="ops_api_throughput")
    r.add_get("/ops/api/outcomes", views.api_outcomes, name="ops_api_outcomes")
    r.add_get("/ops/api/messages", views.api_messages, name="ops_api_messages")
    r.add_get("/ops/api/dead-letters", views.api_dead_letters, name="ops_api_dead_letters")
    r.add_get("/metrics", metrics_view.metrics, name="metrics")
