"""Redirect targets taken from a request stay on this site, under the prefix asked for."""

from __future__ import annotations

import pytest

from portal.security import local_path_under


@pytest.mark.parametrize("value, ok", [
    ("/ops/messages?business=acme", True),
    ("/ops/", True),
    ("/ops", False),  # the prefix itself, without its slash, is the caller's to allow
    ("/opsx/", False),
    ("//evil.example/ops/", False),
    ("/ops//evil.example", False),
    ("/ops/../acme", False),
    ("/ops/\\evil", False),
    ("/ops/\r\nX: y", False),
    ("/ops/a?next=//evil.example", True),  # the query is not a path the browser follows
])
def test_local_path_under(value, ok):
    assert local_path_under(value, "/ops/") is ok
