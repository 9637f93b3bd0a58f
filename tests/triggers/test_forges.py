"""Each forge's push, tag and pull-request payloads (the samples in payloads/) read into
one event; events that start nothing say why; what cannot be read is named."""

from __future__ import annotations

import json

import pytest

from api_server import forges
from api_server.forges import Event, Unsupported
from tests.triggers.deliveries import payload, signed


def _headers(forge: str, event: str) -> dict[str, str]:
    return signed(forge, event, b"{}", "s3cret", delivery="d-1")


@pytest.mark.parametrize(
    ("forge", "event", "sample", "expected"),
    [
        (
            "github",
            "push",
            "github_push",
            Event(
                "Codertocat/Hello-World",
                "push",
                "refs/heads/main",
                "main",
                "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c",
                "Codertocat",
            ),
        ),
        (
            "github",
            "pull_request",
            "github_pull_request",
            Event(
                "Codertocat/Hello-World",
                "pull_request",
                "refs/pull/2/head",
                "main",
                "34c5c7793cb3b279e22454cb6750c80560547b3a",
                "Codertocat",
            ),
        ),
        (
            "gitea",
            "push",
            "gitea_push",
            Event(
                "gitea/webhooks",
                "push",
                "refs/heads/develop",
                "develop",
                "bffeb74224043ba2feb48d137756c8a9331c449a",
                "gitea",
            ),
        ),
        (
            "forgejo",
            "pull_request",
            "gitea_pull_request",
            Event(
                "gitea/webhooks",
                "pull_request",
                "refs/pull/7/head",
                "master",
                "7d9ef7d5f6e23c07e3b8c0d7dc61b4b5a0f1a8e2",
                "gitea",
            ),
        ),
        (
            "gitlab",
            "Push Hook",
            "gitlab_push",
            Event(
                "mike/diaspora",
                "push",
                "refs/heads/master",
                "master",
                "da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
                "jsmith",
            ),
        ),
        (
            "gitlab",
            "Tag Push Hook",
            "gitlab_tag_push",
            Event(
                "jsmith/example",
                "tag",
                "refs/tags/v1.0.0",
                "v1.0.0",
                "82b3d5ae55f7080f1e6022629cdb57bfae7cccc7",
                "jsmith",
            ),
        ),
        (
            "gitlab",
            "Merge Request Hook",
            "gitlab_merge_request",
            Event(
                "gitlabhq/gitlab-test",
                "pull_request",
                "refs/merge-requests/1/head",
                "master",
                "da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
                "root",
            ),
        ),
    ],
)
def test_each_forges_sample_payload_reads_as_its_event(forge, event, sample, expected):
    parsed = forges.parse(forge, _headers(forge, event), payload(sample))
    assert parsed.event == expected
    assert parsed.ignored == ""


def test_a_github_tag_push_is_a_tag_event():
    sample = payload("github_push") | {"ref": "refs/tags/v2.1"}
    parsed = forges.parse("github", _headers("github", "push"), sample)
    assert (parsed.event.kind, parsed.event.target) == ("tag", "v2.1")


@pytest.mark.parametrize(
    ("forge", "event", "sample", "change", "why"),
    [
        ("github", "push", "github_push", {"deleted": True, "after": "0" * 40}, "was deleted"),
        ("gitlab", "Push Hook", "gitlab_push", {"after": "0" * 40}, "was deleted"),
        ("github", "pull_request", "github_pull_request", {"action": "closed"}, "'closed'"),
        ("gitea", "pull_request", "gitea_pull_request", {"action": "labeled"}, "'labeled'"),
        ("github", "ping", "github_ping", {}, "ping"),
    ],
)
def test_events_that_bring_no_new_code_say_why(forge, event, sample, change, why):
    parsed = forges.parse(forge, _headers(forge, event), payload(sample) | change)
    assert why in parsed.ignored


def test_a_merge_request_update_without_new_commits_starts_nothing():
    sample = payload("gitlab_merge_request")
    del sample["object_attributes"]["oldrev"]
    parsed = forges.parse("gitlab", _headers("gitlab", "Merge Request Hook"), sample)
    assert parsed.ignored == "merge request update without new commits"


@pytest.mark.parametrize(
    ("forge", "event", "body", "named"),
    [
        ("github", "issues", payload("github_push"), "X-GitHub-Event 'issues' is not supported"),
        ("gitlab", "Note Hook", payload("gitlab_push"), "X-Gitlab-Event 'Note Hook'"),
        ("github", "push", [1, 2], "not a JSON object"),
        ("github", "push", {"ref": "refs/heads/x"}, "'repository'"),
        ("github", "push", payload("github_push") | {"after": "HEAD~1"}, "not a commit id"),
        ("github", "push", payload("github_push") | {"ref": "main"}, "neither a branch"),
        ("gitea", "push", payload("gitea_push") | {"repository": {"full_name": ""}}, "full_name"),
    ],
)
def test_what_cannot_be_read_is_named(forge, event, body, named):
    with pytest.raises(Unsupported, match=named.replace("(", r"\(")):
        forges.parse(forge, _headers(forge, event), body)


def test_a_delivery_without_its_event_header_is_named():
    with pytest.raises(Unsupported, match="no X-Gitea-Event header"):
        forges.parse("gitea", {}, payload("gitea_push"))


def test_signatures_and_delivery_ids_come_from_each_forges_headers():
    body = json.dumps(payload("github_push")).encode()
    github = signed("github", "push", body, "k", delivery="gh-1")
    assert forges.signature("github", github) == github["X-Hub-Signature-256"][len("sha256=") :]
    assert forges.delivery_id("github", github, body) == "gh-1"
    forgejo = {"X-Forgejo-Signature": "abc", "X-Forgejo-Delivery": "fj-1"}
    assert forges.signature("forgejo", forgejo) == "abc"
    assert forges.delivery_id("forgejo", forgejo, body) == "fj-1"
    assert forges.signature("gitlab", {"X-Gitlab-Token": "tok"}) == "tok"
    assert forges.delivery_id("gitlab", {"Idempotency-Key": "ik-1"}, body) == "ik-1"
    # Without an id, the body's hash: a redelivery of the same bytes has the same one.
    assert forges.delivery_id("gitlab", {}, body) == forges.delivery_id("gitlab", {}, body)
    assert forges.delivery_id("gitlab", {}, body) != forges.delivery_id("gitlab", {}, b"{}")
    assert forges.signature("github", {}) == ""


def test_a_body_that_is_not_json_is_named():
    with pytest.raises(Unsupported, match="not JSON"):
        forges.payload_of(b"payload=%7B%7D")
    assert forges.payload_of(b'{"a": 1}') == {"a": 1}


def test_the_readmes_minimal_deliveries_read():
    sha = "a" * 40
    github = {
        "ref": "refs/heads/main",
        "after": sha,
        "repository": {"full_name": "acme/app"},
        "sender": {"login": "me"},
    }
    parsed = forges.parse("github", {"X-GitHub-Event": "push"}, github)
    assert parsed.event == Event("acme/app", "push", "refs/heads/main", "main", sha, "me")
    gitlab = {
        "ref": "refs/heads/main",
        "after": sha,
        "project": {"path_with_namespace": "acme/app"},
    }
    parsed = forges.parse("gitlab", {"X-Gitlab-Event": "Push Hook"}, gitlab)
    assert parsed.event == Event("acme/app", "push", "refs/heads/main", "main", sha, "")
