"""Talk to a running fake provider (stats, modes) from the benchmark process."""

from __future__ import annotations

import base64
import json
import os
import tempfile
import urllib.request

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from bench import procs


def event_keypair() -> tuple[str, str]:
    """(path of a PEM private key for the fake, the public key as SENDGRID_WEBHOOK_PUBLIC_KEY wants it)."""
    key = ec.generate_private_key(ec.SECP256R1())
    fd, path = tempfile.mkstemp(prefix="bench-sg-", suffix=".pem")
    with os.fdopen(fd, "wb") as fh:
        fh.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption()))
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return path, base64.b64encode(der).decode()


class FakeProvider:
    def __init__(self, delay_ms: int = 100, name: str = "fake-provider", events_url: str | None = None):
        """``events_url``: also post signed SendGrid events there (see bench.fake_provider)."""
        self.port = procs.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.webhook_public_key = ""
        args = ["--port", str(self.port), "--delay-ms", str(delay_ms)]
        if events_url:
            key_file, self.webhook_public_key = event_keypair()
            args += ["--events-url", events_url, "--events-key-file", key_file]
        self.proc = procs.python(name, "bench.fake_provider", args)
        if events_url:
            self.proc.temp_paths.append(key_file)
        procs.wait_port(self.port, self.proc)

    def _call(self, path: str, data: dict | None = None) -> dict:
        body = json.dumps(data).encode() if data is not None else None
        req = urllib.request.Request(self.url + path, data=body, method="POST" if body is not None else "GET",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())

    def stats(self, detail: bool = False) -> dict:
        return self._call("/_stats" + ("?detail=1" if detail else ""))

    def mode(self, mode: str, **options) -> dict:
        return self._call("/_mode", {"mode": mode, **options})

    def reset(self) -> None:
        self._call("/_reset", {})

    def provider_env(self) -> dict[str, str]:
        """Point the real SendGrid and Twilio SDKs at this fake."""
        env = {
            "EMAIL_PROVIDER": "sendgrid", "SENDGRID_API_HOST": self.url, "SENDGRID_API_KEY": "x",
            "SMS_PROVIDER": "twilio", "TWILIO_API_BASE": self.url, "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
            "TWILIO_AUTH_TOKEN": "bench-token", "TWILIO_FROM_NUMBER": "+15145550000",
        }
        if self.webhook_public_key:
            env["SENDGRID_WEBHOOK_PUBLIC_KEY"] = self.webhook_public_key
        return env

    def stop(self) -> None:
        self.proc.stop()
