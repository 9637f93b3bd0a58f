"""Build containers are held to limits: hostile builds (a fork bomb, a memory hog) fail
alone beside a normal run, containers are confined and leave no volume behind, and a
pipeline may run its steps as a non-root user (issue 10). Against a running cluster with
one Docker runner of capacity 3."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker.errors
import pytest

from bob_common.config import BUILD_CAPS, ConfigError, RunnerSettings
from runner_svc.executors.docker.limits import OverCeiling, runner_for
from runner_svc.spec import NO_LIMITS, Limits
from tests.e2e.runner_cluster import Bob, runner_cluster, runner_id
from tests.plugins.processes import make_repo
from tests.waiting import wait_until

pytestmark = pytest.mark.e2e
IMAGE = "bob-test/busybox:latest"
VOLUME_IMAGE = "bob-test/busybox-volume:latest"
MIB = 1 << 20
RUNNER = {
    "BOB_RUNNER_ID": runner_id("limits"),
    "BOB_RUNNER_CAPACITY": "3",
    "BOB_RUNNER_MEMORY": "128Mi",
    "BOB_RUNNER_MAX_MEMORY": "512Mi",
    "BOB_RUNNER_CPUS": "0.5",
    "BOB_RUNNER_PIDS": "100",
}
# A fork bomb whose errors go to a file, then a wait of 10 s made of builtins (the pids
# are gone: nothing can be forked), then the bomb's first error in the log.
FORK_BOMB = (
    "mkfifo /tmp/f && exec 3<>/tmp/f; "
    "sh -c 'b(){ b|b& };b' >/dev/null 2>/tmp/e; "
    'read -t 10 l <&3; IFS= read -r l </tmp/e; echo "bomb: $l"; exit 1'
)
MEMORY_HOG = "x=a; while :; do x=$x$x; done"
NORMAL = "i=0; while [ $i -lt 15 ]; do echo tick $i; sleep 1; i=$((i+1)); done; echo normal done"


@pytest.fixture(scope="module")
def bob(rabbitmq_available, docker_client, tmp_path_factory) -> Iterator[Bob]:
    tmp = tmp_path_factory.mktemp("limits-containers")
    with runner_cluster(tmp, [RUNNER], plugins=True) as b:
        r = b.http.post("/resource-providers/git", json={"url": b.cluster.plugin_urls["git"]})
        assert r.status_code == 202, r.text
        yield b


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("repos") / "hello"
    make_repo(path, {"README": "a project\n"})
    return path


@pytest.fixture
def unique() -> str:
    return f"p-{uuid.uuid4().hex[:8]}"


def _pipeline(bob: Bob, name: str, *cmds: str, image: str = IMAGE, **extra) -> None:
    body = {"image": image, "steps": [{"cmd": c} for c in cmds], **extra}
    bob.create_pipeline("dev", name, body)


def _run(bob: Bob, name: str, run_id: str) -> dict:
    r = bob.http.get(f"/pipelines/groups/dev/names/{name}/runs/{run_id}")
    assert r.status_code == 200, r.text
    return r.json()["message"]


def _container_of(docker_client, run_id: str):
    """The running container of a run (a taken spare has the run in its name only)."""
    found = docker_client.containers.list(filters={"name": f"bob-{run_id}-a"})
    return found[0] if found else None


def test_a_fork_bomb_and_a_memory_hog_fail_alone_beside_a_normal_run(bob, unique):
    # Given a fork bomb, a memory hog (under the runner's default limit) and a normal run,
    # at once on one runner
    _pipeline(bob, f"{unique}-bomb", FORK_BOMB)
    _pipeline(bob, f"{unique}-hog", MEMORY_HOG)
    _pipeline(bob, f"{unique}-normal", NORMAL)
    normal = bob.start("dev", f"{unique}-normal")
    bomb = bob.start("dev", f"{unique}-bomb")
    hog = bob.start("dev", f"{unique}-hog")

    # Then the normal run passes, the hog fails naming its limit, the bomb fails with the
    # pids exhaustion in its log
    assert bob.wait_terminal(normal, timeout=120) == "passed", bob.logs_tail()
    assert bob.wait_terminal(hog, timeout=120) == "failed"
    assert bob.wait_terminal(bomb, timeout=120) == "failed"
    hog_reason = _run(bob, f"{unique}-hog", hog).get("reason", "")
    bomb_reason = _run(bob, f"{unique}-bomb", bomb).get("reason", "")
    bomb_log = bob.log_lines(bomb)
    normal_log = bob.log_lines(normal)
    print(
        f"limits[containers]: normal run passed with {sum('tick' in x for x in normal_log)}"
        f" ticks; hog: {hog_reason!r}; bomb: {bomb_reason!r}, "
        f"{sum('Resource temporarily unavailable' in x for x in bomb_log)} fork error line(s)"
    )
    assert "normal done" in normal_log
    assert hog_reason == "step 1 killed: out of memory (limit 128 MiB)"
    assert bomb_reason == "step 1 exited with 1"
    assert any("can't fork: Resource temporarily unavailable" in x for x in bomb_log), bomb_log


def test_quotas_ask_for_less_or_up_to_the_ceiling_and_above_it_fail_naming_it(
    bob, unique, docker_client
):
    # Given pipelines asking for less than the default, for more up to the ceiling, and
    # above the ceiling
    _pipeline(bob, f"{unique}-less", MEMORY_HOG, quotas={"limits": {"mem": "32Mi"}})
    _pipeline(
        bob,
        f"{unique}-more",
        "echo started; sleep 60",
        quotas={"limits": {"mem": "512Mi"}},
    )
    _pipeline(bob, f"{unique}-over", "echo never", quotas={"limits": {"mem": "1Gi"}})
    less = bob.start("dev", f"{unique}-less")
    more = bob.start("dev", f"{unique}-more")
    over = bob.start("dev", f"{unique}-over")

    # Then each gets what it asked for, or fails saying which limit it is over
    assert bob.wait_terminal(less, timeout=120) == "failed"
    assert _run(bob, f"{unique}-less", less)["reason"] == (
        "step 1 killed: out of memory (limit 32 MiB)"
    )
    assert bob.wait_terminal(over, timeout=120) == "failed"
    over_reason = _run(bob, f"{unique}-over", over)["reason"]
    assert over_reason == (
        "quotas.limits.mem asks for 1 GiB, above this runner's limit of 512 MiB "
        "(BOB_RUNNER_MAX_MEMORY)"
    )
    assert "never" not in bob.log_lines(over)
    wait_until(lambda: "started" in bob.log_lines(more), timeout=60, what="the step")
    container = _container_of(docker_client, more)
    assert container is not None
    memory = container.attrs["HostConfig"]["Memory"]
    bob.http.post(f"/pipelines/stop/runs/{more}")
    assert bob.wait_terminal(more, timeout=60) == "stopped"
    print(
        f"limits[containers]: quota 512Mi -> {memory // MIB} MiB; over the ceiling: {over_reason!r}"
    )
    assert memory == 512 * MIB


def test_a_build_container_is_confined(bob, unique, docker_client):
    # Given a run that shows what its process may do
    _pipeline(bob, unique, "grep -E '^(NoNewPrivs|CapEff|CapBnd)' /proc/self/status; sleep 60")
    run_id = bob.start("dev", unique)
    wait_until(
        lambda: any(x.startswith("CapBnd") for x in bob.log_lines(run_id)),
        timeout=60,
        what="the step's status lines",
    )

    # Then its container has the runner's limits, no new privileges and few capabilities
    container = _container_of(docker_client, run_id)
    assert container is not None
    host = container.attrs["HostConfig"]
    lines = bob.log_lines(run_id)
    bob.http.post(f"/pipelines/stop/runs/{run_id}")
    bob.wait_terminal(run_id, timeout=60)
    seen = {k: host[k] for k in ("Memory", "MemorySwap", "NanoCpus", "PidsLimit", "CapDrop")}
    print(f"limits[containers]: host config {seen}, caps kept {host['CapAdd']}, {lines}")
    assert seen == {
        "Memory": 128 * MIB,
        "MemorySwap": 128 * MIB,
        "NanoCpus": 500_000_000,
        "PidsLimit": 100,
        "CapDrop": ["ALL"],
    }
    assert sorted(host["CapAdd"]) == sorted(BUILD_CAPS)
    assert "no-new-privileges" in host["SecurityOpt"]
    # CHOWN, DAC_OVERRIDE, FOWNER, FSETID, KILL, SETGID, SETUID: bits 0, 1, 3-7
    assert "NoNewPrivs:\t1" in lines
    assert "CapEff:\t00000000000000fb" in lines
    assert "CapBnd:\t00000000000000fb" in lines


@pytest.fixture(scope="module")
def volume_image(docker_client) -> str:
    dockerfile = f"FROM {IMAGE}\nVOLUME /data\n".encode()
    docker_client.images.build(fileobj=io.BytesIO(dockerfile), tag=VOLUME_IMAGE, rm=True)
    return VOLUME_IMAGE


def test_no_volume_is_left_behind(bob, unique, docker_client, volume_image):
    # Given a run of an image that declares a VOLUME, which the run writes to
    _pipeline(bob, unique, "echo x > /data/f; echo started; sleep 3", image=volume_image)
    run_id = bob.start("dev", unique)
    wait_until(lambda: "started" in bob.log_lines(run_id), timeout=60, what="the step")
    container = _container_of(docker_client, run_id)
    assert container is not None
    volumes = [m["Name"] for m in container.attrs["Mounts"] if m["Type"] == "volume"]
    assert len(volumes) == 1

    # When it has passed
    assert bob.wait_terminal(run_id, timeout=60) == "passed"

    # Then its anonymous volume went with its container
    def gone() -> bool:
        try:
            docker_client.volumes.get(volumes[0])
        except docker.errors.NotFound:
            return True
        return False

    wait_until(gone, timeout=30, what=f"volume {volumes[0]} to be removed")
    left = sum(not gone() for _ in volumes)
    print(f"limits[containers]: {len(volumes)} anonymous volume(s) of the run, {left} left")


def test_a_pipeline_may_run_its_steps_as_a_user(bob, unique, repo):
    # Given a pipeline with a user, and one without, that write in the working directory
    # and in a resource checked out into it
    steps = ("echo uid $(id -u) gid $(id -g)", "touch mine; ls -n mine")
    source = {
        "name": "source",
        "type": "external",
        "provider": "git",
        "params": {"repo": str(repo), "ref": "main"},
    }
    build = {
        "cmd": "mkdir dist && echo built > dist/out && ls -n README",
        "needs_resource": "source",
    }
    body = {"image": IMAGE, "resources": [source], "steps": [{"cmd": c} for c in steps] + [build]}
    bob.create_pipeline("dev", f"{unique}-user", {**body, "user": "1000:1000"})
    bob.create_pipeline("dev", f"{unique}-root", body)

    # Then it reads back as posted, and its steps run as that user in a working directory
    # of theirs; the other's as the image's user
    r = bob.http.get(f"/pipelines/groups/dev/names/{unique}-user")
    assert r.status_code == 200, r.text
    assert r.json()["message"]["user"] == "1000:1000"
    r = bob.http.get(f"/pipelines/groups/dev/names/{unique}-root")
    assert "user" not in r.json()["message"]
    as_user = bob.start("dev", f"{unique}-user")
    as_root = bob.start("dev", f"{unique}-root")
    assert bob.wait_terminal(as_user, timeout=60) == "passed", bob.log_lines(as_user)
    assert bob.wait_terminal(as_root, timeout=60) == "passed"
    user_log, root_log = bob.log_lines(as_user), bob.log_lines(as_root)
    print(f"limits[containers]: user run {user_log}; image's user {root_log}")
    assert "uid 1000 gid 1000" in user_log
    assert any(x.split()[2:4] == ["1000", "1000"] for x in user_log if x.endswith(" mine"))
    assert any(x.split()[2:4] == ["1000", "1000"] for x in user_log if x.endswith(" README"))
    assert "uid 0 gid 0" in root_log
    assert any(x.split()[2:4] == ["0", "0"] for x in root_log if x.endswith(" README"))


@pytest.mark.parametrize(
    "user", ["root; rm -rf /", "1000", "nobody", "1000:", ":1000", "1" * 12 + ":1", "-1:0"]
)
def test_a_user_that_is_not_one_is_refused_at_the_put(bob, unique, user):
    r = bob.http.post(
        f"/pipelines/groups/dev/names/{unique}",
        json={"image": IMAGE, "steps": [{"cmd": "true"}], "user": user},
    )
    assert r.status_code == 400, r.text
    assert "user" in r.text


# --- the runner's defaults and ceilings, as pure rules ----------------------------------


def _settings(**env: str) -> RunnerSettings:
    return RunnerSettings.from_env({"BOB_RUNNER_ID": "r", **env})


def test_defaults_apply_without_quotas_and_quotas_within_the_ceilings():
    settings = _settings(BOB_RUNNER_MAX_MEMORY="1Gi", BOB_RUNNER_CPUS="1", BOB_RUNNER_PIDS="50")
    node = {"cores": 4, "mem_total": 8 << 30}
    # No quotas: the runner's defaults (2 GiB lowered to the 1 GiB ceiling; 1 of 4 cores)
    assert runner_for(NO_LIMITS, settings, **node) == Limits(cpu=0.25, mem_bytes=1 << 30, pids=50)
    # Less, or more up to the ceiling: as asked
    asked = Limits(cpu=1.0, mem_bytes=64 * MIB)
    assert runner_for(asked, settings, **node) == Limits(cpu=1.0, mem_bytes=64 * MIB, pids=50)
    # A request above the default raises the limit to it
    request = Limits(mem_request_bytes=3 << 30)
    assert runner_for(request, _settings(), **node).mem_bytes == 3 << 30
    # Defaults: 2 GiB, every core, 1024 processes
    assert runner_for(NO_LIMITS, _settings(), **node) == Limits(
        cpu=1.0, mem_bytes=2 << 30, pids=1024
    )


@pytest.mark.parametrize(
    ("limits", "reason"),
    [
        (
            Limits(mem_bytes=2 << 30),
            "quotas.limits.mem asks for 2 GiB, above this runner's limit of 1 GiB "
            "(BOB_RUNNER_MAX_MEMORY)",
        ),
        (
            Limits(mem_request_bytes=2 << 30),
            "quotas.requests.mem asks for 2 GiB, above this runner's limit of 1 GiB "
            "(BOB_RUNNER_MAX_MEMORY)",
        ),
        (
            Limits(cpu=0.5),
            "quotas.limits.cpu 0.5 asks for 2 of the node's 4 cores, above this runner's "
            "limit of 1 of them (BOB_RUNNER_MAX_CPUS)",
        ),
    ],
)
def test_quotas_above_a_ceiling_are_refused_naming_it(limits, reason):
    settings = _settings(BOB_RUNNER_MAX_MEMORY="1Gi", BOB_RUNNER_MAX_CPUS="1")
    with pytest.raises(OverCeiling) as refused:
        runner_for(limits, settings, cores=4, mem_total=8 << 30)
    assert str(refused.value) == reason


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"BOB_RUNNER_MEMORY": "lots"}, "BOB_RUNNER_MEMORY"),
        ({"BOB_RUNNER_MAX_CPUS": "-1"}, "BOB_RUNNER_MAX_CPUS"),
        ({"BOB_RUNNER_CAPS": "CHOWN,ALL"}, "BOB_RUNNER_CAPS"),
        ({"BOB_RUNNER_PIDS": "many"}, "BOB_RUNNER_PIDS"),
    ],
)
def test_a_wrong_setting_is_refused_naming_it(env, named):
    with pytest.raises(ConfigError, match=named):
        _settings(**env)
