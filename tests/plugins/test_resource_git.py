"""The git resource provider as a real process: Bob's resource contract over local and
URL repositories, refs, and clear answers for what it cannot serve."""

from __future__ import annotations

import io
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.plugins.processes import git, git_provider, make_repo


@pytest.fixture(scope="module")
def provider(tmp_path_factory) -> Iterator[tuple[str, Path]]:
    tmp = tmp_path_factory.mktemp("git")
    repo = tmp / "repo"
    make_repo(repo, {"README": "v1\n", "src/main.sh": "echo built\n"})
    git(repo, "tag", "v1")
    (repo / "README").write_text("v2\n")
    git(repo, "commit", "-q", "-am", "v2")
    git(repo, "checkout", "-q", "-b", "feature")
    (repo / "FEATURE").write_text("yes\n")
    git(repo, "add", "FEATURE")
    git(repo, "commit", "-q", "-m", "feature")
    git(repo, "checkout", "-q", "main")
    with git_provider(tmp) as url:
        yield url, repo


def files(response: httpx.Response) -> dict[str, bytes]:
    assert response.status_code == 200, response.text
    with tarfile.open(fileobj=io.BytesIO(response.content)) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar if m.isreg()}


def get(url: str, **params: str) -> httpx.Response:
    return httpx.get(f"{url}/bob_resource", params=params, timeout=30)


def test_ping_answers(provider):
    url, _ = provider
    assert httpx.get(f"{url}/ping").status_code == 200


def test_a_local_repository_is_served_as_a_tar_of_its_files_at_the_ref(provider):
    url, repo = provider
    assert files(get(url, repo=str(repo), ref="main")) == {
        "README": b"v2\n",
        "src/main.sh": b"echo built\n",
    }
    assert files(get(url, repo=str(repo), ref="v1"))["README"] == b"v1\n"
    assert "FEATURE" in files(get(url, repo=str(repo), ref="feature"))
    commit = git(repo, "rev-parse", "v1")
    assert files(get(url, repo=str(repo), ref=commit))["README"] == b"v1\n"


def test_branch_is_accepted_for_ref_as_bobs_own_provider_names_it(provider):
    url, repo = provider
    assert "FEATURE" in files(get(url, repo=str(repo), branch="feature"))


def test_without_a_ref_the_repositorys_head_is_served(provider):
    url, repo = provider
    assert files(get(url, repo=str(repo)))["README"] == b"v2\n"


def test_a_url_is_fetched_at_depth_one_and_nothing_stays_behind(provider):
    url, repo = provider
    before = set(Path(tempfile.gettempdir()).glob("bob-git-*"))
    served = files(get(url, repo=f"file://{repo}", ref="feature"))
    assert served["FEATURE"] == b"yes\n"
    assert set(Path(tempfile.gettempdir()).glob("bob-git-*")) == before


@pytest.mark.parametrize(
    ("params", "status", "says"),
    [
        ({"repo": None}, 400, "The param repo"),
        ({"repo": "/nonexistent/repo"}, 404, "No repository at /nonexistent/repo"),
        ({"ref": "nosuch"}, 404, "no commit nosuch"),
        ({"ref": "--output=/tmp/x"}, 400, "Invalid ref"),
        ({"ref": "main..v1"}, 400, "Invalid ref"),
        ({"repo": "--upload-pack=touch /tmp/x"}, 400, "The param repo"),
        ({"repo": "file:///nonexistent/repo", "ref": "main"}, 404, "could not fetch main"),
    ],
)
def test_what_cannot_be_served_gets_a_clear_4xx(provider, params, status, says):
    url, repo = provider
    query = {k: v for k, v in {"repo": str(repo), **params}.items() if v is not None}
    r = get(url, **query)
    assert r.status_code == status, r.text
    assert says in r.json()["message"]
