"""Invoices and quotes (each only when the business shows them; otherwise every URL is 404).

    GET  /{slug}/invoices
    GET  /{slug}/invoices/{public_id}
    GET  /{slug}/invoices/{public_id}/print      a clean printable page
    GET  /{slug}/quotes
    GET  /{slug}/quotes/{public_id}
    POST /{slug}/quotes/{public_id}/decision     decision=approve|decline, comment
"""

from __future__ import annotations

from urllib.parse import quote as urlquote

from aiohttp import web
from sqlalchemy.orm import Session

from portal import selfservice as ss
from portal.errors import Conflict, ValidationError
from portal.models import Business, utcnow
from portal.pagination import page_number
from portal_web.keys import BUSINESS
from portal_web.sessions import login_required
from portal_web.shell import render_portal
from portal_web.views.selfservice.common import (
    PUBLIC_ID,
    SLUG,
    field,
    form_data,
    in_customer_tenant,
    notice,
    redirect,
    to_form_page,
    tr,
)

INVOICE_STATUS_LABELS = {"paid": "Paid", "unpaid": "Unpaid", "overdue": "Overdue",
                         "partially_paid": "Partially paid", "void": "Void"}
QUOTE_STATUS_LABELS = {"pending": "Awaiting your answer", "approved": "Approved", "declined": "Declined",
                       "expired": "Expired"}


def _today(request) -> object:
    # "Overdue" is judged by the business's calendar day, not the server's.
    from zoneinfo import ZoneInfo

    try:
        return utcnow().astimezone(ZoneInfo(request[BUSINESS].timezone)).date()
    except (KeyError, ValueError):
        return utcnow().date()


def _invoice_row(invoice, today) -> dict:
    return {"invoice": invoice, "status": ss.invoice_status(invoice, today), "balance": ss.invoice_balance(invoice)}


def _labels(request) -> dict:
    return {"invoice_status_labels": {k: tr(request, v) for k, v in INVOICE_STATUS_LABELS.items()},
            "quote_status_labels": {k: tr(request, v) for k, v in QUOTE_STATUS_LABELS.items()}}


@login_required
async def invoices_list(request: web.Request) -> web.StreamResponse:
    today = _today(request)
    number = page_number(request.query.get("page"))

    def load(db: Session, business: Business, customer_id: int):
        page = ss.list_invoices(db, business, customer_id, number)
        return page, [_invoice_row(i, today) for i in page.items]

    page, rows = await in_customer_tenant(request, load)
    return render_portal(request, "portal/invoices.html", {"rows": rows, "page": page, **_labels(request)})


def _invoice(template: str):
    @login_required
    async def handler(request: web.Request) -> web.StreamResponse:
        today = _today(request)
        public_id = request.match_info["public_id"]
        row = await in_customer_tenant(request, lambda db, b, cid: _invoice_row(
            ss.get_invoice(db, b, cid, public_id), today))
        return render_portal(request, template, {**row, **_labels(request)})

    return handler


def _quote_context(db: Session, business: Business, customer_id: int, public_id: str, today) -> dict:
    quote = ss.get_quote(db, business, customer_id, public_id)
    status = quote.status
    if status == "pending" and not ss.quote_is_open(quote, today):
        status = "expired"
    return {"quote": quote, "status": status, "can_decide": status == "pending"}


@login_required
async def quotes_list(request: web.Request) -> web.StreamResponse:
    today = _today(request)
    number = page_number(request.query.get("page"))

    def load(db: Session, business: Business, customer_id: int):
        page = ss.list_quotes(db, business, customer_id, number)
        rows = []
        for q in page.items:
            status = "expired" if q.status == "pending" and not ss.quote_is_open(q, today) else q.status
            rows.append({"quote": q, "status": status})
        return page, rows

    page, rows = await in_customer_tenant(request, load)
    return render_portal(request, "portal/quotes.html", {"rows": rows, "page": page, **_labels(request)})


@login_required
async def quote_detail(request: web.Request) -> web.StreamResponse:
    today = _today(request)
    public_id = request.match_info["public_id"]
    ctx = await in_customer_tenant(request, lambda db, b, cid: _quote_context(db, b, cid, public_id, today))
    return render_portal(request, "portal/quote.html", {**ctx, **_labels(request), "notice": notice(request)})


@login_required
async def quote_decision(request: web.Request) -> web.StreamResponse:
    today = _today(request)
    public_id = request.match_info["public_id"]
    form = await form_data(request)
    comment = ""
    try:
        decision = field(form, "decision", max_length=20)
        comment = field(form, "comment", max_length=ss.MAX_COMMENT)
        quote = await in_customer_tenant(request, lambda db, b, cid: ss.decide_quote(
            db, b, cid, public_id, decision, comment, today=today))
    except (Conflict, ValidationError) as exc:
        ctx = await in_customer_tenant(request, lambda db, b, cid: _quote_context(db, b, cid, public_id, today))
        return render_portal(request, "portal/quote.html", {**ctx, **_labels(request), "comment": comment,
                                                            "error": tr(request, str(exc))}, status=exc.status)
    raise redirect(f"/{request[BUSINESS].slug}/quotes/{urlquote(public_id)}?done={quote.status}")


def setup(app: web.Application) -> None:
    invoice = f"/{SLUG}/invoices/{{public_id:{PUBLIC_ID}}}"
    app.router.add_get(f"/{SLUG}/invoices", invoices_list, name="invoices")
    app.router.add_get(invoice, _invoice("portal/invoice.html"), name="invoice")
    app.router.add_get(f"{invoice}/print", _invoice("portal/invoice_print.html"), name="invoice_print")
    quote = f"/{SLUG}/quotes/{{public_id:{PUBLIC_ID}}}"
    app.router.add_get(f"/{SLUG}/quotes", quotes_list, name="quotes")
    app.router.add_get(quote, quote_detail, name="quote")
    app.router.add_post(f"{quote}/decision", quote_decision)
    app.router.add_get(f"{quote}/decision", to_form_page)
