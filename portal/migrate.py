"""Run Alembic migrations programmatically (``portal migrate``, the release step, tests)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from portal.db import normalise_url

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(database_url: str, connection=None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", normalise_url(database_url).replace("%", "%%"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def upgrade(database_url: str, connection=None) -> None:
    # "heads": feature branches of the migration tree may each add a head.
    command.upgrade(alembic_config(database_url, connection), "heads")


def revision(database_url: str, message: str) -> None:
    command.revision(alembic_config(database_url), message=message, autogenerate=True)
