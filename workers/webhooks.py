"""Outbound webhook delivery actors (issue 6)."""
