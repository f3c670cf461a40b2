"""Customer-scoped reads and small decisions for the portal: invoices, quotes, attachments.

Every lookup filters by the signed-in customer's id on top of the tenant
session's business filter, and answers ``NotFound`` for anything else, so an
id of another customer or business reveals nothing. A section the business
hides (``show_invoices``, ``show_quotes``, ``show_attachments``) is NotFound too.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal import events
from portal.errors import Conflict, NotFound, ValidationError
from portal.models import Booking, BookingAttachment, Business, Customer, Invoice, Quote, utcnow
from portal.pagination import PER_PAGE, Page, fetch_page
from portal.webhooks_out import record_event

MAX_COMMENT = 2000
SECTION_HIDDEN = "This page does not exist."
INVOICE_MISSING = "This invoice does not exist."
QUOTE_MISSING = "This quote does not exist."


def require_section(business: Business, section: str) -> None:
    flags = {"invoices": business.show_invoices, "quotes": business.show_quotes,
             "attachments": business.show_attachments}
    if not flags[section]:
        raise NotFound(SECTION_HIDDEN)


# -- invoices ---------------------------------------------------------------

def list_invoices(session: Session, business: Business, customer_id: int, page: int = 1,
                  per_page: int = PER_PAGE) -> Page[Invoice]:
    """The customer's invoices, newest first, a page at a time (void ones are not shown)."""
    require_section(business, "invoices")
    stmt = (select(Invoice).where(Invoice.customer_id == customer_id, Invoice.payment_status != "void")
            .order_by(Invoice.issued_on.desc(), Invoice.id.desc()))
    return fetch_page(session, stmt, page, per_page)


def get_owned(session: Session, model, customer_id: int, public_id: str, *, missing: str,
              for_update: bool = False):
    """The signed-in customer's row by its public id, else ``NotFound(missing)``."""
    stmt = select(model).where(model.public_id == str(public_id), model.customer_id == customer_id)
    if for_update:
        stmt = stmt.with_for_update()
    row = session.scalar(stmt)
    if row is None:
        raise NotFound(missing)
    return row


def get_invoice(session: Session, business: Business, customer_id: int, public_id: str) -> Invoice:
    require_section(business, "invoices")
    return get_owned(session, Invoice, customer_id, public_id, missing=INVOICE_MISSING)


def invoice_balance(invoice: Invoice) -> int:
    return max(invoice.amount_cents - (invoice.amount_paid_cents or 0), 0)


def invoice_status(invoice: Invoice, today: date) -> str:
    """paid | unpaid | partially_paid | overdue | void (overdue wins over unpaid/partial)."""
    return invoice.status_on(today)


# -- quotes -----------------------------------------------------------------

def list_quotes(session: Session, business: Business, customer_id: int, page: int = 1,
                per_page: int = PER_PAGE) -> Page[Quote]:
    """The customer's quotes, newest first, a page at a time."""
    require_section(business, "quotes")
    stmt = select(Quote).where(Quote.customer_id == customer_id).order_by(Quote.created_at.desc(), Quote.id.desc())
    return fetch_page(session, stmt, page, per_page)


def get_quote(session: Session, business: Business, customer_id: int, public_id: str, *,
              for_update: bool = False) -> Quote:
    require_section(business, "quotes")
    return get_owned(session, Quote, customer_id, public_id, missing=QUOTE_MISSING, for_update=for_update)


def quote_is_open(quote: Quote, today: date) -> bool:
    return quote.status == "pending" and (quote.valid_until is None or quote.valid_until >= today)


def decide_quote(session: Session, business: Business, customer_id: int, public_id: str, decision: str,
                 comment: str | None = None, *, today: date | None = None) -> Quote:
    """Approve or decline a pending quote; the business hears of it by webhook."""
    if decision not in ("approve", "decline"):
        raise ValidationError("Choose approve or decline.", {"decision": "invalid"})
    comment = (comment or "").strip() or None
    if comment is not None and len(comment) > MAX_COMMENT:
        raise ValidationError(f"The comment must be at most {MAX_COMMENT} characters.", {"comment": "too long"})
    quote = get_quote(session, business, customer_id, public_id, for_update=True)
    now = utcnow()
    today = today or now.date()
    if quote.status != "pending":
        raise Conflict("This quote has already been decided.")
    if not quote_is_open(quote, today):
        raise Conflict("This quote has expired. Please contact us for a new one.")
    quote.status = "approved" if decision == "approve" else "declined"
    quote.decided_at = now
    quote.decision_comment = comment
    session.flush()
    customer = session.get(Customer, customer_id)
    record_event(session, business, f"quote.{quote.status}", {
        "quote": quote.external_id, "number": quote.number, "customer": customer.external_id,
        "comment": comment, "decided_at": now.isoformat().replace("+00:00", "Z"), "source": "portal",
    })
    events.emit(session, business.id, customer_id, "quote_updated", {"quote": quote.public_id, "status": quote.status})
    return quote


# -- attachments ------------------------------------------------------------

def get_attachment(session: Session, business: Business, customer_id: int, booking_public_id: str,
                   attachment_public_id: str) -> BookingAttachment:
    require_section(business, "attachments")
    attachment = session.scalar(
        select(BookingAttachment).join(Booking, Booking.id == BookingAttachment.booking_id)
        .where(BookingAttachment.public_id == str(attachment_public_id),
               Booking.public_id == str(booking_public_id), Booking.customer_id == customer_id))
    if attachment is None:
        raise NotFound("This file does not exist.")
    return attachment
