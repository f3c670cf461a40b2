"""Smoke runs of the benchmark harness with tiny sizes: they prove that
``make bench`` / ``make drills`` work, never how fast anything is (no timing
is asserted anywhere)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from bench import env as benv, notifications, report
from bench.provider_client import FakeProvider

ROOT = Path(__file__).resolve().parents[2]


def run_module(module: str, *args: str, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def child_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PORTAL_BROKER", "DATABASE_URL", "REDIS_URL")}
    env.update(BENCH_LOG_DIR=str(tmp_path / "logs"), PYTHONPATH=str(ROOT), **extra)
    return env


def test_fake_provider_counts_what_the_real_sdks_send():
    from python_http_client.exceptions import ServiceUnavailableError, TooManyRequestsError
    from sendgrid import SendGridAPIClient
    from sendgrid.helpers.mail import CustomArg, Mail
    from twilio.rest import Client

    fake = FakeProvider(delay_ms=5, name="test-fake")
    try:
        mail = Mail(from_email="shop@example.com", to_emails="jane@example.com", subject="Hi",
                    plain_text_content="Hello")
        mail.custom_arg = CustomArg("portal_message_id", "41")
        sg = SendGridAPIClient(api_key="x", host=fake.url)
        assert sg.send(mail).status_code == 202
        assert sg.send(mail).status_code == 202  # the same message twice: a duplicate
        twilio = Client("AC" + "0" * 32, "token")
        twilio.api.base_url = fake.url
        sms = twilio.messages.create(to="+15145551234", from_="+15145550000", body="Hi",
                                     status_callback="http://portal.test/webhooks/twilio/status?message_id=42")
        assert sms.sid.startswith("SM")

        fake.mode("429", retry_after=3)
        with pytest.raises(TooManyRequestsError) as throttled:
            sg.send(mail)
        assert throttled.value.headers["Retry-After"] == "3"
        fake.mode("503")
        with pytest.raises(ServiceUnavailableError):
            sg.send(mail)

        stats = fake.stats(detail=True)
        assert stats["by_key"] == {"41": 2, "42": 1}
        assert (stats["accepted"], stats["unique"], stats["duplicated"], stats["rejected"]) == (3, 2, 1, 2)
    finally:
        fake.stop()


def test_load_generator_against_the_bare_baseline_app(tmp_path):
    from bench import procs

    port = procs.free_port()
    server = procs.python("test-bare-app", "bench.bare_app", ["--port", str(port)])
    try:
        procs.wait_port(port, server)
        out = run_module("bench.loadgen", f"http://127.0.0.1:{port}/x/", "--concurrency", "5", "--requests", "40",
                         "--duration", "30", "--warmup", "2", env=child_env(tmp_path))
    finally:
        server.stop()
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["ok"] == 40 and result["errors"] == {}
    assert {"rps", "p50_ms", "p99_ms"} <= result.keys()


def test_load_generator_refuses_other_hosts(tmp_path):
    out = run_module("bench.loadgen", "http://example.com/", "--requests", "1", env=child_env(tmp_path))
    assert out.returncode != 0 and "only 127.0.0.1" in out.stderr


@pytest.mark.integration
def test_noop_baseline_on_the_real_broker(redis_url, redis_client, monkeypatch, tmp_path):
    monkeypatch.setenv("BENCH_LOG_DIR", str(tmp_path / "logs"))
    env = benv.BenchEnv(database_url="postgresql://unused/none", redis_url=redis_url, engine=None)
    result = notifications.baseline(env, 30, processes=1, threads=2)
    assert result["processed"] == 30 and result["finished"]


def test_tables_and_results_json(tmp_path):
    print(report.table("notifications", [("msg/s", 1234.5), ("ratio", 0.51), ("rows", 10_000), ("x", None)]))
    report.write("latest", {"portal": {"rps": 10}}, tmp_path)
    path = report.write("latest", {"notifications": {"per_s": 5}}, tmp_path)
    assert json.loads(path.read_text()) == {"portal": {"rps": 10}, "notifications": {"per_s": 5}}
    assert report.ratio(50, 100) == 0.5 and report.ratio(None, 100) is None


def test_unreachable_stores_give_one_clear_line(tmp_path):
    from bench import procs

    closed = procs.free_port()
    out = run_module("bench", "--quick", env=child_env(
        tmp_path, BENCH_DATABASE_URL=f"postgresql://postgres@127.0.0.1:{closed}/bench"), timeout=60)
    assert out.returncode == 2
    assert out.stderr.startswith("bench: error: PostgreSQL unreachable") and "Traceback" not in out.stderr
    out = run_module("bench", "nonsense", env=child_env(tmp_path), timeout=60)
    assert out.returncode == 2 and "unknown benchmark 'nonsense'" in out.stderr
    out = run_module("bench.drills", "nonsense", env=child_env(tmp_path), timeout=60)
    assert out.returncode == 2 and "unknown drill 'nonsense'" in out.stderr


@pytest.mark.integration
def test_make_bench_quick(database_url, redis_url, tmp_path):
    """``python -m bench`` end to end with tiny sizes, on this suite's PostgreSQL
    server (database ``<name>_bench``) and Redis db. On SQLite the command
    must refuse with one clear line instead: benchmarks need PostgreSQL."""
    url = make_url(database_url)
    if not url.drivername.startswith("postgresql"):
        out = run_module("bench", "--quick", env=child_env(tmp_path, BENCH_DATABASE_URL=database_url,
                                                             BENCH_REDIS_URL=redis_url), timeout=60)
        assert out.returncode == 2 and "benchmarks need PostgreSQL" in out.stderr
        return
    bench_db = url.set(database=f"{url.database}_bench").render_as_string(hide_password=False)
    results = tmp_path / "results"
    # This suite's own (idle) Redis connections share the db; no worker is left on it.
    out = run_module("bench", "--quick", "--results", str(results), env=child_env(
        tmp_path, BENCH_DATABASE_URL=bench_db, BENCH_REDIS_URL=redis_url, BENCH_ALLOW_SHARED_REDIS="1",
        BENCH_MESSAGES="20",
        BENCH_CUSTOMERS="50", BENCH_BOOKINGS="500", BENCH_REQUESTS="100", BENCH_DURATION_S="5",
        BENCH_SCAN_SMALL="100", BENCH_SCAN_LARGE="1000", BENCH_INVITATIONS="20"))
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    latest = json.loads((results / "latest.json").read_text())
    assert {"per_s", "baseline_per_s", "ratio"} <= latest["notifications"].keys()
    assert latest["notifications"]["pipeline"]["sent_rows"] == 20
    assert latest["notifications"]["pipeline"]["provider_duplicated"] == 0
    assert {"rps", "p50_ms", "p99_ms", "baseline_rps", "ratio"} <= latest["portal"].keys()
    assert latest["portal"]["portal"]["statuses"] == {"200": latest["portal"]["portal"]["requests"]}
    page = latest["portal"]["bookings_page"]
    assert page["ok"] == page["requests"] > 0 and {"rps", "p50_ms", "p99_ms"} <= page.keys()
    assert {"scan_ms_10k", "scan_ms_1m"} <= latest["scheduler"].keys()
    assert {"count", "queue_s", "deliver_s"} <= latest["invitations"].keys()
    assert latest["invitations"]["sent_rows"] == 20
    for table in ("notifications", "portal", "scheduler", "invitations"):
        assert f"\n{table}\n" in "\n" + out.stdout


@pytest.mark.integration
def test_make_drills_quick(database_url, tmp_path):
    """``python -m bench.drills kill_worker`` with a handful of messages: a worker
    is ``kill -9``'d mid-send on a private Redis; the tally must be clean. On
    SQLite the command refuses with one clear line: drills need PostgreSQL."""
    url = make_url(database_url)
    if not url.drivername.startswith("postgresql"):
        out = run_module("bench.drills", "kill_worker", "--quick",
                         env=child_env(tmp_path, BENCH_DATABASE_URL=database_url), timeout=60)
        assert out.returncode == 2 and "benchmarks need PostgreSQL" in out.stderr
        return
    bench_db = url.set(database=f"{url.database}_bench").render_as_string(hide_password=False)
    out = run_module("bench.drills", "kill_worker", "--messages", "8", "--results", str(tmp_path),
                     env=child_env(tmp_path, BENCH_DATABASE_URL=bench_db))
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    drill = json.loads((tmp_path / "drills.json").read_text())["kill_worker"]
    assert (drill["sent"], drill["duplicated"], drill["lost"]) == (8, 0, 0)
    assert "kill_worker" in out.stdout and "duplicated" in out.stdout
