"""Complete builds end to end, over HTTP, with the reference plugins: a checkout from git,
a build, an artifact fetched back through the API; unsafe resources; runner types;
timeouts; and nothing left behind. A Docker runner and a shell runner share the cluster."""

from __future__ import annotations

import io
import subprocess
import tarfile
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner_svc.executors.docker.executor import LABEL_RUNNER, LABEL_SPARE
from tests.e2e.runner_cluster import Bob, run_detail, runner_cluster, runner_id
from tests.plugins.processes import make_repo
from tests.support.http_stub import Answer, plugin_server
from tests.waiting import wait_until

pytestmark = pytest.mark.e2e
IMAGE = "bob-test/busybox:latest"
DOCKER, SHELL = runner_id("docker"), runner_id("shell")
SHELL_START = {"json": {"runner/type": "shell"}}


@pytest.fixture(scope="module")
def bob(rabbitmq_available, docker_client, tmp_path_factory) -> Iterator[Bob]:
    tmp = tmp_path_factory.mktemp("build")
    runners = [{"BOB_RUNNER_ID": DOCKER}, {"BOB_RUNNER_ID": SHELL, "BOB_RUNNER_TYPE": "shell"}]
    with runner_cluster(tmp, runners, plugins=True) as bob:
        # Given the reference plugins registered, as the README's tour does
        for kind, name in (("resource-providers", "git"), ("artifact-stores", "local")):
            r = bob.http.post(f"/{kind}/{name}", json={"url": bob.cluster.plugin_urls[name]})
            assert r.status_code == 202, r.text
        yield bob


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("repos") / "hello"
    make_repo(
        path,
        {
            "build.sh": 'mkdir -p dist\necho "hello, $WHO" > dist/hello.txt\n',
            "README": "a project\n",
        },
    )
    return path


def _checkout(repo: Path) -> dict:
    return {
        "name": "source",
        "type": "external",
        "provider": "git",
        "params": {"repo": str(repo), "ref": "main"},
    }


def _build(repo: Path) -> dict:
    return {
        "image": IMAGE,
        "vars": {"WHO": "bob"},
        "resources": [_checkout(repo)],
        "steps": [
            # As in Bob, a step runs inside the resource it needs, and the next one stays.
            {"cmd": "ls", "needs_resource": "source"},
            {
                "cmd": "sh build.sh && cat dist/hello.txt",
                "produces_artifact": {"name": "hello", "path": "dist", "store": "local"},
            },
        ],
    }


def _files(tar: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
        return {m.name: archive.extractfile(m).read() for m in archive if m.isreg()}


def _artifact(bob: Bob, name: str, run_id: str, artifact: str) -> bytes:
    r = bob.http.get(
        f"/pipelines/groups/dev/names/{name}/runs/{run_id}"
        f"/artifact-stores/local/artifact/{artifact}"
    )
    assert r.status_code == 200, r.text
    return r.content


@pytest.mark.parametrize("start", [{}, SHELL_START], ids=["docker", "shell"])
def test_a_build_checks_out_from_git_and_its_artifact_comes_back_through_the_api(
    bob, unique, repo, start
):
    # Given a pipeline that checks out a git repository, builds and keeps dist/
    bob.create_pipeline("dev", unique, _build(repo))
    bob.allow_runner_types("dev", unique, ["docker", "shell"])

    # When it runs
    run_id = bob.start("dev", unique, **start)

    # Then it passed, its log shows the checkout and the build
    assert bob.wait_terminal(run_id) == "passed", bob.log_lines(run_id)
    lines = bob.log_lines(run_id)
    assert "[bob] fetching resource source from provider git" in lines
    assert lines.index("README") < lines.index("hello, bob")
    assert "[bob] uploading artifact hello (source/dist) to store local" in lines
    # And the artifact is fetched through the API
    assert _files(_artifact(bob, unique, run_id, "hello")) == {"dist/hello.txt": b"hello, bob\n"}


def test_a_later_pipeline_uses_an_earlier_runs_artifact_as_an_internal_resource(bob, unique, repo):
    bob.create_pipeline("dev", unique, _build(repo))
    built = bob.start("dev", unique)
    assert bob.wait_terminal(built) == "passed"

    bob.create_pipeline(
        "dev",
        f"{unique}-use",
        {
            "image": IMAGE,
            "resources": [
                {
                    "name": "prebuilt",
                    "type": "internal",
                    "provider": "local",
                    "params": {
                        "group": "dev",
                        "name": unique,
                        "run_id": built,
                        "artifact": "hello",
                    },
                }
            ],
            "steps": [{"cmd": "cat dist/hello.txt", "needs_resource": "prebuilt"}],
        },
    )
    run_id = bob.start("dev", f"{unique}-use")

    assert bob.wait_terminal(run_id) == "passed"
    assert "hello, bob" in bob.log_lines(run_id)


@pytest.mark.parametrize("start", [{}, SHELL_START], ids=["docker", "shell"])
def test_a_provider_tar_with_a_dotdot_entry_fails_the_run_and_writes_nothing_outside(
    bob, unique, start
):
    escape = f"bob-e2e-escape-{uuid.uuid4().hex[:8]}"
    evil = io.BytesIO()
    with tarfile.open(fileobj=evil, mode="w") as tar:
        info = tarfile.TarInfo(f"../../{escape}")
        info.size = 5
        tar.addfile(info, io.BytesIO(b"owned"))
    with plugin_server() as provider:
        provider.routes["/bob_resource"] = Answer(200, evil.getvalue())
        bob.http.post(f"/resource-providers/{unique}", json={"url": provider.url})
        bob.create_pipeline(
            "dev",
            unique,
            {
                "image": IMAGE,
                "resources": [{"name": "res", "type": "external", "provider": unique}],
                "steps": [{"cmd": "echo never", "needs_resource": "res"}],
            },
        )
        bob.allow_runner_types("dev", unique, ["docker", "shell"])
        run_id = bob.start("dev", unique, **start)
        assert bob.wait_terminal(run_id) == "failed"
        bob.http.delete(f"/resource-providers/{unique}")

    reason = run_detail(bob, "dev", unique, run_id)["reason"]
    assert reason == (
        f"step 1 needs resource 'res': entry '../../{escape}' leaves the directory with '..'"
    )
    assert "never" not in bob.log_lines(run_id)
    assert not (Path(tempfile.gettempdir()) / escape).exists()


def test_jobs_are_routed_to_the_runner_of_their_type(bob, unique):
    bob.create_pipeline("dev", unique, {"image": IMAGE, "steps": [{"cmd": "echo hi"}]})
    bob.allow_runner_types("dev", unique, ["docker", "shell"])
    on_docker = bob.start("dev", unique)
    on_shell = bob.start("dev", unique, **SHELL_START)
    for run_id in (on_docker, on_shell):
        assert bob.wait_terminal(run_id) == "passed"

    docker, shell = (run_detail(bob, "dev", unique, r) for r in (on_docker, on_shell))
    assert (docker["runner-type"], docker["runner-id"]) == ("docker", DOCKER)
    assert (shell["runner-type"], shell["runner-id"]) == ("shell", SHELL)
    assert any(
        line.startswith("[bob] shell runner: steps run as local processes, not isolated")
        for line in bob.log_lines(on_shell)
    )


def test_a_step_over_its_timeout_fails_the_run_naming_the_step_and_the_limit(bob, unique):
    r = bob.http.post(
        f"/pipelines/groups/dev/names/{unique}",
        json={
            "image": IMAGE,
            "timeout": 60,
            "steps": [{"cmd": "echo one"}, {"cmd": "sleep 300", "timeout": 1}],
        },
    )
    assert r.status_code == 202, r.text
    run_id = bob.start("dev", unique)

    assert bob.wait_terminal(run_id, timeout=20) == "failed"
    assert run_detail(bob, "dev", unique, run_id)["reason"] == (
        "step 2 exceeded its timeout of 1 s"
    )


def test_a_batch_of_passed_failed_and_stopped_runs_leaves_no_container_image_or_directory(
    bob, unique, repo, docker_client
):
    def counts() -> tuple[int, int, int]:
        # Containers that are not another runner's (others may be at work on this engine).
        containers = docker_client.containers.list(all=True, sparse=True)
        # Spares kept for the next run do not count: they go when the runner stops.
        return (
            len(
                [
                    c
                    for c in containers
                    if (c.attrs.get("Labels") or {}).get(LABEL_RUNNER) in (None, DOCKER)
                    and LABEL_SPARE not in (c.attrs.get("Labels") or {})
                ]
            ),
            len(docker_client.images.list(all=True)),
            len(list(Path(tempfile.gettempdir()).glob(f"bob-{SHELL}-*"))),
        )

    before = counts()
    bob.create_pipeline("dev", f"{unique}-ok", _build(repo))
    bob.create_pipeline("dev", f"{unique}-bad", {"image": IMAGE, "steps": [{"cmd": "exit 3"}]})
    bob.create_pipeline(
        "dev", f"{unique}-long", {"image": IMAGE, "steps": [{"cmd": "echo long; sleep 300"}]}
    )
    for name in ("ok", "bad", "long"):
        bob.allow_runner_types("dev", f"{unique}-{name}", ["docker", "shell"])
    runs = [
        (name, bob.start("dev", f"{unique}-{name}", **start))
        for name in ("ok", "bad", "long")
        for start in ({}, SHELL_START)
    ]
    for name, run_id in runs:
        if name == "long":
            bob.wait_status(run_id, "running")
            r = bob.http.post(f"/pipelines/stop/groups/dev/names/{unique}-long/runs/{run_id}")
            assert r.status_code == 202, r.text

    ends = [(name, bob.wait_terminal(run_id)) for name, run_id in runs]

    assert ends == [("ok", "passed")] * 2 + [("bad", "failed")] * 2 + [("long", "stopped")] * 2
    # A run reports its end, then removes what it used.
    wait_until(
        lambda: counts() == before,
        timeout=30,
        what="nothing left",
        describe=lambda: f"{counts()} != {before}",
    )


def test_the_readme_tour_of_a_complete_build_works_as_written(bob, tmp_path):
    # The tour's commands, pointed at this cluster and a directory of the test's own
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    block = readme.split("### A complete build", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    block = block.split("# The same build without Docker", 1)[0]
    # The tour reads the status once the run has had time; a script waits for the end.
    status = "curl -s localhost:7777/pipelines/status/runs/$RUN"
    assert status in block
    script = (
        block.replace(status, f"sleep_until_done; {status}")
        .replace("localhost:7777", bob.cluster.api_url.removeprefix("http://"))
        .replace("http://127.0.0.1:8001", bob.cluster.plugin_urls["git"])
        .replace("http://127.0.0.1:8002", bob.cluster.plugin_urls["local"])
        .replace("/tmp/hello", str(tmp_path / "hello"))
    )
    wait = f"""sleep_until_done() {{ for _ in $(seq 1 300); do
      case "$(curl -s {bob.cluster.api_url}/pipelines/status/runs/$RUN)" in
        *passed*|*failed*|*stopped*) return;; esac; sleep 0.1; done; }}
    """
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", wait + script],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert '{"message": "passed"}' in done.stdout
    assert "hello from version 1.0" in done.stdout
    assert done.stdout.rstrip().endswith("dist/\ndist/hello.sh")
