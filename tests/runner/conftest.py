"""Fixtures of the runner tests: the reference plugins as real processes, and a git
repository for them to serve."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.plugins.processes import artifact_store, git_provider, make_repo


@dataclass
class Plugins:
    git_url: str
    store_url: str
    store_dir: Path
    repo: Path


@pytest.fixture(scope="module")
def plugins(tmp_path_factory) -> Iterator[Plugins]:
    tmp = tmp_path_factory.mktemp("plugins")
    repo = tmp / "hello-repo"
    make_repo(repo, {"README": "hello from git\n", "build.sh": "echo building > app.bin\n"})
    with git_provider(tmp) as git_url, artifact_store(tmp, tmp / "artifacts") as store_url:
        yield Plugins(git_url, store_url, tmp / "artifacts", repo)


@pytest.fixture(params=["docker", "shell"])
def runner_type(request) -> str:
    """Each executor must keep the same semantics: tests that take this run on both."""
    if request.param == "docker":
        request.getfixturevalue("docker_client")
    return request.param


def tar_of(*entries: tuple[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()
