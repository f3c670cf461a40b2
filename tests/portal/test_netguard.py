"""Which URLs outbound webhooks may call: public http(s) hosts only.

Literal addresses need no network; host names are resolved by ``tests.fakes.dns``
(the test machine has no internet).
"""

import pytest

from portal import netguard
from portal.errors import UnresolvedHost, UnsafeUrl, ValidationError
from tests.fakes.dns import resolve_as


@pytest.mark.parametrize("url", [
    "http://127.0.0.1/hooks",
    "http://127.0.0.1:8080/hooks",
    "https://10.1.2.3/hooks",
    "http://172.16.0.1/",
    "http://192.168.1.10/",
    "http://169.254.169.254/latest/meta-data/",
    "http://0.0.0.0/",
    "http://100.64.0.1/",  # carrier-grade NAT
    "http://224.0.0.1/",  # multicast
    "http://240.0.0.1/",  # reserved
    "http://[::1]/hooks",
    "http://[::]/",
    "http://[fe80::1]/",
    "http://[fc00::1]/",
    "http://[fd12:3456::1]/",
    "http://[ff02::1]/",
    "http://[::ffff:127.0.0.1]/",  # IPv4-mapped
    "http://[::ffff:a9fe:a9fe]/",  # IPv4-mapped 169.254.169.254
    "http://[64:ff9b::a00:1]/",  # NAT64 for 10.0.0.1
    "http://[2002:7f00:1::]/",  # 6to4 for 127.0.0.1
    "http://2130706433/",  # 127.0.0.1 as one number: resolved like the post would
    "http://127.1/",
])
def test_internal_addresses_are_refused(url):
    with pytest.raises(UnsafeUrl, match="private or internal"):
        netguard.check_url(url)


@pytest.mark.parametrize("url", [
    "https://93.184.216.34/hooks",
    "http://93.184.216.34:8443/x?y=1",
    "https://[2606:2800:220:1:248:1893:25c8:1946]/hooks",
    "https://[::ffff:93.184.216.34]/hooks",
])
def test_public_literal_addresses_are_allowed(url):
    netguard.check_url(url)


def test_host_names_are_judged_by_every_address_they_resolve_to(monkeypatch):
    resolve_as(monkeypatch, {
        "booking.example.com": ["93.184.216.34", "2606:2800:220:1::1"],
        "sneaky.example.com": ["93.184.216.34", "10.0.0.5"],  # one internal address is enough
        "v6.example.com": ["::1"],
    })
    netguard.check_url("https://booking.example.com/hooks")
    with pytest.raises(UnsafeUrl, match=r"'sneaky.example.com'.*10\.0\.0\.5"):
        netguard.check_url("https://sneaky.example.com/hooks")
    with pytest.raises(UnsafeUrl, match="::1"):
        netguard.check_url("https://v6.example.com/hooks")


def test_an_unresolvable_host_is_its_own_error(monkeypatch):
    resolve_as(monkeypatch, {})
    with pytest.raises(UnresolvedHost, match="'nowhere.example' does not resolve"):
        netguard.check_url("https://nowhere.example/hooks")


def test_the_host_is_the_one_requests_would_connect_to(monkeypatch):
    # urllib.parse reads the host of this URL as 127.0.0.1; requests connects to "a".
    resolve_as(monkeypatch, {"a": ["10.0.0.1"]})
    with pytest.raises(UnsafeUrl, match="'a'"):
        netguard.check_url("http://a\\@127.0.0.1/")


@pytest.mark.parametrize("url", ["ftp://93.184.216.34/x", "file:///etc/passwd", "gopher://93.184.216.34/",
                                 "93.184.216.34/hooks", "http://"])
def test_only_http_urls_with_a_host(url):
    with pytest.raises(UnsafeUrl):
        netguard.check_url(url)


def test_unsafe_url_is_a_validation_error():
    # Web handlers turn it into a 422 like any other invalid input.
    assert issubclass(UnsafeUrl, ValidationError) and UnsafeUrl.status == 422


@pytest.fixture
def local_receiver():
    """A plain HTTP server on 127.0.0.1: (its URL, the paths it was posted to)."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    hits = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            hits.append(self.path)
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hooks", hits
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_the_guarded_session_refuses_a_connection_that_reached_a_private_address(local_receiver):
    # Whatever a name resolved to when it was checked, the address the connect reached decides.
    url, hits = local_receiver
    with netguard.guarded_session() as http, pytest.raises(UnsafeUrl, match=r"connected to .*\(127\.0\.0\.1\)"):
        http.post(url, data=b"{}", timeout=5)
    assert hits == []  # refused before a byte of the request was written


def test_the_guarded_session_posts_normally_to_a_public_peer_and_ignores_proxy_settings(local_receiver, monkeypatch):
    url, hits = local_receiver
    monkeypatch.setattr(netguard, "is_public", lambda ip: True)  # the receiver stands in for a public host
    monkeypatch.setenv("HTTP_PROXY", "http://10.255.255.1:3128")  # would be the peer if it were used
    with netguard.guarded_session() as http:
        assert http.post(url, data=b"{}", timeout=5).status_code == 204
    assert hits == ["/hooks"]
