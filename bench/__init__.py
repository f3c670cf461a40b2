"""Benchmarks (``make bench`` = ``python -m bench``) and reliability drills
(``make drills`` = ``python -m bench.drills``).

Every figure is measured against a baseline taken in the same run, on the same
machine, so a ratio stays meaningful on a loaded or slower machine.
"""
