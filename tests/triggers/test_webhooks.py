"""Webhooks against a running cluster (the reference git provider, a Docker runner): a
signed push from GitHub, Gitea, Forgejo and GitLab starts the pipeline whose trigger matches, at
the pushed commit (the provider serves that commit, not the branch's head); a forged or
missing signature starts nothing (401); a redelivery, also several at once, starts
nothing new; a push no trigger matches is answered why (202); a pull request starts the
pull-request trigger's pipeline at its head. Answer times are printed."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.e2e.runner_cluster import Bob, run_detail, runner_cluster, runner_id
from tests.plugins.processes import git, make_repo
from tests.triggers import deliveries
from tests.triggers.deliveries import PR_EVENT, PUSH_EVENT, signed

pytestmark = pytest.mark.e2e
IMAGE = "bob-test/busybox:latest"
SECRETS = {
    "github": "gh-hook-secret",
    "gitea": "gt-hook-secret",
    "forgejo": "fj-hook-secret",
    "gitlab": "gl-hook-token",
}
REPOSITORIES = {
    "github": "acme/app",
    "gitea": "acme-gitea/app",
    "forgejo": "acme-forgejo/app",
    "gitlab": "acme/tools/app",
}
FORGES = list(SECRETS)


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> tuple[Path, list[str]]:
    """A repository whose main has two commits, VERSION 1 then 2: the commits, oldest first."""
    path = tmp_path_factory.mktemp("repos") / "app"
    first = make_repo(path, {"VERSION": "1\n"})
    (path / "VERSION").write_text("2\n")
    git(path, "commit", "-q", "-am", "two")
    return path, [first, git(path, "rev-parse", "HEAD")]


def _pipeline(repo: Path, trigger: dict) -> dict:
    return {
        "image": IMAGE,
        "resources": [
            {
                "name": "source",
                "type": "external",
                "provider": "git",
                "params": {"repo": str(repo), "ref": "main"},
            }
        ],
        "steps": [{"cmd": 'echo "version $(cat VERSION)"', "needs_resource": "source"}],
        "triggers": [trigger],
    }


@pytest.fixture(scope="module")
def bob(rabbitmq_available, docker_client, tmp_path_factory, repo) -> Iterator[Bob]:
    tmp = tmp_path_factory.mktemp("webhooks")
    with runner_cluster(tmp, [{"BOB_RUNNER_ID": runner_id("hooks")}], plugins=True) as bob:
        r = bob.http.post("/resource-providers/git", json={"url": bob.cluster.plugin_urls["git"]})
        assert r.status_code == 202, r.text
        for forge, secret in SECRETS.items():
            r = bob.http.put(f"/secrets/{forge}-hook", json={"value": secret})
            assert r.status_code == 202, r.text
        # One pipeline per forge, built on pushes to main; one on pull requests into main.
        path, _ = repo
        for forge, repository in REPOSITORIES.items():
            trigger = {"repository": repository, "secret": f"{forge}-hook", "branches": ["main"]}
            bob.create_pipeline("hooks", forge, _pipeline(path, trigger))
        pr = {
            "repository": "acme/app",
            "secret": "github-hook",
            "events": ["pull_request"],
            "branches": ["main", "release/**"],
        }
        bob.create_pipeline("hooks", "pull-requests", _pipeline(path, pr))
        yield bob


def _deliver(bob: Bob, forge: str, event: str, body: bytes, headers: dict) -> httpx.Response:
    began = time.monotonic()
    r = bob.http.post(f"/webhooks/{forge}", content=body, headers=headers)
    took_ms = (time.monotonic() - began) * 1000
    print(f"webhooks[{forge} {event}]: answered {r.status_code} in {took_ms:.0f} ms")
    return r


def _runs(bob: Bob, name: str) -> list[str]:
    r = bob.http.get(f"/pipelines/groups/hooks/names/{name}/runs")
    assert r.status_code == 200, r.text
    return [run["run-id"] for run in r.json()["message"]]


def _all_runs(bob: Bob) -> int:
    return sum(len(_runs(bob, n)) for n in (*REPOSITORIES, "pull-requests"))


@pytest.mark.parametrize("forge", FORGES)
def test_a_signed_push_starts_the_matching_pipeline_at_the_pushed_commit(bob, repo, forge):
    # Given main's head is the second commit, and a push event naming the first one
    path, (first, _) = repo
    body = deliveries.push(forge, REPOSITORIES[forge], "refs/heads/main", first, sender="carol")
    before = _all_runs(bob)

    # When the forge delivers it, signed with the trigger's secret
    r = _deliver(bob, forge, "push", body, signed(forge, PUSH_EVENT[forge], body, SECRETS[forge]))

    # Then that forge's pipeline alone has started
    assert r.status_code == 202, r.text
    answer = r.json()
    assert [(run["group"], run["name"]) for run in answer["runs"]] == [("hooks", forge)]
    run_id = answer["runs"][0]["run-id"]
    assert answer["message"] == f"started 1 run(s): {run_id}"
    assert _all_runs(bob) == before + 1
    # at the pushed commit: the provider served it, and the build saw its files
    assert bob.wait_terminal(run_id, timeout=120) == "passed", bob.log_lines(run_id)
    assert "version 1" in bob.log_lines(run_id)
    assert f"serving {path} at {first} ({first[:12]})" in bob.log_path.read_text()
    # and the run records where it came from
    trigger = run_detail(bob, "hooks", forge, run_id)["trigger"]
    assert trigger == {
        "forge": forge,
        "delivery": answer["delivery"],
        "repository": REPOSITORIES[forge],
        "kind": "push",
        "ref": "refs/heads/main",
        "target": "main",
        "sha": first,
        "sender": "carol",
    }


@pytest.mark.parametrize("forge", FORGES)
def test_a_forged_or_missing_signature_starts_nothing(bob, repo, forge):
    _, (first, _) = repo
    body = deliveries.push(forge, REPOSITORIES[forge], "refs/heads/main", first)
    before = _all_runs(bob)
    forged = signed(forge, PUSH_EVENT[forge], body, "a-guessed-secret")
    r = _deliver(bob, forge, "forged push", body, forged)
    assert r.status_code == 401, r.text
    assert "not verified by the webhook secret of any trigger" in r.json()["message"]
    # the body altered after signing
    honest = signed(forge, PUSH_EVENT[forge], body, SECRETS[forge])
    if forge != "gitlab":  # GitLab's token does not cover the body
        r = _deliver(bob, forge, "altered push", body.replace(b"main", b"mainx", 1), honest)
        assert r.status_code in (400, 401), r.text
    # no signature at all
    unsigned = {k: v for k, v in honest.items() if "Signature" not in k and "Token" not in k}
    r = _deliver(bob, forge, "unsigned push", body, unsigned)
    assert r.status_code == 401 and "is not signed" in r.json()["message"], r.text
    assert _all_runs(bob) == before


def test_a_redelivery_even_several_at_once_starts_nothing_new(bob, repo):
    _, (_, head) = repo
    body = deliveries.push("github", "acme/app", "refs/heads/main", head)
    headers = signed("github", "push", body, SECRETS["github"], delivery="redelivered-1")
    before = _all_runs(bob)

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: _deliver(bob, "github", "push", body, headers), range(4)))

    assert all(r.status_code == 202 for r in answers), [r.text for r in answers]
    run_ids = {run["run-id"] for r in answers for run in r.json()["runs"]}
    assert len(run_ids) == 1, answers
    assert sorted(r.json()["redelivery"] for r in answers) == [False, True, True, True]
    # and later, as a forge's "Redeliver" button does
    again = _deliver(bob, "github", "push", body, headers)
    assert again.json()["redelivery"] and again.json()["runs"][0]["run-id"] in run_ids
    assert "already answered" in again.json()["message"]
    assert _all_runs(bob) == before + 1
    bob.wait_terminal(run_ids.pop(), timeout=120)


def test_a_push_no_trigger_matches_is_answered_why(bob, repo):
    _, (_, head) = repo
    before = _all_runs(bob)
    body = deliveries.push("github", "acme/app", "refs/heads/wip", head)
    r = _deliver(bob, "github", "push", body, signed("github", "push", body, SECRETS["github"]))
    assert r.status_code == 202, r.text
    assert r.json()["message"] == "no pipeline triggers on push to refs/heads/wip of acme/app"
    assert r.json()["runs"] == []
    assert _all_runs(bob) == before


def test_a_pull_request_starts_the_pull_request_triggers_pipeline_at_its_head(bob, repo):
    _, (first, _) = repo
    before = {name: _runs(bob, name) for name in ("github", "pull-requests")}
    body = deliveries.pull_request("github", "acme/app", "release/2.0", first)
    r = _deliver(
        bob,
        "github",
        "pull_request",
        body,
        signed("github", PR_EVENT["github"], body, SECRETS["github"]),
    )
    assert r.status_code == 202, r.text
    (run,) = r.json()["runs"]
    assert run["name"] == "pull-requests"
    assert _runs(bob, "github") == before["github"]  # its trigger takes pushes only
    assert bob.wait_terminal(run["run-id"], timeout=120) == "passed"
    assert "version 1" in bob.log_lines(run["run-id"])
    trigger = run_detail(bob, "hooks", "pull-requests", run["run-id"])["trigger"]
    by_hand = bob.start("hooks", "github")
    assert "trigger" not in run_detail(bob, "hooks", "github", by_hand)  # started otherwise
    bob.wait_terminal(by_hand, timeout=120)
    assert (trigger["kind"], trigger["ref"], trigger["target"], trigger["sha"]) == (
        "pull_request",
        "refs/pull/2/head",
        "release/2.0",
        first,
    )
    # A closed pull request starts nothing, and says so
    closed = deliveries.pull_request("github", "acme/app", "main", first, action="closed")
    headers = signed("github", "pull_request", closed, SECRETS["github"])
    r = _deliver(bob, "github", "closed pull_request", closed, headers)
    assert r.status_code == 202 and r.json()["runs"] == []
    assert r.json()["message"] == "pull request action 'closed' brings no new commits"


def test_bad_deliveries_are_refused_naming_the_problem(bob, repo):
    _, (first, _) = repo
    body = deliveries.push("github", "acme/app", "refs/heads/main", first)
    headers = signed("github", "issues", body, SECRETS["github"])
    r = _deliver(bob, "github", "issues", body, headers)
    assert r.status_code == 400 and "X-GitHub-Event 'issues' is not supported" in r.text
    # GitHub's form-encoded content type
    form = signed("github", "push", body, SECRETS["github"]) | {
        "Content-Type": "application/x-www-form-urlencoded"
    }
    r = _deliver(bob, "github", "form push", b"payload=" + body, form)
    assert r.status_code == 415 and "application/x-www-form-urlencoded" in r.text
    r = _deliver(bob, "bitbucket", "push", body, headers)
    assert r.status_code == 400, r.text
    # A trigger that contradicts itself is refused when the pipeline is posted
    bad = _pipeline(Path("/r"), {"repository": "https://github.com/acme/app.git", "secret": "x"})
    r = bob.http.post("/pipelines/groups/hooks/names/bad", json=bad)
    assert r.status_code == 400 and "Trigger 1: repository" in r.text, r.text
