"""Message types: each a small function returning its template context."""
