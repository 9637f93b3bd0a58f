"""The plugin URL rule and the address policy (bob_common.plugin_policy), and the HTTP
clients that apply it where they connect (bob_common.plugin_http)."""

from __future__ import annotations

import asyncio
import http.server
import threading

import httpx
import pytest

from bob_common import plugin_http
from bob_common.plugin_policy import AddressPolicy, parse_allowed, url_problem


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8002", "https://store.example/base/", "http://[::1]:9/x"]
)
def test_a_plain_http_url_is_a_plugin_url(url):
    assert url_problem(url) is None


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://user:pw@127.0.0.1:8002/", "user-info"),
        ("http://token@store.example", "user-info"),
        ("http://127.0.0.1:8002/#", "fragment"),
        ("http://127.0.0.1:8002/#x", "fragment"),
        ("http://127.0.0.1:8002/?a=b", "query"),
        ("http://127.0.0.1:8002/?", "query"),
        ("ftp://store.example", "http"),
        ("file:///etc/passwd", "http"),
        ("gopher://127.0.0.1:6379/_x", "http"),
        ("http://", "host"),
        ("http://127.0.0.1:99999", "valid"),
        ("http://metadata.google.internal/computeMetadata/v1", "metadata"),
        ("http://169.254.169.254/latest/meta-data/", "metadata"),
        ("http://[fd00:ec2::254]/", "metadata"),
        ("http://169.254.3.4:8080", "link-local"),
    ],
)
def test_a_plugin_url_with_more_than_scheme_host_and_path_is_refused(url, problem):
    why = url_problem(url)
    assert why is not None and problem in why
    assert "pw" not in why and "token" not in why


LOCAL = AddressPolicy(allow_private=True)
REMOTE = AddressPolicy.of(False, ["10.1.0.0/16", "store.internal"])


@pytest.mark.parametrize("policy", [LOCAL, REMOTE], ids=["loopback-api", "reachable-api"])
@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("x", "169.254.169.254"),
        ("x", "169.254.1.1"),
        ("x", "fe80::1"),
        ("x", "fd00:ec2::254"),
        ("x", "100.100.100.200"),
        ("x", "::ffff:169.254.169.254"),
        ("metadata.google.internal", "8.8.8.8"),
        ("store.internal", "169.254.169.254"),
    ],
)
def test_link_local_and_metadata_are_always_refused(policy, host, address):
    assert policy.refusal(host, address) is not None


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "::1",
        "10.0.0.5",
        "172.16.3.4",
        "192.168.1.1",
        "100.64.0.1",
        "fd12::1",
        "0.0.0.0",
        "::ffff:127.0.0.1",
    ],
)
def test_private_addresses_are_allowed_only_to_a_loopback_api_or_by_the_allow_list(address):
    assert LOCAL.refusal("store", address) is None
    assert "private" in (REMOTE.refusal("store", address) or "")
    assert REMOTE.refusal("store.internal", address) is None


def test_the_allow_list_names_networks_and_public_addresses_pass():
    assert REMOTE.refusal("store", "10.1.2.3") is None
    assert REMOTE.refusal("store", "10.2.2.3") is not None
    assert REMOTE.refusal("store", "93.184.216.34") is None
    assert REMOTE.refusal("store", "2606:4700::1") is None


def test_an_allow_list_item_that_is_no_network_or_name_is_an_error():
    with pytest.raises(ValueError):
        parse_allowed(["10.0.0.0/33"])
    with pytest.raises(ValueError):
        parse_allowed(["user@host"])


class _Canary(http.server.BaseHTTPRequestHandler):
    hits = 0

    def do_GET(self):  # noqa: N802 - http.server's name
        type(self).hits += 1
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def canary():
    _Canary.hits = 0
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Canary)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://localhost:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_guarded_client_refuses_before_connecting(canary):
    timeout = httpx.Timeout(5)
    with plugin_http.client(REMOTE, timeout) as refusing:
        with pytest.raises(httpx.ConnectError, match="private"):
            refusing.get(f"{canary}/ping")
    assert _Canary.hits == 0
    with plugin_http.client(LOCAL, timeout) as allowing:
        assert allowing.get(f"{canary}/ping").status_code == 200
    assert _Canary.hits == 1


def test_a_guarded_async_client_refuses_before_connecting(canary):
    async def attempts() -> None:
        timeout = httpx.Timeout(5)
        async with plugin_http.async_client(REMOTE, timeout) as refusing:
            with pytest.raises(httpx.ConnectError, match="private"):
                await refusing.get(f"{canary}/ping")
        assert _Canary.hits == 0
        async with plugin_http.async_client(LOCAL, timeout) as allowing:
            assert (await allowing.get(f"{canary}/ping")).status_code == 200
        assert _Canary.hits == 1

    asyncio.run(attempts())
