"""Which URLs the portal will call on a business's behalf (outbound webhooks).

A webhook URL is chosen by the business, so without a check it could point the
worker at our own network: 127.0.0.1, 10.x, the cloud metadata service at
169.254.169.254. ``check_url`` accepts http(s) URLs whose host resolves only to
global unicast addresses. It is run when the URL is set and again just before
each post, since DNS can change in between (rebinding). The post itself goes
through ``guarded_session()``, which checks the address each connection
actually reached, before a byte of the request is sent: the connect resolves
the name once more, and that answer can differ from the one checked.

The host is taken the way ``requests`` will parse it, not with ``urllib.parse``:
the two disagree on odd URLs (``http://a\\@127.0.0.1/``), and only the host
``requests`` connects to matters.
"""

from __future__ import annotations

import ipaddress
import socket

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.util import parse_url

from portal.errors import UnresolvedHost, UnsafeUrl


def is_public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Global unicast only; IPv6 forms that carry an IPv4 address are judged by it too."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour  # NAT64 (64:ff9b::/96) is refused below as reserved
        if embedded is not None and not is_public(embedded):
            return False
        if ip.ipv4_mapped is not None:
            return True  # ::ffff:0:0/96 counts as reserved as a whole; the IPv4 address decided
        if ip.is_site_local:
            return False
    # is_global alone lets multicast and some reserved ranges through.
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_unspecified)


def host_of(url: str) -> str:
    """The host ``requests`` would connect to (IPv6 without brackets); UnsafeUrl if none."""
    prepared = requests.PreparedRequest()
    try:
        prepared.prepare_url(url, None)
    except requests.RequestException:
        raise UnsafeUrl("not a valid URL") from None
    parsed = parse_url(prepared.url)
    if parsed.scheme not in ("http", "https"):
        raise UnsafeUrl("must be an http(s) URL")
    if not parsed.host:
        raise UnsafeUrl("the URL has no host")
    return parsed.host.strip("[]")


def check_url(url: str) -> None:
    """Raise UnsafeUrl unless every address the URL's host resolves to is public.

    UnresolvedHost (a subclass) when the name does not resolve: it could not be checked.
    """
    host = host_of(url)
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        detail = getattr(exc, "strerror", None) or exc
        raise UnresolvedHost(f"the host {host!r} does not resolve ({detail})") from None
    for info in infos:
        _check_address(host, info[4][0], "resolves to")


def _check_address(host: str, address: str, how: str) -> None:
    address = address.split("%", 1)[0]  # drop an IPv6 zone id (fe80::1%eth0)
    if not is_public(ipaddress.ip_address(address)):
        raise UnsafeUrl(f"the host {host!r} {how} a private or internal network address ({address})")


class _PeerChecked:
    """urllib3 connection mixin: the socket's peer must be public, checked right after the
    TCP connect (before TLS and before the request is written)."""

    def _new_conn(self):
        sock = super()._new_conn()
        try:
            _check_address(self.host, sock.getpeername()[0], "connected to")
        except UnsafeUrl:
            sock.close()
            raise
        return sock


class _CheckedHTTPConnection(_PeerChecked, HTTPConnection):
    pass


class _CheckedHTTPSConnection(_PeerChecked, HTTPSConnection):
    pass


class _CheckedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _CheckedHTTPConnection


class _CheckedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _CheckedHTTPSConnection


class _CheckedAdapter(HTTPAdapter):
    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _CheckedHTTPPool, "https": _CheckedHTTPSPool}


def guarded_session() -> requests.Session:
    """A requests session whose every connection must reach a public address (UnsafeUrl if not).

    No proxies from the environment: through a proxy, the address connected to is the
    proxy's, and the check would say nothing about where the request goes.
    """
    session = requests.Session()
    session.trust_env = False
    for prefix in ("http://", "https://"):
        session.mount(prefix, _CheckedAdapter())
    return session
