"""Dramatiq actors. ``dramatiq workers`` (via ``portal worker``) imports this module.

The broker is installed before any actor module is imported, because
Dramatiq binds actors to the global broker when they are declared.
"""

from portal.broker import setup_broker

broker = setup_broker()

from workers import bulk, messaging, signin, webhooks  # noqa: E402,F401  (declare the actors)
