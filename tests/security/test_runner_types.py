"""Runner types are an allow-list, and the shell runner runs steps unprivileged and leaves
nothing behind: attacks and uses against a running cluster with a Docker runner and a
shell runner (issue 14)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from bob_common import topology
from bob_common.config import SHELL_UIDS, RunnerSettings
from runner_svc.executors.shell.executor import ShellExecutor
from runner_svc.executors.shell.identity import processes_of
from tests.e2e.runner_cluster import Bob, run_detail, runner_cluster, runner_id
from tests.waiting import wait_until

pytestmark = pytest.mark.e2e
IMAGE = "bob-test/busybox:latest"
SHELL = runner_id("shell")
SHELL_START = {"json": {"runner/type": "shell"}}


@pytest.fixture(scope="module")
def bob(rabbitmq_available, docker_client, tmp_path_factory) -> Iterator[Bob]:
    runners = [
        {"BOB_RUNNER_ID": runner_id("docker")},
        {"BOB_RUNNER_ID": SHELL, "BOB_RUNNER_TYPE": "shell", "BOB_RUNNER_CAPACITY": "2"},
    ]
    with runner_cluster(tmp_path_factory.mktemp("runner-types"), runners) as b:
        yield b


@pytest.fixture
def unique() -> str:
    return f"p-{uuid.uuid4().hex[:8]}"


def _pipeline(bob: Bob, name: str, *cmds: str, **extra) -> None:
    bob.create_pipeline("dev", name, {"image": IMAGE, "steps": [{"cmd": c} for c in cmds], **extra})


def _runner_types(bob: Bob, name: str) -> dict:
    r = bob.http.get(f"/pipelines/groups/dev/names/{name}/runner-types")
    assert r.status_code == 200, r.text
    return r.json()["message"]


def _shell_jobs_queued(bob: Bob) -> int:
    vhost = bob.queue_url.rsplit("/", 1)[1]
    done = subprocess.run(
        ["rabbitmqctl", "-q", "list_queues", "-p", vhost, "name", "messages"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    rows = dict(line.split() for line in done.stdout.splitlines() if len(line.split()) == 2)
    return int(rows.get(topology.job_queue_name("shell"), 0))


def _shell_runner_pid(bob: Bob) -> int:
    [runner] = [s for s in bob.cluster.runners if s.env.get("BOB_RUNNER_ID") == SHELL]
    assert runner.process is not None
    return runner.process.pid


def _passed_lines(bob: Bob, run_id: str) -> list[str]:
    status = bob.wait_terminal(run_id)
    lines = bob.log_lines(run_id)
    assert status == "passed", "\n".join(lines)
    return lines


def _value(lines: list[str], key: str) -> str:
    """The rest of the one log line that starts with `key` and a space."""
    [found] = [line.split(" ", 1)[1] for line in lines if line.startswith(key + " ")]
    return found


# --- the allow-list ------------------------------------------------------------------


def test_a_shell_start_of_a_pipeline_not_granted_is_refused_naming_it_and_nothing_is_queued(
    bob, unique
):
    # Given a pipeline nobody granted anything, and a shell runner at work in the cluster
    _pipeline(bob, unique, "id -u")
    before = _shell_jobs_queued(bob)

    # When a caller routes a run of it to the shell runner (the alias and odd spellings too)
    refused = bob.http.post(f"/pipelines/start/groups/dev/names/{unique}", **SHELL_START)
    with_logger = bob.http.post(
        f"/pipelines/start/groups/dev/names/{unique}/loggers/none", **SHELL_START
    )

    # Then it is refused with a message naming the type, the pipeline and the way out
    assert refused.status_code == 422, refused.text
    message = refused.json()["message"]
    assert f"'shell' is not allowed for pipeline dev/{unique}" in message
    assert f"PUT /pipelines/groups/dev/names/{unique}/runner-types" in message
    assert with_logger.status_code == 422, with_logger.text
    # and nothing was recorded or queued
    runs = bob.http.get(f"/pipelines/groups/dev/names/{unique}/runs")
    assert runs.status_code == 200 and runs.json()["message"] == []
    assert _shell_jobs_queued(bob) == before == 0


def test_the_default_list_applies_until_an_admin_sets_one_and_goes_with_the_pipeline(bob, unique):
    # Given a new pipeline: the cluster's default applies, and it runs on docker
    _pipeline(bob, unique, "echo hi")
    assert _runner_types(bob, unique) == {"runner-types": ["docker"], "default": True}
    assert bob.wait_terminal(bob.start("dev", unique)) == "passed"

    # When an admin allows shell only
    r = bob.http.put(f"/pipelines/groups/dev/names/{unique}/runner-types", json=["shell"])
    assert r.status_code == 200, r.text
    assert r.json()["message"] == {"runner-types": ["shell"], "default": False}
    # Then docker is refused now, and the list outlives a replaced definition
    refused = bob.http.post(f"/pipelines/start/groups/dev/names/{unique}")
    assert refused.status_code == 422 and "'docker' is not allowed" in refused.text
    _pipeline(bob, unique, "echo replaced")
    assert _runner_types(bob, unique)["runner-types"] == ["shell"]

    # When the pipeline is deleted and made again, the grant is gone with it
    assert bob.http.delete(f"/pipelines/groups/dev/names/{unique}").status_code == 202
    _pipeline(bob, unique, "echo again")
    assert _runner_types(bob, unique) == {"runner-types": ["docker"], "default": True}
    # and an admin's DELETE of a list brings the default back
    bob.allow_runner_types("dev", unique, ["shell"])
    r = bob.http.delete(f"/pipelines/groups/dev/names/{unique}/runner-types")
    assert r.status_code == 200 and r.json()["message"]["default"] is True


def test_malformed_lists_and_unknown_pipelines_are_refused_clearly(bob, unique):
    _pipeline(bob, unique, "echo hi")
    path = f"/pipelines/groups/dev/names/{unique}/runner-types"
    for body in (["bad type!"], "shell", {"runner-types": ["shell"]}, [1]):
        r = bob.http.put(path, json=body)
        assert r.status_code == 400, (body, r.text)
    assert _runner_types(bob, unique)["default"] is True
    missing = bob.http.put("/pipelines/groups/dev/names/nope-nothing/runner-types", json=[])
    assert missing.status_code == 404 and "not found" in missing.json()["message"]


# --- the shell runner, once granted --------------------------------------------------


def test_a_granted_shell_run_runs_unprivileged_with_a_clean_environment(bob, unique):
    # Given a pipeline an admin granted the shell runner
    _pipeline(
        bob,
        unique,
        "echo uid $(id -u); echo groups $(id -G); echo umask $(umask)",
        "echo mode $(stat -c %a .); echo home $HOME",
        "echo bobvars $(env | grep -c '^BOB_')",
        f"cat /proc/{_shell_runner_pid(bob)}/environ >/dev/null 2>&1 && echo runner readable"
        " || echo runner hidden",
        "touch /etc/bob-owned 2>/dev/null && echo root write || echo no root write",
        vars={"PLAIN": "yes"},
    )
    bob.allow_runner_types("dev", unique, ["shell"])

    # When it runs on the shell runner
    run_id = bob.start("dev", unique, **SHELL_START)
    lines = _passed_lines(bob, run_id)

    # Then it ran there, and the run shows the type it asked for
    detail = run_detail(bob, "dev", unique, run_id)
    assert (detail["runner-type"], detail["runner-id"]) == ("shell", SHELL)
    # as a uid of the run's own, never root, with no other group and a private umask
    uid = int(_value(lines, "uid"))
    assert uid != 0 and SHELL_UIDS[0] <= uid <= SHELL_UIDS[1]
    assert _value(lines, "groups") == str(uid)
    assert _value(lines, "umask") == "0077"
    # in a directory that is the run's alone
    assert _value(lines, "mode") == "700"
    # with none of the runner's variables, unable to read the runner's, or write as root
    assert _value(lines, "bobvars") == "0"
    assert "runner hidden" in lines and "runner readable" not in lines
    assert "no root write" in lines and not Path("/etc/bob-owned").exists()


def test_a_run_cannot_read_another_runs_directory(bob, unique):
    # Given a run that keeps a secret in its directory while it runs
    _pipeline(bob, f"{unique}-a", "echo s3cret > secret; echo dir $PWD; sleep 6")
    _pipeline(
        bob,
        f"{unique}-b",
        # waits for the other run's directory, then tries to read its secret
        f'for _ in $(seq 50); do ls -d /tmp/bob-{SHELL}-r-*/ | grep -v "$PWD" && break;'
        " sleep 0.1; done",
        f"cat /tmp/bob-{SHELL}-r-*/secret 2>&1 | grep -c s3cret | sed 's/^/read /'",
    )
    for name in (f"{unique}-a", f"{unique}-b"):
        bob.allow_runner_types("dev", name, ["shell"])

    a = bob.start("dev", f"{unique}-a", **SHELL_START)
    bob.wait_status(a, "running")
    b = bob.start("dev", f"{unique}-b", **SHELL_START)
    lines_b = _passed_lines(bob, b)
    lines_a = _passed_lines(bob, a)

    # Then the other run saw the directory but could not read the secret
    assert any(line.startswith(_value(lines_a, "dir")) for line in lines_b), lines_b
    assert _value(lines_b, "read") == "0"


# A step leaving a `setsid` child and a double-forked daemon, recording their pids in
# the run's directory; the next step proves they outlived the first and its process group.
LEAVE_BEHIND = (
    "setsid sh -c 'sleep 1000' & echo $! > setsid.pid;"
    " sh -c 'sh -c \"sleep 1001 & echo \\$! > daemon.pid\" &';"
    " sleep 0.3; echo leftovers $(cat setsid.pid daemon.pid)"
)
STILL_ALIVE = "kill -0 $(cat setsid.pid) $(cat daemon.pid) && echo both alive"


def _gone(pids: list[int], uid: int) -> bool:
    def dead(pid: int) -> bool:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return True
        return state == "Z"

    return all(dead(p) for p in pids) and processes_of(uid) == []


def test_setsid_children_and_double_forked_daemons_are_killed_when_the_run_ends(bob, unique):
    # Given a granted pipeline whose first step leaves processes outside its group
    _pipeline(bob, unique, "echo uid $(id -u); " + LEAVE_BEHIND, STILL_ALIVE)
    bob.allow_runner_types("dev", unique, ["shell"])

    # When it runs and passes
    lines = _passed_lines(bob, bob.start("dev", unique, **SHELL_START))

    # Then they were alive after their step, and are gone after the run
    assert "both alive" in lines
    pids = [int(p) for p in _value(lines, "leftovers").split()]
    uid = int(_value(lines, "uid"))
    wait_until(lambda: _gone(pids, uid), timeout=10, what=f"the processes of uid {uid} to end")


@pytest.mark.parametrize("end", ["timeout", "stop"])
def test_leftovers_are_killed_when_a_run_times_out_or_is_stopped(bob, unique, end):
    # Given a granted pipeline that leaves processes behind, then hangs
    steps = [{"cmd": "echo uid $(id -u); " + LEAVE_BEHIND}, {"cmd": "echo hanging; sleep 300"}]
    if end == "timeout":
        steps[1]["timeout"] = 5
    bob.create_pipeline("dev", unique, {"image": IMAGE, "steps": steps})
    bob.allow_runner_types("dev", unique, ["shell"])
    run_id = bob.start("dev", unique, **SHELL_START)
    wait_until(lambda: "hanging" in bob.log_lines(run_id), timeout=30, what="the hanging step")
    lines = bob.log_lines(run_id)
    pids = [int(p) for p in _value(lines, "leftovers").split()]
    uid = int(_value(lines, "uid"))
    assert not _gone(pids, uid)  # they run while the run does

    # When it times out or is stopped
    if end == "stop":
        r = bob.http.post(f"/pipelines/stop/runs/{run_id}")
        assert r.status_code == 202, r.text
    assert bob.wait_terminal(run_id) == ("failed" if end == "timeout" else "stopped")

    # Then nothing it started is left
    wait_until(lambda: _gone(pids, uid), timeout=10, what=f"the processes of uid {uid} to end")


def test_a_shell_runner_starting_kills_what_the_runs_of_a_dead_runner_left(tmp_path):
    # Given a daemon of a run whose runner died (its uid's lock went with it)
    uid = 900_990
    left = subprocess.Popen(["setsid", "sleep", "1000"], user=uid, group=uid, extra_groups=[])
    wait_until(lambda: processes_of(uid), timeout=10, what="the leftover to run")
    env = {"BOB_RUNNER_TYPE": "shell", "BOB_SHELL_RUNNER_UIDS": f"{uid}-{uid + 1}"}
    executor = ShellExecutor(
        RunnerSettings.from_env(env), root=str(tmp_path), lock_dir=str(tmp_path / "locks")
    )

    # When a shell runner starts on the host
    async def start_and_close() -> None:
        await executor.start()
        await executor.close()

    asyncio.run(start_and_close())

    # Then the leftover is gone
    assert left.wait(timeout=10) == -9
    assert processes_of(uid) == []


# --- what may not start --------------------------------------------------------------


def _start_fails(module: str, env: dict[str, str], *, as_nobody: bool = False) -> str:
    code = f"import sys, {module}.cli as cli; "
    if as_nobody:
        # Dropped once the interpreter has loaded what it needs (its home is root's alone).
        code += "import os, runner_svc.executors.shell.executor; "
        code += "os.setgroups([]); os.setgid(65534); os.setuid(65534); "
    done = subprocess.run(
        [sys.executable, "-c", code + "sys.exit(cli.main())"],
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
    )
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)  # RET_CONFIG
    return done.stdout + done.stderr


def test_a_default_list_holding_shell_stops_entities_from_starting():
    out = _start_fails("entities_svc", {"BOB_RUNNER_TYPES_ALLOWED": "docker,shell"})
    assert "BOB_RUNNER_TYPES_ALLOWED must not contain shell" in out


def test_a_shell_runner_that_would_run_steps_as_root_or_as_itself_refuses_to_start():
    shell = {"BOB_RUNNER_TYPE": "shell"}
    as_root = _start_fails("runner_svc", {**shell, "BOB_SHELL_RUNNER_UIDS": "0-10"})
    assert "BOB_SHELL_RUNNER_UIDS='0-10'" in as_root
    not_root = _start_fails("runner_svc", shell, as_nobody=True)
    assert "the shell runner must start as root" in not_root
    # nor one whose runs' uids are someone's: it kills all their processes
    someone = _start_fails("runner_svc", {**shell, "BOB_SHELL_RUNNER_UIDS": "65534"})
    assert "BOB_SHELL_RUNNER_UIDS holds the uids of nobody (65534)" in someone
