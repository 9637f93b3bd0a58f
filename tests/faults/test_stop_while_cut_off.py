"""A stop sent while the run's runner is cut off from the broker: the broadcast on
bob.control never reaches it, but the runner renews its leases with entities over gRPC,
and the answer orders the stop; the runner ends the step at once and reports the run
STOPPED once the broker is reachable again. And a pause and a stop sent while entities
and the API are cut off from it: answered 202 all the same (entities owes the broadcast,
from its outbox), and obeyed by the runner through its lease renewals."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import docker.errors
import pytest

from tests.conftest import RABBIT_HOST, fresh_vhost
from tests.e2e.runner_cluster import Bob, runner_cluster, runner_id
from tests.faults.harness import (
    FAST,
    GROUP,
    Figures,
    detail,
    output_of,
    pipeline,
)
from tests.support.containers import left_after, run_containers
from tests.support.tcp_proxy import TcpProxy, tcp_proxy
from tests.waiting import wait_until

pytestmark = [pytest.mark.faults, pytest.mark.timeout(300)]

# A step nothing else in the container runs, to tell whether it is still alive.
STEP = "sleep 301"


def _step_alive(container) -> bool:
    try:
        container.reload()
        if container.status != "running":
            return False
        processes = container.top()["Processes"] or []
    except docker.errors.APIError:  # gone, or stopping
        return False
    return any(STEP in " ".join(process) for process in processes)


@contextlib.contextmanager
def _run_in_a_long_step(
    tmp_path, docker_client, unique: str, *, runner_cut_off: bool
) -> Iterator[tuple[Bob, TcpProxy, str, Any]]:
    """A cluster where the runner (or else entities and the API) alone reaches the broker
    through a proxy that the test can cut, and a run busy in a long step there:
    (bob, the proxy, the run id, its container)."""
    host, port = RABBIT_HOST.split(":")
    with fresh_vhost() as queue_url, tcp_proxy(host, int(port)) as proxy:
        vhost = queue_url.rsplit("/", 1)[1]
        proxied = f"amqp://guest:guest@127.0.0.1:{proxy.port}/{vhost}"
        runner = {
            "BOB_RUNNER_ID": runner_id("docker"),
            "BOB_RUNNER_CAPACITY": "1",
            "BOB_QUEUE_URL": proxied if runner_cut_off else queue_url,
        }
        env = {**FAST, "BOB_QUEUE_URL": queue_url if runner_cut_off else proxied}
        with runner_cluster(tmp_path, [runner], env=env, queue_url=queue_url) as bob:
            pipeline(bob, unique, f"echo started; {STEP}", "echo never")
            run_id = bob.start(GROUP, unique)
            bob.wait_status(run_id, "running")
            wait_until(
                lambda: "started" in output_of(bob.log_lines(run_id)),
                timeout=30,
                what="the step to start",
                describe=bob.logs_tail,
            )
            [container] = run_containers(docker_client, run_id)
            yield bob, proxy, run_id, container


def test_a_stop_sent_while_the_runner_is_cut_off_from_the_broker_ends_the_run_stopped_after_it_reconnects(  # noqa: E501
    tmp_path, docker_client, unique
):
    # Given the run busy in a long step, on a runner that reaches the broker by a proxy
    with _run_in_a_long_step(tmp_path, docker_client, unique, runner_cut_off=True) as (
        bob,
        proxy,
        run_id,
        container,
    ):
        assert _step_alive(container)

        # When its runner is cut off from the broker, and the run is stopped
        proxy.cut()
        try:
            r = bob.http.post(f"/pipelines/stop/groups/{GROUP}/names/{unique}/runs/{run_id}")
            assert r.status_code == 202, r.text
            # Then the stop reaches the runner without the broker: the step ends
            try:
                wait_until(
                    lambda: not _step_alive(container),
                    timeout=60,
                    what="the step to be stopped while cut off",
                )
                stopped_while_cut = True
            except AssertionError:
                stopped_while_cut = False
            # And the runner really is cut off: it has tried to reconnect, in vain
            wait_until(
                lambda: proxy.counts.refused,
                timeout=60,
                what="the runner to try to reconnect",
                describe=bob.logs_tail,
            )
            status_while_cut = bob.status(run_id)
        finally:
            proxy.restore()

        # And once the runner reconnects, the run is stopped
        status = bob.wait_terminal(run_id, timeout=120)
        final = detail(bob, unique, run_id) or {}
        output = output_of(bob.log_lines(run_id))
        leftover = left_after(docker_client, run_id, timeout=30)
        figures = Figures.of_one_run(
            "stop-while-cut-off",
            status,
            duplicated=int(final.get("attempt", 1) > 1),
            extra={
                "outcome": status,
                "reason": repr(final.get("reason")),
                "step_stopped_while_cut": stopped_while_cut,
                "status_while_cut": status_while_cut,
                "connections_reset": proxy.counts.reset,
                "reconnects_refused": proxy.counts.refused,
                "connections_through_proxy": proxy.counts.accepted,
                "leftover_containers": len(leftover),
            },
        )
        message = figures.show()
        assert stopped_while_cut, f"{message}\n{bob.logs_tail()}"
        assert status == "stopped", f"{message}\n{bob.logs_tail()}"
        assert final.get("reason") == "stopped by request", message
        assert final.get("attempt") == 1, message
        assert "never" not in output, message
        assert leftover == [], message


def _state(container) -> str:
    try:
        container.reload()
    except docker.errors.NotFound:
        return "gone"
    return container.status


def test_a_pause_and_a_stop_sent_while_entities_and_the_api_are_cut_off_from_the_broker_are_answered_202_and_obeyed(  # noqa: E501
    tmp_path, docker_client, unique
):
    # Given a run busy in a long step, entities and the API reaching the broker by a proxy
    with _run_in_a_long_step(tmp_path, docker_client, unique, runner_cut_off=False) as (
        bob,
        proxy,
        run_id,
        container,
    ):
        runs = f"groups/{GROUP}/names/{unique}/runs/{run_id}"
        # When entities and the API are cut off from the broker
        proxy.cut()
        try:
            # Then a pause is answered 202, and the runner pauses the run
            r = bob.http.post(f"/pipelines/pause/{runs}")
            assert r.status_code == 202, r.text
            wait_until(
                lambda: _state(container) == "paused",
                timeout=60,
                what="the container to be paused",
                describe=bob.logs_tail,
            )
            # And a stop is answered 202, and the runner ends the step
            r = bob.http.post(f"/pipelines/stop/{runs}")
            assert r.status_code == 202, r.text
            wait_until(
                lambda: _state(container) not in ("running", "paused"),
                timeout=60,
                what="the step to be stopped",
                describe=bob.logs_tail,
            )
        finally:
            proxy.restore()

        # And once entities hears the runner's events again, the run is stopped
        assert bob.wait_terminal(run_id, timeout=120) == "stopped", bob.logs_tail()
        final = detail(bob, unique, run_id) or {}
        assert final.get("reason") == "stopped by request", final
        assert "never" not in output_of(bob.log_lines(run_id))
