"""The signed-in customer's self-service pages (issue 5).

Each module registers its routes; all of them are behind ``login_required``
and look rows up by public id AND the signed-in customer's id in a tenant
session, so another customer's or business's id is a plain 404.
"""

from aiohttp import web

from portal_web import live
from portal_web.views.selfservice import billing, bookings, payment, preferences


def setup(app: web.Application) -> None:
    bookings.setup(app)
    billing.setup(app)
    payment.setup(app)
    preferences.setup(app)
    live.setup(app)
