"""Talk to a running fake provider (stats, modes) from the benchmark process."""

from __future__ import annotations

import json
import urllib.request

from bench import procs


class FakeProvider:
    def __init__(self, delay_ms: int = 100, name: str = "fake-provider"):
        self.port = procs.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = procs.python(name, "bench.fake_provider", ["--port", str(self.port), "--delay-ms", str(delay_ms)])
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
        return {
            "EMAIL_PROVIDER": "sendgrid", "SENDGRID_API_HOST": self.url, "SENDGRID_API_KEY": "x",
            "SMS_PROVIDER": "twilio", "TWILIO_API_BASE": self.url, "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
            "TWILIO_AUTH_TOKEN": "bench-token", "TWILIO_FROM_NUMBER": "+15145550000",
        }

    def stop(self) -> None:
        self.proc.stop()
