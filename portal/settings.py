"""One settings object, read from the environment.

Outside dev mode a missing or malformed variable stops start-up with one clear
line naming it (``SettingsError``); ``portal dev`` fills in embedded defaults.
"""

from __future__ import annotations

import base64
import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping
from urllib.parse import urlparse

from portal.errors import SettingsError

ROOT = Path(__file__).resolve().parent.parent


def var_dir() -> Path:
    """Where dev mode keeps its SQLite file, Redis socket and outbox (``PORTAL_VAR_DIR``)."""
    return Path(os.environ.get("PORTAL_VAR_DIR") or ROOT / "var")


@dataclass(frozen=True)
class Settings:
    database_url: str
    redis_url: str
    secret_key: str
    public_base_url: str
    email_provider: str = "outbox"
    sms_provider: str = "outbox"
    sendgrid_api_key: str = ""
    sendgrid_api_host: str = "https://api.sendgrid.com"
    sendgrid_webhook_public_key: str = ""
    sendgrid_from_email: str = "no-reply@example.com"
    twilio_account_sid: str = ""
    twilio_auth_token: str = ""
    twilio_from_number: str = ""
    twilio_api_base: str = "https://api.twilio.com"
    # Seconds to wait for SendGrid / Twilio; a timeout after sending is an "unknown" delivery.
    provider_timeout_s: float = 10.0
    outbox_dir: Path = field(default_factory=lambda: ROOT / "var" / "outbox")
    ops_token: str = ""
    dev_mode: bool = False
    # Sign-in and invitation links (issue 4).
    signin_token_ttl_s: int = 15 * 60
    invitation_token_ttl_s: int = 7 * 24 * 3600
    # Server-side sessions: idle timeout 30 min, absolute timeout 12 h.
    session_idle_timeout_s: int = 30 * 60
    session_absolute_timeout_s: int = 12 * 3600
    # Sign-in link requests: per identifier and per IP, per fixed window (issue 4).
    signin_rate_identifier: int = 5
    signin_rate_ip: int = 20
    signin_rate_window_s: int = 15 * 60
    # Reverse proxies in front of the web app that append to X-Forwarded-For (0: use the socket peer).
    trusted_proxy_hops: int = 0
    # Invitations are not repeated within this window unless forced (issue 6).
    invite_cooldown_s: int = 7 * 24 * 3600
    # Bulk invitations are sent at most this many per second (provider rate limits).
    invite_rate_per_s: int = 5
    # Outbound webhooks to the booking system.
    webhook_timeout_s: int = 10
    webhook_max_attempts: int = 8
    # Let webhook URLs reach private / internal addresses (loopback, 10.x, metadata service).
    # Off in production (SSRF); on in dev mode, where the receiver is usually on 127.0.0.1.
    webhook_allow_private: bool = False
    # Housekeeping (issue 7).
    outbox_grace_s: int = 120
    sending_lease_s: int = 300
    delivery_log_retention_days: int = 180
    # An API Idempotency-Key is remembered this long (a day, as Stripe does), then purged.
    idempotency_key_ttl_s: int = 24 * 3600
    # Payment gateway: "test" (built in) or "stripe".
    payment_gateway: str = "test"
    stripe_api_key: str = ""
    stripe_api_base: str = "https://api.stripe.com"
    stripe_publishable_key: str = ""
    # Threads that run blocking database work for the web app.
    db_threads: int = 8
    # ``portal web`` processes sharing the port (SO_REUSEPORT); 0: one per usable CPU. Dev mode: 1.
    web_processes: int = 0
    worker_processes: int = 2
    # Sends wait ~100 ms on the provider: 16 threads per process measured best on
    # 2 cores (bench/: 2x16 beat 2x8 by ~15%; 2x24 no better, and more threads
    # only add database connections). See docs/performance.md.
    worker_threads: int = 16

    @property
    def https(self) -> bool:
        return self.public_base_url.startswith("https://")

    def replace(self, **changes) -> "Settings":
        return dataclasses.replace(self, **changes)


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, got {raw!r}") from None
    if value < 0:
        raise SettingsError(f"{name} must not be negative, got {raw!r}")
    return value


def _retention_days(env: Mapping[str, str]) -> int:
    # 0 would not mean "keep forever": the purge would delete every message, queued ones included.
    days = _int(env, "DELIVERY_LOG_RETENTION_DAYS", 180)
    if days < 1:
        raise SettingsError(f"DELIVERY_LOG_RETENTION_DAYS must be at least 1 (days), "
                            f"got {env.get('DELIVERY_LOG_RETENTION_DAYS')!r}")
    return days


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if raw == "":
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name} must be true or false, got {env.get(name)!r}")


def _choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    value = env.get(name) or default
    if value not in choices:
        raise SettingsError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


def _url(env: Mapping[str, str], name: str, default: str | None, schemes: tuple[str, ...]) -> str:
    value = env.get(name) or default
    if not value:
        raise SettingsError(f"{name} is not set")
    scheme = urlparse(value).scheme
    if scheme.split("+")[0] not in schemes:
        raise SettingsError(f"{name} must be a {'/'.join(schemes)} URL, got {value!r}")
    return value


def _ec_public_key(env: Mapping[str, str], name: str) -> str:
    """SendGrid's verification key, as its settings page shows it (base64 DER) or as PEM; kept as base64 DER.

    A key that does not parse would make every signed event batch look forged: refuse it here instead.
    """
    raw = (env.get(name) or "").strip().replace("\\n", "\n")  # a PEM pasted into a .env with its newlines as \n
    if not raw:
        return ""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    pem = raw if raw.startswith("-----BEGIN") else f"-----BEGIN PUBLIC KEY-----\n{raw}\n-----END PUBLIC KEY-----"
    try:
        key = serialization.load_pem_public_key(pem.encode())
    except (ValueError, TypeError):
        key = None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise SettingsError(f"{name} must be an ECDSA public key (base64, as SendGrid shows it, or PEM)")
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


def dev_defaults() -> dict[str, str]:
    """Embedded defaults used by ``portal dev`` and the test suite."""
    var = var_dir()
    return {
        "DATABASE_URL": f"sqlite:///{var / 'portal.db'}",
        "SECRET_KEY": "dev-secret-key-not-for-production",
        "PUBLIC_BASE_URL": "http://127.0.0.1:8080",
        "OPS_TOKEN": "dev-ops-token",
        "OUTBOX_DIR": str(var / "outbox"),
    }


def load_settings(env: Mapping[str, str] | None = None, *, dev: bool | None = None) -> Settings:
    env = dict(os.environ if env is None else env)
    if dev is None:
        dev = env.get("PORTAL_DEV", "") in ("1", "true", "yes")
    if dev:
        for key, value in dev_defaults().items():
            env.setdefault(key, value)
    redis_url = env.get("REDIS_URL", "")
    if not redis_url and not dev:
        raise SettingsError("REDIS_URL is not set")
    if redis_url:
        _url(env, "REDIS_URL", None, ("redis", "rediss", "unix"))
    secret = env.get("SECRET_KEY", "")
    if len(secret) < 16:
        raise SettingsError("SECRET_KEY is not set or shorter than 16 characters")
    email_provider = _choice(env, "EMAIL_PROVIDER", "outbox", ("outbox", "sendgrid"))
    sms_provider = _choice(env, "SMS_PROVIDER", "outbox", ("outbox", "twilio"))
    if email_provider == "sendgrid" and not env.get("SENDGRID_API_KEY"):
        raise SettingsError("SENDGRID_API_KEY is not set (EMAIL_PROVIDER=sendgrid)")
    if sms_provider == "twilio":
        for name in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_FROM_NUMBER"):
            if not env.get(name):
                raise SettingsError(f"{name} is not set (SMS_PROVIDER=twilio)")
    payment_gateway = _choice(env, "PAYMENT_GATEWAY", "test", ("test", "stripe"))
    if payment_gateway == "stripe" and not env.get("STRIPE_API_KEY"):
        raise SettingsError("STRIPE_API_KEY is not set (PAYMENT_GATEWAY=stripe)")
    ops_token = env.get("OPS_TOKEN", "")
    if not dev and len(ops_token) < 16:
        raise SettingsError("OPS_TOKEN is not set or shorter than 16 characters")
    return Settings(
        database_url=_url(env, "DATABASE_URL", None, ("sqlite", "postgresql", "postgres")),
        redis_url=redis_url,
        secret_key=secret,
        public_base_url=_url(env, "PUBLIC_BASE_URL", None, ("http", "https")).rstrip("/"),
        email_provider=email_provider,
        sms_provider=sms_provider,
        sendgrid_api_key=env.get("SENDGRID_API_KEY", ""),
        sendgrid_api_host=_url(env, "SENDGRID_API_HOST", "https://api.sendgrid.com", ("http", "https")),
        sendgrid_webhook_public_key=_ec_public_key(env, "SENDGRID_WEBHOOK_PUBLIC_KEY"),
        sendgrid_from_email=env.get("SENDGRID_FROM_EMAIL", "no-reply@example.com"),
        twilio_account_sid=env.get("TWILIO_ACCOUNT_SID", ""),
        twilio_auth_token=env.get("TWILIO_AUTH_TOKEN", ""),
        twilio_from_number=env.get("TWILIO_FROM_NUMBER", ""),
        twilio_api_base=_url(env, "TWILIO_API_BASE", "https://api.twilio.com", ("http", "https")),
        provider_timeout_s=_int(env, "PROVIDER_TIMEOUT", 10) or 10,
        outbox_dir=Path(env.get("OUTBOX_DIR") or var_dir() / "outbox"),
        ops_token=ops_token,
        dev_mode=dev,
        signin_token_ttl_s=_int(env, "SIGNIN_TOKEN_TTL", 15 * 60),
        invitation_token_ttl_s=_int(env, "INVITATION_TOKEN_TTL", 7 * 24 * 3600),
        session_idle_timeout_s=_int(env, "SESSION_IDLE_TIMEOUT", 30 * 60),
        session_absolute_timeout_s=_int(env, "SESSION_ABSOLUTE_TIMEOUT", 12 * 3600),
        signin_rate_identifier=_int(env, "SIGNIN_RATE_IDENTIFIER", 5),
        signin_rate_ip=_int(env, "SIGNIN_RATE_IP", 20),
        signin_rate_window_s=_int(env, "SIGNIN_RATE_WINDOW", 15 * 60) or 1,
        trusted_proxy_hops=_int(env, "TRUSTED_PROXY_HOPS", 0),
        invite_cooldown_s=_int(env, "INVITE_COOLDOWN", 7 * 24 * 3600),
        invite_rate_per_s=_int(env, "INVITE_RATE_PER_S", 5) or 1,
        webhook_timeout_s=_int(env, "WEBHOOK_TIMEOUT", 10) or 1,
        webhook_max_attempts=_int(env, "WEBHOOK_MAX_ATTEMPTS", 8) or 1,
        webhook_allow_private=_bool(env, "WEBHOOK_ALLOW_PRIVATE", dev),
        outbox_grace_s=_int(env, "OUTBOX_GRACE", 120),
        sending_lease_s=_int(env, "SENDING_LEASE", 300),
        delivery_log_retention_days=_retention_days(env),
        idempotency_key_ttl_s=_int(env, "IDEMPOTENCY_KEY_TTL", 24 * 3600) or 1,
        payment_gateway=payment_gateway,
        stripe_api_key=env.get("STRIPE_API_KEY", ""),
        stripe_api_base=_url(env, "STRIPE_API_BASE", "https://api.stripe.com", ("http", "https")),
        stripe_publishable_key=env.get("STRIPE_PUBLISHABLE_KEY", ""),
        db_threads=_int(env, "DB_THREADS", 8) or 1,
        web_processes=_int(env, "WEB_PROCESSES", 1 if dev else 0),
        worker_processes=_int(env, "WORKER_PROCESSES", 2) or 1,
        worker_threads=_int(env, "WORKER_THREADS", 16) or 1,
    )
