"""Typed application keys."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import redis.asyncio as aioredis
from aiohttp import web
from jinja2 import Environment
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from portal.models import Business, Customer, PortalSession
from portal.settings import Settings

SETTINGS = web.AppKey("settings", Settings)
ENGINE = web.AppKey("engine", Engine)
SESSIONS = web.AppKey("sessions", sessionmaker[Session])
REDIS = web.AppKey("redis", aioredis.Redis)
DB_EXECUTOR = web.AppKey("db_executor", ThreadPoolExecutor)
JINJA = web.AppKey("jinja", Environment)

# Per-request state of portal pages, set by portal_web.shell.load_business and
# portal_web.sessions.login_required: ``request[BUSINESS]``, ``request[CUSTOMER]``...
BUSINESS = web.RequestKey("business", Business)
CUSTOMER = web.RequestKey("customer", Customer)
PORTAL_SESSION = web.RequestKey("portal_session", PortalSession)
LOCALE = web.RequestKey("locale", str)
