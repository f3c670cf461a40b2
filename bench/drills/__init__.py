"""Reliability drills (``make drills`` = ``python -m bench.drills``).

Each drill sends booking confirmations through the real pipeline (PostgreSQL,
a Redis broker, ``portal worker``, ``portal scheduler`` and a fake provider
that counts what it received per message id), breaks something in the middle,
lets the system recover on its own, and then compares the provider's received
set with the Message rows: *duplicated* = messages received more than once,
*lost* = rows the provider never received.
"""
