"""Bulk invitations: ``portal invite`` (issue 6)."""


def register_cli(sub) -> None:
    """Add ``portal invite`` to the CLI (filled in by issue 6)."""
