import pytest

from portal.errors import SettingsError
from portal.settings import load_settings

PROD = {
    "DATABASE_URL": "postgresql://u@h/db",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "SECRET_KEY": "s" * 32,
    "PUBLIC_BASE_URL": "https://portal.example.com/",
    "OPS_TOKEN": "o" * 32,
}


def test_production_settings_read_from_environment():
    s = load_settings(PROD, dev=False)
    assert s.public_base_url == "https://portal.example.com"
    assert s.https and not s.dev_mode
    assert s.email_provider == "outbox" and s.signin_token_ttl_s == 900


@pytest.mark.parametrize("name", ["DATABASE_URL", "REDIS_URL", "SECRET_KEY", "PUBLIC_BASE_URL", "OPS_TOKEN"])
def test_missing_setting_names_the_variable(name):
    env = dict(PROD)
    del env[name]
    with pytest.raises(SettingsError, match=name):
        load_settings(env, dev=False)


@pytest.mark.parametrize(
    "name,value",
    [("DATABASE_URL", "mysql://x"), ("PUBLIC_BASE_URL", "ftp://x"), ("EMAIL_PROVIDER", "smtp"),
     ("SESSION_IDLE_TIMEOUT", "soon"), ("REDIS_URL", "http://x"), ("DELIVERY_LOG_RETENTION_DAYS", "0")],
)
def test_malformed_setting_names_the_variable(name, value):
    with pytest.raises(SettingsError, match=name):
        load_settings({**PROD, name: value}, dev=False)


def test_provider_keys_required_when_provider_chosen():
    with pytest.raises(SettingsError, match="SENDGRID_API_KEY"):
        load_settings({**PROD, "EMAIL_PROVIDER": "sendgrid"}, dev=False)
    with pytest.raises(SettingsError, match="TWILIO_ACCOUNT_SID"):
        load_settings({**PROD, "SMS_PROVIDER": "twilio"}, dev=False)


def test_dev_mode_fills_embedded_defaults():
    s = load_settings({}, dev=True)
    assert s.database_url.startswith("sqlite:///") and s.database_url.endswith("var/portal.db")
    assert s.dev_mode and s.ops_token


def test_private_webhook_addresses_allowed_only_in_dev_mode_by_default():
    assert not load_settings(PROD, dev=False).webhook_allow_private
    assert load_settings({}, dev=True).webhook_allow_private
    assert load_settings({**PROD, "WEBHOOK_ALLOW_PRIVATE": "true"}, dev=False).webhook_allow_private
    assert not load_settings({"WEBHOOK_ALLOW_PRIVATE": "0"}, dev=True).webhook_allow_private
    with pytest.raises(SettingsError, match="WEBHOOK_ALLOW_PRIVATE"):
        load_settings({**PROD, "WEBHOOK_ALLOW_PRIVATE": "maybe"}, dev=False)


def test_sendgrid_webhook_key_is_read_as_sendgrid_shows_it_or_as_pem_and_checked():
    from cryptography.hazmat.primitives import serialization

    from tests.fakes.sendgrid import sendgrid_keypair

    private_key, shown = sendgrid_keypair()  # base64 DER, as SendGrid's settings page shows it
    pem = private_key.public_key().public_bytes(serialization.Encoding.PEM,
                                                serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    for value in (shown, pem, f" {shown}\n", pem.replace("\n", "\\n")):
        settings = load_settings({**PROD, "SENDGRID_WEBHOOK_PUBLIC_KEY": value}, dev=False)
        assert settings.sendgrid_webhook_public_key == shown
    for bad in ("not-a-key", shown[:40]):
        with pytest.raises(SettingsError, match="SENDGRID_WEBHOOK_PUBLIC_KEY"):
            load_settings({**PROD, "SENDGRID_WEBHOOK_PUBLIC_KEY": bad}, dev=False)
