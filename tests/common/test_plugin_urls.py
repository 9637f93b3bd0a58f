"""Plugin URLs: each name is one path segment, whatever characters it has."""

from __future__ import annotations

from urllib.parse import unquote

import httpx
import pytest

from bob_common.plugin_urls import (
    artifact_url,
    log_url,
    ping_url,
    resource_url,
    without_credentials,
)

STORE = "http://store.example:8002"


def test_each_contract_path_under_the_plugins_url_with_or_without_a_slash():
    for base in ("http://p:1", "http://p:1/", "http://p:1/prefix/"):
        root = base.rstrip("/")
        assert resource_url(base) == f"{root}/bob_resource"
        assert ping_url(base) == f"{root}/ping"
        assert log_url(base, "r-1") == f"{root}/bob_logs/r-1"
        assert artifact_url(base, "dev", "app", "r-1", "bin") == (
            f"{root}/bob_artifact/dev/app/r-1/bin"
        )


@pytest.mark.parametrize(
    ("artifact", "segment"),
    [
        ("a/b", "a%2Fb"),
        ("with space", "with%20space"),
        ("what?x=1", "what%3Fx%3D1"),
        ("frag#ment", "frag%23ment"),
        ("..", "%2E%2E"),
        (".", "%2E"),
        ("v1..2", "v1..2"),
        ("a.tar", "a.tar"),
    ],
)
def test_an_awkward_name_is_one_quoted_segment(artifact, segment):
    url = artifact_url(STORE, "dev", "app", "r-1", artifact)

    assert url == f"{STORE}/bob_artifact/dev/app/r-1/{segment}"


@pytest.mark.parametrize("name", ["a/b", "c d", "e?f", "g#h", "..", "."])
def test_an_http_client_asks_the_path_with_each_name_as_its_own_segment(name):
    url = httpx.URL(artifact_url(STORE, name, name, name, name))

    assert url.query == b"" and url.fragment == ""
    raw = url.raw_path.decode()
    segments = raw.split("/")[2:]
    assert raw.startswith("/bob_artifact/") and len(segments) == 4
    assert [unquote(s) for s in segments] == [name] * 4


def test_a_run_id_with_a_slash_stays_one_segment_of_the_log_url():
    assert log_url("http://logger:8004/", "../r 1") == "http://logger:8004/bob_logs/..%2Fr%201"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://user:s3cret@store:8002/", "http://user:***@store:8002/"),
        ("https://ghp_TOKEN@provider.example/x", "https://***@provider.example/x"),
        ("http://:s3cret@store", "http://:***@store"),
        ("http://u:p%40ss@w@store/a?b=c", "http://u:***@store/a?b=c"),
        ("http://store:8002/path@v1?q=a@b#c@d", "http://store:8002/path@v1?q=a@b#c@d"),
        ("http://store:8002", "http://store:8002"),
    ],
)
def test_a_url_is_shown_without_its_password_or_lone_user_name(url, shown):
    assert without_credentials(url) == shown
    assert "s3cret" not in without_credentials(url) and "TOKEN" not in without_credentials(url)
