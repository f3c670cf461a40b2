"""Bulk test data with INSERT ... SELECT generate_series (PostgreSQL): a million
bookings load in seconds, not the hour an ORM loop would take."""

from __future__ import annotations

import time

from sqlalchemy import text
from sqlalchemy.engine import Engine

from portal.businesses import create_business
from portal.db import make_session_factory, system_session

NOW = "(now() AT TIME ZONE 'utc')"


def business(engine: Engine, slug: str, name: str | None = None) -> int:
    with system_session(make_session_factory(engine)) as session:
        biz, _key = create_business(session, slug, name or slug.replace("-", " ").title())
        session.commit()
        return biz.id


def customers(engine: Engine, business_id: int, n: int, *, phone: bool = False, start: int = 1,
              french_every: int = 5) -> tuple[int, int]:
    """``n`` customers with an email (and a mobile number if ``phone``); returns (min id, max id)."""
    phone_sql = "'+1514' || lpad((g % 10000000)::text, 7, '0')" if phone else "NULL"
    with engine.begin() as conn:
        row = conn.execute(text(f"""
            WITH ins AS (
              INSERT INTO customer (business_id, external_id, name, email, phone, locale, timezone,
                                    email_status, phone_status, created_at, updated_at)
              SELECT :bid, 'c' || g, 'Customer ' || g, 'customer' || g || '@example.com', {phone_sql},
                     CASE WHEN g % CAST(:fr AS int) = 0 THEN 'fr' ELSE 'en' END, 'America/Toronto', 'ok', 'ok', {NOW}, {NOW}
              FROM generate_series(CAST(:start AS int), CAST(:end AS int)) g
              RETURNING id)
            SELECT min(id), max(id) FROM ins"""),
            {"bid": business_id, "start": start, "end": start + n - 1, "fr": french_every}).one()
    return row[0], row[1]


def catalogue(engine: Engine, business_id: int, providers: int = 20) -> tuple[int, int, int]:
    """Service providers and one service; returns (min provider id, max provider id, service id)."""
    with engine.begin() as conn:
        pmin, pmax = conn.execute(text(f"""
            WITH ins AS (
              INSERT INTO service_provider (business_id, external_id, name, working_hours, created_at, updated_at)
              SELECT :bid, 'p' || g, 'Provider ' || g, '{{}}', {NOW}, {NOW} FROM generate_series(1, CAST(:n AS int)) g
              RETURNING id)
            SELECT min(id), max(id) FROM ins"""), {"bid": business_id, "n": providers}).one()
        service = conn.scalar(text(f"""
            INSERT INTO service (business_id, external_id, name, duration_minutes, created_at, updated_at)
            VALUES (:bid, 's1', 'Home cleaning', 60, {NOW}, {NOW}) RETURNING id"""), {"bid": business_id})
    return pmin, pmax, service


def bookings(engine: Engine, business_id: int, n: int, customer_range: tuple[int, int], *,
             first_start_days: float = 3.0, spacing_minutes: int = 1, salt: str = "b") -> tuple[int, int]:
    """``n`` bookings spread over the customers round-robin, one every
    ``spacing_minutes`` from ``first_start_days`` from now (negative: in the
    past, and those are 'completed'). Returns (min id, max id)."""
    pmin, pmax, service = catalogue(engine, business_id)
    cmin, cmax = customer_range
    with engine.begin() as conn:
        row = conn.execute(text(f"""
            WITH ins AS (
              INSERT INTO booking (business_id, public_id, external_id, customer_id, provider_id, service_id,
                                   status, starts_at, ends_at, address, version, reschedule_count,
                                   created_at, updated_at)
              SELECT :bid, substr(md5(CAST(:salt AS text) || g::text), 1, 22), CAST(:salt AS text) || g,
                     CAST(:cmin AS int) + (g % CAST(:ncust AS int)), CAST(:pmin AS int) + (g % CAST(:nprov AS int)), :svc,
                     CASE WHEN t.s < {NOW} THEN 'completed' ELSE 'scheduled' END,
                     t.s, t.s + interval '1 hour', '1 Main St', 1, 0, {NOW}, {NOW}
              FROM generate_series(1, CAST(:n AS int)) g,
                   LATERAL (SELECT date_trunc('minute', {NOW}) + make_interval(mins => CAST(CAST(:first AS float) * 1440 AS int))
                                   + make_interval(mins => g * CAST(:spacing AS int)) AS s) t
              RETURNING id)
            SELECT min(id), max(id) FROM ins"""),
            {"bid": business_id, "salt": salt, "cmin": cmin, "ncust": cmax - cmin + 1, "pmin": pmin,
             "nprov": pmax - pmin + 1, "svc": service, "n": n, "first": first_start_days,
             "spacing": spacing_minutes}).one()
    return row[0], row[1]


def analyze(engine: Engine) -> None:
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))


def timed(label: str, fn, *args, **kwargs):
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    print(f"  {label}: {time.perf_counter() - start:.1f}s", flush=True)
    return result
