"""``portal invite``: progress, cooldown, resumable after an interruption, throttled."""

import pytest
from sqlalchemy import func, select

from portal import redis_client as portal_redis
from portal.cli import main
from portal.models import Customer, Message, utcnow
from tests.factories import make_business, make_customer
from workers import bulk


@pytest.fixture
def wired(monkeypatch, session_factory, settings, stub_broker, redis_url, redis_client):
    fast = settings.replace(invite_rate_per_s=1000)
    monkeypatch.setattr(bulk._config, "session_factory", session_factory)
    monkeypatch.setattr(bulk._config, "settings", fast)
    monkeypatch.setattr(bulk._config, "limiters", {})
    monkeypatch.setattr(portal_redis, "_client", None)
    portal_redis.configure(redis_url)  # checkpoints and the shared rate limit live in Redis
    monkeypatch.setattr("portal.cli._admin_settings", lambda: fast)
    monkeypatch.setattr("portal.cli._session_factory", lambda s: session_factory)
    monkeypatch.setattr(bulk, "configure", lambda **kw: None)  # keep the test's factory
    return fast


@pytest.fixture
def shop(db):
    business = make_business(db, slug="shop")
    customers = [make_customer(db, business, external_id=f"c{i}") for i in range(6)]
    customers[1].email = customers[1].phone = None  # nothing to send to
    customers[2].last_invited_at = utcnow()  # invited recently
    db.commit()
    return business, customers


def invited(db):
    db.expire_all()
    rows = db.execute(select(Customer.external_id, func.count(Message.id)).join(Message, Message.customer_id == Customer.id)
                      .where(Message.kind == "invitation", Message.status != "skipped").group_by(Customer.external_id)).all()
    return dict(rows)


def test_invite_all_with_progress(wired, shop, db, capsys):
    assert main(["invite", "shop", "--all"]) == 0
    out, err = capsys.readouterr()
    assert "invited 4 of 6; skipped 1 invited recently, 1 no channel" in out
    assert "inviting shop" in err and "6/6" in err  # the tqdm bar
    assert invited(db) == {"c0": 1, "c3": 1, "c4": 1, "c5": 1}
    # Run again: everyone is within the cooldown now.
    assert main(["invite", "shop", "--all"]) == 0
    assert "invited 0 of 6" in capsys.readouterr().out
    assert invited(db) == {"c0": 1, "c3": 1, "c4": 1, "c5": 1}


def test_one_customer_and_force(wired, shop, db, capsys):
    assert main(["invite", "shop", "--customer", "c2"]) == 0
    assert "invited 0 of 1; skipped 1 invited recently" in capsys.readouterr().out
    assert main(["invite", "shop", "--customer", "c2", "--force"]) == 0
    assert "invited 1 of 1" in capsys.readouterr().out
    assert invited(db) == {"c2": 1}


def test_interrupted_run_resumes_where_it_stopped(wired, shop, db, monkeypatch, capsys):
    business, customers = shop
    real_invite = bulk.invite
    calls, interrupt = [], ["c4"]

    def flaky(session, customer, **kw):
        calls.append(customer.external_id)
        if customer.external_id in interrupt:
            interrupt.clear()
            raise KeyboardInterrupt  # Ctrl-C half way
        return real_invite(session, customer, **kw)

    monkeypatch.setattr(bulk, "invite", flaky)
    assert main(["invite", "shop", "--all", "--force"]) == 130
    assert "run the same command again" in capsys.readouterr().err
    assert invited(db) == {"c0": 1, "c2": 1, "c3": 1}
    checkpoint = bulk.Checkpoint(portal_redis.get(), business.id, force=True).load()
    assert checkpoint["last_id"] == customers[3].id

    calls.clear()
    assert main(["invite", "shop", "--all", "--force"]) == 0
    assert calls == ["c4", "c5"]  # continued after c3; even --force did not re-invite the first ones
    assert "invited 2 of 2" in capsys.readouterr().out
    assert invited(db) == {"c0": 1, "c2": 1, "c3": 1, "c4": 1, "c5": 1}
    assert bulk.Checkpoint(portal_redis.get(), business.id, force=True).load() is None  # finished: cleared

    calls.clear()
    assert main(["invite", "shop", "--all", "--force", "--restart"]) == 0
    assert len(calls) == 6


def test_unknown_slug_or_customer_is_a_clear_error(wired, shop, capsys):
    assert main(["invite", "nope", "--all"]) == 1
    assert capsys.readouterr().err.strip().endswith("portal: error: no business with slug 'nope'")
    assert main(["invite", "shop", "--customer", "ghost"]) == 1
    assert "no customer 'ghost'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["invite", "shop"])  # neither --all nor --customer
    assert exc.value.code == 2


@pytest.mark.parametrize("rate", ["0", "-5", "fast"])
def test_a_rate_that_is_not_a_positive_number_is_refused(wired, shop, db, capsys, rate):
    with pytest.raises(SystemExit) as exc:
        main(["invite", "shop", "--all", f"--rate={rate}"])
    assert exc.value.code == 2 and "--rate" in capsys.readouterr().err
    assert invited(db) == {}


def test_local_bucket_spaces_sends(monkeypatch):
    clock = [100.0]
    sleeps = []
    monkeypatch.setattr(bulk.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(bulk.time, "sleep", lambda s: sleeps.append(round(s, 3)))
    bucket = bulk.LocalBucket(4)
    for _ in range(3):
        bucket.wait()
    assert sleeps == [0.25, 0.5]


def test_shared_limit_spaces_slots_across_processes(redis_client, monkeypatch):
    monkeypatch.setattr(bulk.time, "time", lambda: 1_000.0)  # frozen clock
    first, second = bulk.SharedLimit(redis_client, 4), bulk.SharedLimit(redis_client, 4)  # two "processes"
    waits = [first.reserve(), second.reserve(), first.reserve(), second.reserve()]
    assert [round(w, 3) for w in waits] == [0.0, 0.25, 0.5, 0.75]


def test_invite_right_after_make_dev_queues_on_the_dev_redis(tmp_path):
    """No DATABASE_URL or REDIS_URL: the command finds the dev Redis, and its jobs must go there. They went to a
    stub broker instead, so they waited for the sweeper and then all went out at once, past the rate limit."""
    import os
    import subprocess
    import sys

    import redis

    from portal.devstack import EmbeddedRedis

    var = tmp_path / "var"
    server = EmbeddedRedis(var / "redis").start()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "PORTAL_BROKER")}
    env["PORTAL_VAR_DIR"] = str(var)

    def portal(*argv):
        done = subprocess.run([sys.executable, "-m", "portal", *argv], env=env, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout

    try:
        portal("migrate")
        portal("demo")
        out = portal("invite", "pro-home-services", "--all", "--force", "--rate", "1000")
        queued = redis.Redis(unix_socket_path=str(server.socket)).hlen("portal:messages.msgs")
    finally:
        server.stop()
    invited = int(out.split()[1])  # "invited N of M"
    assert invited >= 2 and queued == invited
