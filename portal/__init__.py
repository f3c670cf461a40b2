"""Customer Portal: the shared domain (settings, models, database)."""
