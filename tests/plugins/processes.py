"""The reference plugins as real processes on free ports, for the tests that need them."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx

from devcluster.cluster import free_port
from tests.waiting import wait_until


@contextlib.contextmanager
def plugin_process(module: str, port_var: str, log: Path, **env: str) -> Iterator[str]:
    """Runs `python -m <module>` with its port in `port_var`; yields its base URL once
    GET /ping answers, and stops it (SIGTERM) on exit."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", module],
            env={**os.environ, port_var: str(port), **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )

    def up() -> bool:
        assert process.poll() is None, log.read_text()
        try:
            return httpx.get(f"{url}/ping", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(up, timeout=30, what=f"{module} to answer /ping")
        yield url
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def git_provider(tmp_path: Path) -> Iterator[str]:
    with plugin_process(
        "bob_plugins.resource_git", "BOB_GIT_PROVIDER_PORT", tmp_path / "git-provider.log"
    ) as url:
        yield url


@contextlib.contextmanager
def artifact_store(tmp_path: Path, directory: Path) -> Iterator[str]:
    with plugin_process(
        "bob_plugins.artifact_local",
        "BOB_ARTIFACT_STORE_PORT",
        tmp_path / "artifact-store.log",
        BOB_ARTIFACT_DIR=str(directory),
    ) as url:
        yield url


@contextlib.contextmanager
def logger(tmp_path: Path, directory: Path, **env: str) -> Iterator[str]:
    with plugin_process(
        "bob_plugins.logger_local",
        "BOB_LOGGER_PORT",
        tmp_path / "logger.log",
        BOB_LOGGER_DIR=str(directory),
        **env,
    ) as url:
        yield url


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args],
        check=True,
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "GIT_AUTHOR_NAME": "t",
            "GIT_AUTHOR_EMAIL": "t@example.com",
            "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@example.com",
        },
    ).stdout.strip()


def make_repo(path: Path, files: dict[str, str], branch: str = "main") -> str:
    """A git repository at `path` with `files` committed on `branch`; the commit id."""
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", branch)
    for name, text in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(text)
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "files")
    return git(path, "rev-parse", "HEAD")
