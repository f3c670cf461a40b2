"""The message types (issue 3 fills in each context function)."""

from messages.registry import register


@register("signin_link", "account", urgent=True)
def signin_link(session, message) -> dict:
    return {}


@register("invitation", "account")
def invitation(session, message) -> dict:
    return {}


@register("appointment_reminder", "reminders")
def appointment_reminder(session, message) -> dict:
    return {}


@register("booking_confirmation", "booking_updates")
def booking_confirmation(session, message) -> dict:
    return {}


@register("reschedule_confirmation", "booking_updates")
def reschedule_confirmation(session, message) -> dict:
    return {}


@register("cancellation_confirmation", "booking_updates")
def cancellation_confirmation(session, message) -> dict:
    return {}


@register("invoice_issued", "billing")
def invoice_issued(session, message) -> dict:
    return {}


@register("payment_receipt", "billing")
def payment_receipt(session, message) -> dict:
    return {}


@register("quote_ready", "quotes")
def quote_ready(session, message) -> dict:
    return {}
