"""The ``portal`` command as an operator uses it (its own SQLite file, real migrations)."""

import pytest

from portal.cli import main
from portal.security import hash_token


@pytest.fixture
def cli_env(tmp_path, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("PORTAL_DEV", "1")
    assert main(["migrate"]) == 0
    return tmp_path


def test_business_create_prints_api_key_alone_on_last_line(cli_env, capsys):
    from sqlalchemy import create_engine, text

    assert main(["business", "create", "--slug", "acme-cleaning", "--name", "Acme Cleaning"]) == 0
    out = capsys.readouterr().out
    key = out.rstrip("\n").splitlines()[-1]
    assert key.startswith("cpk_") and " " not in key
    engine = create_engine(f"sqlite:///{cli_env / 'cli.db'}")
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT api_key_hash FROM business WHERE slug='acme-cleaning'")).scalar()
    engine.dispose()
    assert stored == hash_token(key)  # only the hash is kept


@pytest.mark.parametrize("slug", ["Bad Slug", "-x", "api", ""])
def test_business_create_rejects_bad_slug_on_stderr(cli_env, capsys, slug):
    assert main(["business", "create", f"--slug={slug}", "--name", "X"]) != 0
    captured = capsys.readouterr()
    assert "portal: error:" in captured.err and "Traceback" not in captured.err
    assert "cpk_" not in captured.out


def test_duplicate_slug_is_a_clear_error(cli_env, capsys):
    assert main(["business", "create", "--slug", "dup", "--name", "One"]) == 0
    capsys.readouterr()
    assert main(["business", "create", "--slug", "dup", "--name", "Two"]) == 1
    assert "already exists" in capsys.readouterr().err


def test_demo_is_idempotent(cli_env, capsys):
    assert main(["demo"]) == 0
    first = capsys.readouterr().out
    assert "API key" in first
    assert main(["demo"]) == 0
    assert "API key" not in capsys.readouterr().out


def test_rotate_key_unknown_business(cli_env, capsys):
    assert main(["business", "rotate-key", "--slug", "nope"]) == 1
    assert "no business" in capsys.readouterr().err


def test_port_must_be_a_number(monkeypatch, capsys):
    monkeypatch.setenv("PORT", "eighty")
    assert main(["web"]) != 0
    assert "PORT" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["web", "--port", "99999"], ["dev", "--port", "0"], ["worker", "--processes", "-1"],
                                  ["worker", "--threads", "0"]])
def test_out_of_range_numbers_are_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "error: argument --" in err and "Traceback" not in err


def test_port_from_the_environment_must_be_a_port_number(monkeypatch, capsys):
    monkeypatch.setenv("PORT", "99999")
    assert main(["web"]) != 0
    assert "PORT must be a port number from 1 to 65535" in capsys.readouterr().err


def test_worker_threads_from_the_command_line_reach_the_worker_processes_settings(cli_env, monkeypatch):
    import dramatiq.cli

    from portal.settings import load_settings

    started = []
    monkeypatch.setattr(dramatiq.cli, "main", lambda args: started.append((args.processes, args.threads)) or 0)
    monkeypatch.setenv("WORKER_METRICS", "0")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")  # never reached: Dramatiq does not start
    monkeypatch.setenv("WORKER_THREADS", "16")
    assert main(["worker", "--processes", "3", "--threads", "48"]) == 0
    assert started == [(3, 48)]
    assert load_settings().worker_threads == 48  # what each worker process sizes its pool by
