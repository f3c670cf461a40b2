"""Email and SMS providers behind one small Protocol (see base.py)."""
