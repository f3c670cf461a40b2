"""The ``portal`` command.

User mistakes print one line on stderr and exit non-zero; never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from portal.errors import PortalError

DEFAULT_PORT = 8080


def _port(args) -> int:
    if args.port is not None:
        return args.port
    raw = os.environ.get("PORT")
    if raw:
        try:
            return _port_number(raw)
        except argparse.ArgumentTypeError as exc:
            raise PortalError(f"PORT {exc}") from None
    return DEFAULT_PORT


def _port_number(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number from 1 to 65535, got {raw!r}")
    return value


def _settings():
    from portal.settings import load_settings

    return load_settings()


def _admin_settings():
    """Settings for one-off admin commands (migrate, demo, business, invite).

    With no DATABASE_URL they act on the dev database that ``portal dev``
    uses, and say so, so ``portal business create`` works right after
    ``make dev``; the long-running processes never guess.
    """
    from portal.settings import load_settings, var_dir

    if os.environ.get("DATABASE_URL"):
        return load_settings()
    print("portal: DATABASE_URL is not set; using the dev database under var/", file=sys.stderr)
    sock = var_dir() / "redis" / "redis.sock"
    if not os.environ.get("REDIS_URL") and sock.exists():
        os.environ["REDIS_URL"] = f"unix://{sock}"
    return load_settings(dev=True)


def _session_factory(settings):
    from portal.db import make_engine, make_session_factory

    return make_session_factory(make_engine(settings.database_url))


def cmd_migrate(args) -> int:
    from portal.migrate import upgrade

    settings = _admin_settings()
    upgrade(settings.database_url)
    print("database is up to date")
    return 0


def cmd_demo(args) -> int:
    from portal.db import system_session
    from portal.demo import seed

    factory = _session_factory(_admin_settings())
    with system_session(factory) as session:
        business, api_key = seed(session)
        session.commit()
    print(f"demo business ready: /{business.slug}/signin")
    if api_key:
        print(f"API key (shown once): {api_key}")
    return 0


def cmd_business_create(args) -> int:
    from portal.businesses import create_business
    from portal.db import system_session

    factory = _session_factory(_admin_settings())
    with system_session(factory) as session:
        business, api_key = create_business(session, args.slug, args.name)
        session.commit()
    print(f"created business {business.slug} ({business.name})")
    print("API key, shown once; keep it secret:")
    print(api_key)
    return 0


def cmd_business_rotate_key(args) -> int:
    from sqlalchemy import select

    from portal.businesses import rotate_api_key
    from portal.db import system_session
    from portal.errors import NotFound
    from portal.models import Business

    factory = _session_factory(_admin_settings())
    with system_session(factory) as session:
        business = session.scalar(select(Business).where(Business.slug == args.slug))
        if business is None:
            raise NotFound(f"no business with slug {args.slug!r}")
        api_key = rotate_api_key(session, business)
        session.commit()
    print(f"rotated the API key of {args.slug}; the old key no longer works")
    print(api_key)
    return 0


def cmd_invite(args) -> int:
    # Settings first: in dev they point REDIS_URL at the dev Redis, and importing
    # ``workers`` installs the broker from it (before, a stub that sent nothing).
    settings = _admin_settings()
    factory = _session_factory(settings)
    from workers.bulk import cmd_invite as run

    return run(args, settings, factory)


def cmd_web(args) -> int:
    from portal_web.serve import run

    port = _port(args)
    return run(_settings(), port=port, host=args.host)


def cmd_worker(args) -> int:
    from dramatiq.cli import main as dramatiq_main
    from dramatiq.cli import make_argument_parser

    from portal.broker import prepare_worker_env

    settings = _settings()
    os.environ.setdefault("REDIS_URL", settings.redis_url)
    processes, threads = args.processes or settings.worker_processes, args.threads or settings.worker_threads
    # The worker processes read their settings afresh: each sizes its database pool by this.
    os.environ["WORKER_THREADS"] = str(threads)
    argv = ["workers", "--processes", str(processes), "--threads", str(threads)]
    if prepare_worker_env():  # Dramatiq's Prometheus middleware (WORKER_METRICS)
        # Worker processes are forked from this one, which already imported the
        # actors and prometheus_client without metrics: start Dramatiq afresh.
        os.execv(sys.executable, [sys.executable, "-m", "dramatiq", *argv])
    return dramatiq_main(make_argument_parser().parse_args(argv)) or 0


def cmd_scheduler(args) -> int:
    from scheduler.main import run

    run(_settings())
    return 0


def cmd_dev(args) -> int:
    from portal.devserver import run_dev

    return run_dev(port=_port(args), host=args.host)


def _positive_int(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, got {raw!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="portal", description="Customer Portal: messaging workers and portal")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("dev", help="run web, worker and scheduler on embedded defaults")
    p.add_argument("--port", type=_port_number)
    p.add_argument("--host", default="127.0.0.1")
    p.set_defaults(func=cmd_dev)

    p = sub.add_parser("web", help="serve the portal, API, webhooks and /ops")
    p.add_argument("--port", type=_port_number)
    p.add_argument("--host", default="0.0.0.0")
    p.set_defaults(func=cmd_web)

    p = sub.add_parser("worker", help="run the Dramatiq workers")
    p.add_argument("--processes", type=_positive_int)
    p.add_argument("--threads", type=_positive_int)
    p.set_defaults(func=cmd_worker)

    sub.add_parser("scheduler", help="plan and enqueue due reminders, housekeeping").set_defaults(func=cmd_scheduler)
    sub.add_parser("migrate", help="apply database migrations").set_defaults(func=cmd_migrate)
    sub.add_parser("demo", help="create or refresh the demo business").set_defaults(func=cmd_demo)

    biz = sub.add_parser("business", help="manage businesses").add_subparsers(dest="action", metavar="ACTION")
    biz.required = True
    p = biz.add_parser("create", help="create a business and print its API key")
    p.add_argument("--slug", required=True)
    p.add_argument("--name", required=True)
    p.set_defaults(func=cmd_business_create)
    p = biz.add_parser("rotate-key", help="replace a business's API key")
    p.add_argument("--slug", required=True)
    p.set_defaults(func=cmd_business_rotate_key)

    p = sub.add_parser("invite", help="invite a business's customers to the portal",
                       description="Invite one customer or all of them. Customers invited within INVITE_COOLDOWN "
                                   "are skipped unless --force. An interrupted --all run continues where it "
                                   "stopped when run again.")
    p.add_argument("slug", help="the business's slug")
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--all", action="store_true", help="every customer of the business")
    who.add_argument("--customer", metavar="ID", help="one customer, by the booking system's id")
    p.add_argument("--force", action="store_true", help="invite even customers invited within the cooldown")
    p.add_argument("--restart", action="store_true", help="ignore a saved checkpoint and start from the first customer")
    p.add_argument("--rate", type=_positive_int, metavar="N", help="sends per second (default INVITE_RATE_PER_S)")
    p.set_defaults(func=cmd_invite)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        # Alembic lists each plugin it loads at INFO on every migrate; the migrations it runs stay visible.
        logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    try:
        return args.func(args)
    except PortalError as exc:
        print(f"portal: error: {exc}", file=sys.stderr)
        return 2 if exc.status == 400 else 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # an operational failure (database down, ...): one line, not a traceback
        from sqlalchemy.exc import OperationalError

        if isinstance(exc, OperationalError):
            print(f"portal: error: database unavailable: {exc.orig}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
