"""The shared domain model. Import models from here."""

from portal.models.auth import MagicLinkToken, PortalSession
from portal.models.base import Base, TenantScoped, utcnow
from portal.models.billing import Invoice, Quote
from portal.models.booking import Booking, BookingAttachment, Reminder, Service, ServiceProvider
from portal.models.business import Business
from portal.models.customer import CommunicationPreference, Consent, Customer, PaymentMethod, Suppression
from portal.models.integration import IdempotencyRecord, WebhookDelivery
from portal.models.messaging import Message, MessageEvent, ProcessedEvent

__all__ = [
    "Base", "TenantScoped", "utcnow", "Business", "Customer", "PaymentMethod",
    "CommunicationPreference", "Consent", "Suppression", "ServiceProvider", "Service",
    "Booking", "BookingAttachment", "Reminder", "Invoice", "Quote", "Message",
    "MessageEvent", "ProcessedEvent", "MagicLinkToken", "PortalSession",
    "WebhookDelivery", "IdempotencyRecord",
]
