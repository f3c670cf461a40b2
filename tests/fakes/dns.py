"""A stand-in for DNS: the test machine has no internet, and tests must not depend on it.

    resolve_as(monkeypatch, {"booking.example.com": ["93.184.216.34"]})

Names not in the table do not resolve; literal IP addresses resolve to themselves.
"""

from __future__ import annotations

import ipaddress
import socket

PUBLIC = "93.184.216.34"  # a global address for example hosts


def resolve_as(monkeypatch, table: dict[str, list[str]]) -> None:
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        try:
            ipaddress.ip_address(host)
        except ValueError:
            pass
        else:
            return real(host, port, *args, **kwargs)
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "",
                 (a, port or 0)) for a in table[host]]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
