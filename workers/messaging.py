"""Message delivery actors (issue 3)."""
