"""Portal: requests per second, p50 and p99 of a signed-in dashboard
(``GET /{slug}/``) with 10k customers and 1M bookings, 50 concurrent clients,
server run as ``portal web``; baseline: a bare aiohttp handler served the same
way, same load, same run."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request

from sqlalchemy import text

from bench import datagen, env as benv, procs
from bench.report import ratio

SLUG = "bench-portal"


def load_dataset(env: benv.BenchEnv, customers: int, bookings: int) -> tuple[int, tuple[int, int]]:
    benv.wipe(env)
    biz = datagen.business(env.engine, SLUG, "Bench Home Services")
    crange = datagen.timed(f"{customers:,} customers", datagen.customers, env.engine, biz, customers, phone=True)
    # One booking a minute, 80% of them in the past: each customer has about
    # bookings/customers of them, a fifth still to come.
    first = -(bookings * 0.8) / 1440
    datagen.timed(f"{bookings:,} bookings", datagen.bookings, env.engine, biz, bookings, crange,
                  first_start_days=first)
    datagen.timed("invoices and quotes", invoices_and_quotes, env.engine, biz, crange)
    datagen.timed("analyze", datagen.analyze, env.engine)
    return biz, crange


def invoices_and_quotes(engine, business_id: int, crange: tuple[int, int]) -> None:
    """Three invoices and one quote per customer, so the dashboard's other panels have rows."""
    now = datagen.NOW
    with engine.begin() as conn:
        conn.execute(text(f"""
            INSERT INTO invoice (business_id, public_id, external_id, customer_id, number, currency, amount_cents,
                                 amount_paid_cents, issued_on, due_on, payment_status, lines, created_at, updated_at)
            SELECT :bid, substr(md5('i' || c || '-' || k), 1, 22), 'i' || c || '-' || k, c, 'INV-' || c || '-' || k,
                   'CAD', 12000, CASE WHEN k < 3 THEN 12000 ELSE 0 END, current_date - 30 * k, current_date - 30 * k + 30,
                   CASE WHEN k < 3 THEN 'paid' ELSE 'unpaid' END,
                   '[{{"description": "Home cleaning", "quantity": 1, "unit_cents": 12000}}]', {now}, {now}
            FROM generate_series(CAST(:lo AS int), CAST(:hi AS int)) c, generate_series(1, 3) k"""),
            {"bid": business_id, "lo": crange[0], "hi": crange[1]})
        conn.execute(text(f"""
            INSERT INTO quote (business_id, public_id, external_id, customer_id, number, currency, lines, total_cents,
                               status, valid_until, created_at, updated_at)
            SELECT :bid, substr(md5('q' || c), 1, 22), 'q' || c, c, 'Q-' || c, 'CAD',
                   '[{{"description": "Deep clean", "quantity": 1, "unit_cents": 30000}}]', 30000, 'pending',
                   current_date + 30, {now}, {now}
            FROM generate_series(CAST(:lo AS int), CAST(:hi AS int)) c"""),
            {"bid": business_id, "lo": crange[0], "hi": crange[1]})


def session_cookie(env: benv.BenchEnv, business_id: int, customer_id: int) -> tuple[str, str]:
    """A signed-in session made directly in the database, the way sign-in makes
    it (``portal_web.sessions.create_session``): (cookie name, value)."""
    from portal.db import make_session_factory, tenant_session
    from portal.settings import load_settings
    from portal_web import sessions

    settings = load_settings(env.process_env())
    with tenant_session(make_session_factory(env.engine), business_id) as db:
        raw, _row = sessions.create_session(db, business_id, customer_id, settings)
        db.commit()
    return sessions.COOKIE, raw


def check_page(url: str, cookie: tuple[str, str] | None) -> tuple[int, int]:
    """(status, body bytes) of one request, without following redirects."""
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    req = urllib.request.Request(url, headers={"Cookie": f"{cookie[0]}={cookie[1]}"} if cookie else {})
    try:
        with urllib.request.build_opener(NoRedirect).open(req, timeout=30) as resp:
            return resp.status, len(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, 0


def load(url: str, cookie: tuple[str, str] | None, sizes) -> dict:
    argv = [procs.PYTHON, "-m", "bench.loadgen", url, "--concurrency", str(sizes.concurrency),
            "--requests", str(sizes.requests), "--duration", str(sizes.duration_s)]
    if cookie:
        argv += ["--cookie", f"{cookie[0]}={cookie[1]}"]
    out = subprocess.run(argv, cwd=procs.ROOT, capture_output=True, text=True, timeout=sizes.duration_s + 120)
    if out.returncode != 0:
        raise RuntimeError(f"load generator failed: {out.stderr.strip()[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def serve_and_load(name: str, argv_proc, port: int, url: str, cookie, sizes, more: dict[str, str] | None = None) -> dict:
    """Start the server, check ``url`` answers 200, load it; then each of ``more``
    (name -> URL) the same way, on the same server: results under their names."""
    proc = argv_proc()
    try:
        procs.wait_port(port, proc, timeout=60)
        result = {}
        for target, target_url in {"": url, **(more or {})}.items():
            status, size = check_page(target_url, cookie)
            if status != 200:
                raise RuntimeError(f"{name}: GET {target_url} answered {status}, expected 200 (signed in):\n{proc.tail()}")
            loaded = load(target_url, cookie, sizes)
            loaded["page_bytes"] = size
            if target:
                result[target] = loaded
            else:
                result.update(loaded)
        return result
    finally:
        proc.stop()


def web_processes(env: benv.BenchEnv) -> int:
    from portal.settings import load_settings
    from portal_web.serve import process_count

    return process_count(load_settings(env.process_env()))


def run(env: benv.BenchEnv, sizes) -> dict:
    started = time.perf_counter()
    biz, (cmin, cmax) = load_dataset(env, sizes.customers, sizes.bookings)
    load_s = time.perf_counter() - started
    customer = cmin + (cmax - cmin) // 2  # a typical customer: ~bookings/customers bookings
    cookie = session_cookie(env, biz, customer)

    port = procs.free_port()
    portal_url = f"http://127.0.0.1:{port}/{SLUG}/"
    # As the Procfile runs it (``portal web --port $PORT``; WEB_PROCESSES processes), on loopback only.
    # Then, on the same server, the bookings list (the longest page a customer opens; not a target).
    portal = serve_and_load(
        "portal web",
        lambda: procs.portal("web", ["web", "--host", "127.0.0.1", "--port", str(port)], env.process_env()),
        port, portal_url, cookie, sizes, more={"bookings_page": portal_url + "bookings"})
    bookings_page = portal.pop("bookings_page")

    bport = procs.free_port()
    bare_url = f"http://127.0.0.1:{bport}/{SLUG}/"
    bare = serve_and_load("bare aiohttp", lambda: procs.python("bare-app", "bench.bare_app", ["--port", str(bport)]),
                          bport, bare_url, None, sizes)
    with env.engine.connect() as conn:
        own = conn.scalar(text("SELECT count(*) FROM booking WHERE customer_id = :c"), {"c": customer})
    return {
        "rps": portal["rps"], "p50_ms": portal["p50_ms"], "p99_ms": portal["p99_ms"],
        "baseline_rps": bare["rps"], "ratio": ratio(portal["rps"], bare["rps"]),
        "baseline_p50_ms": bare["p50_ms"], "baseline_p99_ms": bare["p99_ms"],
        "customers": sizes.customers, "bookings": sizes.bookings, "customer_bookings": own,
        "bookings_page": {k: bookings_page[k] for k in ("rps", "p50_ms", "p99_ms", "ok", "requests", "page_bytes")},
        "concurrency": sizes.concurrency, "dataset_load_s": round(load_s, 1), "portal": portal, "baseline": bare,
        "web_processes": web_processes(env),
    }


def rows(result: dict) -> list[tuple[str, object]]:
    p, b = result["portal"], result["baseline"]
    return [
        ("dataset", f"{result['customers']:,} customers, {result['bookings']:,} bookings "
                    f"(signed-in customer has {result['customer_bookings']})"),
        ("concurrent clients", result["concurrency"]),
        ("portal web processes (WEB_PROCESSES)", result.get("web_processes")),
        ("dashboard requests ok / errors", f"{p['ok']} / {p['requests'] - p['ok']}"),
        ("dashboard req/s", result["rps"]),
        ("dashboard p50 ms", result["p50_ms"]),
        ("dashboard p99 ms (target < 50)", result["p99_ms"]),
        ("bare aiohttp req/s", result["baseline_rps"]),
        ("bare aiohttp p50 / p99 ms", f"{result['baseline_p50_ms']} / {result['baseline_p99_ms']}"),
        ("ratio (dashboard / bare)", result["ratio"]),
        ("page size bytes", p.get("page_bytes")),
    ] + _bookings_rows(result.get("bookings_page"))


def _bookings_rows(page: dict | None) -> list[tuple[str, object]]:
    if not page:
        return []
    return [("bookings list req/s (same load; no target)", page["rps"]),
            ("bookings list p50 / p99 ms", f"{page['p50_ms']} / {page['p99_ms']}"),
            ("bookings list ok / errors, bytes", f"{page['ok']} / {page['requests'] - page['ok']}, {page['page_bytes']:,}")]
