"""The guard's decisions (api_server/guard.py), as pure logic: which Host, Origin,
Sec-Fetch-Site and body type each request may come with. tests/security/test_guard.py
makes the same requests against a running cluster."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from api_server.guard import Guard, Policy, Refusal, check, check_path, single_headers
from bob_common.config import ApiSettings, ConfigError

OWN = "http://127.0.0.1:7777"


def _policy(**env: str) -> Policy:
    return Policy.from_settings(ApiSettings.from_env(env))


def _check(
    method: str = "POST", policy: Policy | None = None, scheme: str = "http", **headers: str
) -> Refusal | None:
    """check() of a request with these headers (underscores in names become dashes);
    Host 127.0.0.1:7777 unless given."""
    named = {k.replace("_", "-").lower(): v for k, v in headers.items()}
    named.setdefault("host", "127.0.0.1:7777")
    return check(policy or _policy(), method, scheme, named)


# ---------------------------------------------------------------- Host


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1:7777",
        "localhost:7777",
        "LOCALHOST",
        "localhost.:7777",
        "[::1]:7777",
        "[::1]",
        "10.1.2.3:7777",
        "[fe80::1%25eth0]:7777",
    ],
)
def test_loopback_names_and_any_ip_address_are_answered(host):
    assert _check("GET", host=host) is None


@pytest.mark.parametrize(
    "host", ["evil.example:7777", "attacker.localhost.evil", "127.0.0.1.nip.io"]
)
def test_a_name_not_listed_is_refused_with_421_naming_it_and_the_setting(host):
    refusal = _check("GET", host=host)
    assert refusal is not None and refusal.status == 421
    assert repr(host.split(":")[0]) in refusal.message
    assert "BOB_API_ALLOWED_HOSTS" in refusal.message


@pytest.mark.parametrize("host", ["", "a b", "user@evil.example", "[::1", "x:y:z"])
def test_a_host_header_that_is_no_host_is_a_bad_request(host):
    refusal = _check("GET", host=host)
    assert refusal is not None and refusal.status == 400


def test_listed_names_and_the_bind_host_are_answered_at_any_port():
    policy = _policy(BOB_API_ALLOWED_HOSTS="bob.example, CI.Example.", BOB_API_HOST="bob.lan")
    for host in ("bob.example", "bob.example:443", "ci.example:1", "bob.lan:7777"):
        assert _check("GET", policy, host=host) is None, host
    assert _check("GET", policy, host="other.example").status == 421


def test_a_wildcard_bind_adds_no_name_and_a_star_lets_every_name_in():
    assert _check("GET", _policy(BOB_API_HOST="0.0.0.0"), host="0.0.0.0:7777") is None
    assert _check("GET", _policy(BOB_API_HOST="0.0.0.0"), host="box:7777").status == 421
    assert _check("GET", _policy(BOB_API_ALLOWED_HOSTS="*"), host="box:7777") is None


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("BOB_API_ALLOWED_HOSTS", "bob.example:7777"),
        ("BOB_API_ALLOWED_HOSTS", "https://bob.example"),
        ("BOB_API_ALLOWED_ORIGINS", "bob.example"),
        ("BOB_API_ALLOWED_ORIGINS", "https://bob.example/ui"),
        ("BOB_API_ALLOWED_ORIGINS", "https://bob.example:port"),
        ("BOB_API_ALLOWED_ORIGINS", "null"),
    ],
)
def test_malformed_lists_stop_start_up_naming_the_variable(variable, value):
    with pytest.raises(ConfigError, match=variable):
        ApiSettings.from_env({variable: value})


# ---------------------------------------------------------------- Origin and Sec-Fetch-Site


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "GET"])
def test_a_foreign_origin_is_refused_with_403_naming_it(method):
    refusal = _check(method, origin="https://evil.example")
    assert refusal is not None and refusal.status == 403
    assert "'https://evil.example'" in refusal.message and OWN in refusal.message


@pytest.mark.parametrize(
    "origin", ["null", "http://127.0.0.1:7778", "https://127.0.0.1:7777", "file://", "x"]
)
def test_opaque_and_near_miss_origins_are_foreign(origin):
    assert _check(origin=origin).status == 403


def test_the_apis_own_origin_may_write():
    assert _check(origin=OWN, sec_fetch_site="same-origin") is None
    assert _check(origin="http://localhost:7777", host="localhost:7777") is None
    assert _check(origin="http://[::1]:7777", host="[::1]:7777") is None
    named = _policy(BOB_API_ALLOWED_HOSTS="bob.example")
    assert (
        _check(policy=named, origin="https://bob.example", host="bob.example", scheme="https")
        is None
    )


def test_an_origin_is_own_by_the_requests_scheme_and_host_with_default_ports():
    policy = _policy(BOB_API_ALLOWED_HOSTS="bob.example")
    assert _check(policy=policy, origin="http://bob.example", host="bob.example:80") is None
    # Behind a TLS proxy that does not say so, the page's origin is not the request's.
    assert _check(policy=policy, origin="https://bob.example", host="bob.example").status == 403


def test_a_listed_origin_may_write_even_from_another_site():
    policy = _policy(BOB_API_ALLOWED_ORIGINS="https://dash.example, http://127.0.0.1:3000")
    for origin in ("https://dash.example", "https://dash.example:443", "http://127.0.0.1:3000"):
        assert _check(policy=policy, origin=origin, sec_fetch_site="cross-site") is None
    assert _check(policy=policy, origin="https://dash.example:8443").status == 403


def test_cross_site_requests_are_refused_but_a_followed_link_to_a_page():
    refusal = _check("POST", sec_fetch_site="cross-site")
    assert refusal is not None and refusal.status == 403 and "cross-site" in refusal.message
    # <img src=…/error>, fetch(…, {mode: "no-cors"}): no Origin, but not a page either.
    assert _check("GET", sec_fetch_site="cross-site", sec_fetch_mode="no-cors").status == 403
    assert _check("GET", sec_fetch_site="cross-site", sec_fetch_mode="navigate",
                  sec_fetch_dest="iframe").status == 403  # fmt: skip
    followed = {"sec_fetch_site": "cross-site", "sec_fetch_mode": "navigate"}
    assert _check("GET", sec_fetch_dest="document", **followed) is None
    assert _check("POST", sec_fetch_dest="document", **followed).status == 403


def test_same_site_writes_are_refused_and_same_site_reads_are_not():
    assert _check("POST", sec_fetch_site="same-site").status == 403
    assert _check("DELETE", sec_fetch_site="same-site").status == 403
    assert _check("GET", sec_fetch_site="same-site") is None
    assert _check("POST", sec_fetch_site="same-origin") is None
    assert _check("POST", sec_fetch_site="none") is None


def test_command_line_clients_send_neither_header_and_pass():
    # curl, wendy, the Terraform provider: a body-less POST included.
    assert _check("POST", content_length="0") is None
    assert _check("POST") is None
    assert _check("POST", content_length="2", content_type="application/json") is None
    assert _check("DELETE") is None


# ---------------------------------------------------------------- bodies


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
     "application/merge-patch+json", "application/jsonx", None],
)  # fmt: skip
def test_a_body_that_is_not_json_is_refused_with_415_naming_both_types(content_type):
    headers = {"content_length": "2"}
    if content_type is not None:
        headers["content_type"] = content_type
    refusal = _check(**headers)
    assert refusal is not None and refusal.status == 415
    assert "application/json" in refusal.message
    assert (repr(content_type) if content_type else "no Content-Type") in refusal.message


@pytest.mark.parametrize(
    "content_type", ["application/json", "Application/JSON", "application/json; charset=utf-8"]
)
def test_json_bodies_pass_with_or_without_parameters(content_type):
    assert _check(content_length="2", content_type=content_type) is None
    assert _check(transfer_encoding="chunked", content_type=content_type) is None


def test_a_chunked_body_counts_as_a_body_and_an_empty_one_needs_no_type():
    assert _check(transfer_encoding="chunked", content_type="text/plain").status == 415
    assert _check(transfer_encoding="chunked").status == 415
    assert _check(content_length="0", content_type="text/plain") is None
    assert _check("GET") is None


def test_the_host_is_checked_first_then_the_origin_then_the_body():
    assert _check(host="evil.example", origin="https://evil.example").status == 421
    assert _check(origin="https://evil.example", content_length="1").status == 403


def test_a_repeated_host_or_origin_is_refused():
    refused = single_headers([(b"Host", b"127.0.0.1"), (b"host", b"evil.example")])
    assert isinstance(refused, Refusal) and refused.status == 400
    assert single_headers([(b"Accept", b"a"), (b"accept", b"b")]) == {"accept": "b"}


# ---------------------------------------------------------------- the middleware


def test_the_middleware_answers_a_refusal_in_the_error_envelope_and_passes_the_rest_on():
    passed: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        passed.append(scope["path"])

    guard = Guard(app, ApiSettings.from_env({}))

    async def call(headers: list[tuple[bytes, bytes]]) -> list[dict[str, Any]]:
        sent: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {"type": "http", "method": "POST", "scheme": "http", "path": "/p",
                 "headers": headers}  # fmt: skip
        await guard(scope, None, send)  # type: ignore[arg-type]
        return sent

    sent = asyncio.run(call([(b"host", b"evil.example:7777")]))
    assert sent[0]["status"] == 421
    assert (b"content-type", b"application/json") in sent[0]["headers"]
    assert "evil.example" in json.loads(sent[1]["body"])["message"]
    assert passed == []
    assert asyncio.run(call([(b"host", b"127.0.0.1:7777")])) == []
    assert passed == ["/p"]


@pytest.mark.parametrize("path", ["/secrets/Z\n", "/pipelines/groups/a\x00/names/b", "/x\x7f"])
def test_a_path_with_a_control_character_is_refused_naming_it(path):
    refusal = check_path(path)
    assert refusal is not None and refusal.status == 400
    assert "control character" in refusal.message


def test_a_path_of_printable_names_passes():
    assert check_path("/pipelines/groups/dev/names/hello-1.2_x/runs") is None
    assert check_path("/secrets/caf\u00e9") is None
