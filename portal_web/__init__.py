"""Portal views."""
