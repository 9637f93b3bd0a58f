"""No run hangs (issue 10): a build container killed from outside, a run past its timeout,
an engine that goes away, and a real engine restart with spares and runs in flight: every
run ends, with a reason, and the runner takes jobs again once its engine is back.

Against a real cluster (tests/e2e/runner_cluster.py) and the real Docker engine. The
engine-away test puts a Unix socket proxy of its own between one runner and dockerd and
closes it; only test_an_engine_restart_* restarts dockerd itself (once, bounded, and
always leaves it running), which disturbs whatever else uses the engine meanwhile.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors
import pytest

from devcluster.test_image import IMAGE
from tests.e2e.runner_cluster import Bob, run_detail, runner_cluster, runner_id
from tests.support.engine_proxy import EngineProxy
from tests.waiting import wait_until

pytestmark = pytest.mark.e2e

GROUP = "hangs"
ENGINE_PID_FILE = "/var/run/docker.pid"


def _docker_runner(rid: str, **extra: str) -> dict[str, str]:
    return {
        "BOB_RUNNER_ID": rid,
        "BOB_RUNNER_TYPE": "docker",
        "BOB_RUNNER_CAPACITY": "2",
        "BOB_RUNNER_ENGINE_CHECK_S": "0.5",
        **extra,
    }


FAST = {"BOB_HEARTBEAT_S": "0.5"}


def _pipeline(bob: Bob, name: str, steps: list[str], **extra: object) -> None:
    steps_ = [{"cmd": cmd} for cmd in steps]
    bob.create_pipeline(GROUP, name, {"image": IMAGE, "steps": steps_, **extra})


def _container(client: docker.DockerClient, run_id: str) -> docker.models.containers.Container:
    return client.containers.get(f"bob-{run_id}-a1")


def _running_step(bob: Bob, client: docker.DockerClient, run_id: str, step: str) -> None:
    """Waits until the run's step has started in its container."""

    def started() -> bool:
        if bob.status(run_id) != "running":
            return False
        if not any(step in line for line in bob.log_lines(run_id)):
            return False
        with contextlib.suppress(docker.errors.NotFound):
            return _container(client, run_id).status == "running"
        return False

    wait_until(started, timeout=90, what=f"run {run_id} in {step!r}", describe=bob.logs_tail)


def _ended(bob: Bob, name: str, run_id: str, timeout: float = 60) -> tuple[str, str]:
    status = bob.wait_terminal(run_id, timeout=timeout)
    return status, run_detail(bob, GROUP, name, run_id)["reason"]


def test_a_container_killed_from_outside_fails_its_run_within_seconds_naming_it(
    rabbitmq_available, docker_client, tmp_path
):
    rid = runner_id("docker")
    with runner_cluster(tmp_path, [_docker_runner(rid)], env=FAST) as bob:
        # Given a run killed in a middle step (an exec) and one killed in its last step
        # (the container's own process)
        _pipeline(bob, "middle", ["sleep 300", "echo never"])
        _pipeline(bob, "last", ["sleep 301"])
        middle, last = bob.start(GROUP, "middle"), bob.start(GROUP, "last")
        _running_step(bob, docker_client, middle, "sleep 300")
        _running_step(bob, docker_client, last, "sleep 301")

        # When each container is killed from outside
        seconds = {}
        reasons = {}
        for name, run_id in (("middle", middle), ("last", last)):
            killed = time.monotonic()
            _container(docker_client, run_id).kill()
            status, reasons[name] = _ended(bob, name, run_id, timeout=60)
            seconds[name] = time.monotonic() - killed
            assert status == "failed", reasons[name]

        # Then each fails at once, naming what happened
        assert reasons["middle"] == (
            "the build container exited unexpectedly (exit 137) during step 1"
        ), reasons
        assert reasons["last"] == (
            "the build container was killed from outside (signal 9, exit 137) during step 1"
        ), reasons
        assert all(s < 30 for s in seconds.values()), seconds
        assert "never" not in bob.log_lines(middle)
        print(
            f"limits[hangs]: killed containers 2, runs failed 2, seconds to fail "
            f"{seconds['middle']:.1f} (middle step) {seconds['last']:.1f} (last step)"
        )


def test_dead_spares_are_not_taken(rabbitmq_available, docker_client, tmp_path):
    rid = runner_id("docker")
    with runner_cluster(tmp_path, [_docker_runner(rid)], env=FAST) as bob:
        # Given a runner's spare containers, killed from outside (as an engine's restart
        # kills them)
        _pipeline(bob, "quick", ["echo ok"])
        assert _ended(bob, "quick", bob.start(GROUP, "quick")) == ("passed", "")

        def spares() -> list:
            return docker_client.containers.list(filters={"name": f"bob-spare-{rid}"})

        wait_until(lambda: len(spares()) == 2, timeout=30, what="two spare containers")
        for spare in spares():
            spare.kill()

        # Then the next runs (one step: the container's own process, which would wait on
        # a dead container for ever) start containers of their own and pass
        started = time.monotonic()
        runs = [bob.start(GROUP, "quick") for _ in range(3)]
        assert [_ended(bob, "quick", r, timeout=60) for r in runs] == [("passed", "")] * 3
        dropped = bob.log_path.read_text().count("is not running any more: dropped")
        assert dropped == 2, bob.logs_tail()
        print(
            f"limits[hangs]: dead spares 2, dropped 2, next runs passed 3 "
            f"in {time.monotonic() - started:.1f} s"
        )


def test_a_run_past_the_default_timeout_fails_and_a_pipeline_timeout_overrides_it(
    rabbitmq_available, docker_client, tmp_path
):
    rid = runner_id("docker")
    runner = _docker_runner(rid, BOB_RUN_TIMEOUT_S="3")
    with runner_cluster(tmp_path, [runner], env=FAST) as bob:
        # Given a runner whose default run timeout is 3 s, a pipeline without a timeout
        # and one that allows itself 60 s
        _pipeline(bob, "endless", ["sleep 300"])
        _pipeline(bob, "patient", ["sleep 5", "echo done"], timeout=60)
        r = bob.http.get(f"/pipelines/groups/{GROUP}/names/patient")
        assert r.status_code == 200 and r.json()["message"]["timeout"] == 60, r.text

        endless, patient = bob.start(GROUP, "endless"), bob.start(GROUP, "patient")

        # Then the first fails at the default, its container gone; the second passes
        status, reason = _ended(bob, "endless", endless)
        assert status == "failed"
        assert reason == (
            "the run exceeded the runner's default timeout of 3 s (BOB_RUN_TIMEOUT_S) during step 1"
        )
        wait_until(
            lambda: not docker_client.containers.list(all=True, filters={"name": endless}),
            timeout=30,
            what="the timed-out run's container to be removed",
        )
        assert _ended(bob, "patient", patient) == ("passed", "")
        assert "done" in bob.log_lines(patient)

        # And a pipeline timeout below the default still applies
        _pipeline(bob, "brief", ["sleep 300"], timeout=1)
        brief = bob.start(GROUP, "brief")
        assert _ended(bob, "brief", brief) == (
            "failed",
            "the run exceeded the pipeline timeout of 1 s during step 1",
        )
        print("limits[hangs]: timeouts: default 3 s failed 1, override 60 s passed 1, 1 s failed 1")


def _runner_info(bob: Bob, rid: str) -> dict:
    r = bob.http.get("/cluster/info")
    assert r.status_code == 200, r.text
    return r.json()["message"][rid]


def test_a_runner_whose_engine_is_unreachable_takes_no_jobs_and_shows_it(
    rabbitmq_available, docker_client, tmp_path
):
    proxy = EngineProxy(tmp_path / "engine.sock")
    proxy.up()
    rid = runner_id("docker")
    runner = _docker_runner(rid, DOCKER_HOST=f"unix://{proxy.path}")
    try:
        with runner_cluster(tmp_path, [runner], env=FAST) as bob:
            _pipeline(bob, "quick", ["echo ok"])
            assert _ended(bob, "quick", bob.start(GROUP, "quick")) == ("passed", "")
            assert _runner_info(bob, rid)["engine-healthy"] is True

            # When its engine goes away
            proxy.down()
            wait_until(
                lambda: _runner_info(bob, rid)["engine-healthy"] is False,
                timeout=30,
                what="the cluster info to show the runner's engine down",
                describe=bob.logs_tail,
            )
            problem = _runner_info(bob, rid)["engine-problem"]
            assert problem.startswith("Docker engine unreachable"), problem
            health = bob.http.get("/can-we-build-it")
            assert health.status_code == 200, health.text
            assert health.json()["degraded"] == [f"runner {rid}: {problem}"]

            # Then a job waits in the queue instead of failing on that runner
            waiting = bob.start(GROUP, "quick")
            pending_for = 0.0
            started = time.monotonic()
            while time.monotonic() - started < 5:
                assert bob.status(waiting) == "pending"
                time.sleep(0.5)
            pending_for = time.monotonic() - started

            # And once the engine is back, the runner takes it and it passes
            proxy.up()
            assert _ended(bob, "quick", waiting, timeout=60) == ("passed", "")
            wait_until(
                lambda: _runner_info(bob, rid)["engine-healthy"] is True,
                timeout=30,
                what="the cluster info to show the engine back",
            )
            assert "degraded" not in bob.http.get("/can-we-build-it").json()
            print(
                f"limits[hangs]: engine away: job pending {pending_for:.1f} s, then passed; "
                "cluster info and /can-we-build-it showed the runner degraded"
            )
    finally:
        proxy.down()


# --- the engine restart ----------------------------------------------------------------


def _engine_answers() -> bool:
    return subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode == 0


def _start_engine() -> None:
    """As scripts/setup_services.sh starts it: in a session of its own, in the background."""
    subprocess.run(
        ["sh", "-c", "setsid nohup dockerd >>/var/log/dockerd.log 2>&1 </dev/null &"],
        check=True,
        timeout=30,
    )
    wait_until(_engine_answers, timeout=120, interval=1, what="dockerd to answer again")


@contextlib.contextmanager
def _engine_restart_allowed() -> Iterator[None]:
    """Makes sure dockerd runs at the end, whatever happened."""
    try:
        yield
    finally:
        if not _engine_answers():
            _start_engine()


def _restart_engine() -> float:
    """Stops dockerd (by the pid it wrote) and starts it again; seconds it took."""
    began = time.monotonic()
    pid = int(Path(ENGINE_PID_FILE).read_text().strip())
    os.kill(pid, signal.SIGTERM)
    wait_until(
        lambda: not Path(f"/proc/{pid}").exists(),
        timeout=120,
        interval=0.5,
        what="dockerd to exit",
    )
    _start_engine()
    return time.monotonic() - began


@pytest.mark.skipif(not os.access(ENGINE_PID_FILE, os.R_OK), reason="no dockerd of ours to restart")
def test_an_engine_restart_with_spares_and_runs_in_flight_ends_every_run_and_the_next_pass(
    rabbitmq_available, docker_client, tmp_path
):
    rid = runner_id("docker")
    with (
        _engine_restart_allowed(),
        runner_cluster(tmp_path, [_docker_runner(rid)], env=FAST) as bob,
    ):
        # Given a runner with spare containers of the image (made after a first run)
        _pipeline(bob, "quick", ["echo ok"])
        _pipeline(bob, "long", ["sleep 300", "echo never"])
        _pipeline(bob, "long-last", ["sleep 302"])
        assert _ended(bob, "quick", bob.start(GROUP, "quick")) == ("passed", "")
        wait_until(
            lambda: docker_client.containers.list(
                filters={"name": f"bob-spare-{rid}", "status": "running"}
            ),
            timeout=30,
            what="a spare container",
        )
        # and two runs in flight, one in a middle step, one in its last
        flying = {"long": bob.start(GROUP, "long"), "long-last": bob.start(GROUP, "long-last")}
        for run_id in flying.values():
            _running_step(bob, docker_client, run_id, "sleep 30")
        # (and the spares made for the runs after them, started in the background)
        spares = wait_until(
            lambda: len(docker_client.containers.list(filters={"name": f"bob-spare-{rid}"})),
            timeout=30,
            what="the next spare containers",
        )

        # When the engine restarts
        took = _restart_engine()

        # Then every run in flight ends, failed with a reason naming the container or
        # the engine
        ended = {name: _ended(bob, name, run_id, timeout=120) for name, run_id in flying.items()}
        for name, (status, reason) in ended.items():
            assert status == "failed", (name, reason)
            assert "container" in reason or "engine" in reason, (name, reason)

        # And the next runs, which would have taken the dead spares, pass
        wait_until(
            lambda: _runner_info(bob, rid)["engine-healthy"] is True,
            timeout=60,
            what="the runner to see its engine back",
        )
        after = [bob.start(GROUP, "quick") for _ in range(4)]
        results = [_ended(bob, "quick", run_id, timeout=120) for run_id in after]
        assert results == [("passed", "")] * 4, results
        print(
            f"limits[hangs]: engine restart ({took:.0f} s) with {spares} spare(s) and "
            f"{len(flying)} run(s) in flight: {len(ended)} ended failed "
            f"({'; '.join(r for _, r in ended.values())}), next {len(after)} passed"
        )
