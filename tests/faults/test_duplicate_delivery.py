"""The queue delivers at least once: the same job delivered twice (a publisher's retry, a
redelivery after a lost ack) must execute once. The runner claims the run in entities (a
compare-and-set) before executing it, so the second delivery is refused and acked."""

from __future__ import annotations

import re
import signal

import pytest

from bob_common.topology import DEAD_JOBS_QUEUE, job_queue_name
from devcluster.cluster import STOP_GRACE_S
from tests.e2e.runner_cluster import runner_cluster, runner_id
from tests.faults.harness import (
    FAST,
    GROUP,
    Figures,
    deliver_twice,
    detail,
    output_of,
    pipeline,
    queue_depth,
    rabbitmqctl,
    settle,
)
from tests.waiting import wait_until

pytestmark = [pytest.mark.faults, pytest.mark.timeout(300)]


def _messages(queue_url: str, queue: str) -> int | None:
    """Messages in the queue, ready or delivered and not yet acked."""
    vhost = queue_url.rsplit("/", 1)[1]
    listed = rabbitmqctl("list_queues", "-p", vhost, "--no-table-headers", "name", "messages")
    for line in listed.stdout.splitlines():
        name, _, count = line.partition("\t")
        if name == queue:
            return int(count)
    return None


def test_a_job_delivered_twice_executes_once(tmp_path, containers, unique):
    runners = [{"BOB_RUNNER_ID": runner_id(k), "BOB_RUNNER_CAPACITY": "1"} for k in "ab"]
    with runner_cluster(tmp_path, runners, env=FAST) as bob:
        jobs = job_queue_name("docker")
        pipeline(bob, unique, "echo executed; sleep 2")
        # Given no runner consuming yet (both seen once, then stopped)
        for runner in bob.cluster.runners:
            runner.signal(signal.SIGTERM)
            runner.wait(STOP_GRACE_S)
        run_id = bob.start(GROUP, unique)
        assert queue_depth(bob.queue_url, jobs) == 1

        # And its job delivered twice: the queue holds two copies of it
        deliver_twice(bob.queue_url)
        deliveries = queue_depth(bob.queue_url, jobs)
        assert deliveries == 2

        # When two runners take jobs
        for runner in bob.cluster.runners:
            bob.cluster.start_service(runner)

        # Then the run executes once, and both deliveries are settled
        status = settle(bob, {run_id: unique}, timeout=120)[run_id]
        try:
            wait_until(
                lambda: _messages(bob.queue_url, jobs) == 0,
                timeout=60,
                what="both deliveries to be acked",
            )
        except AssertionError:
            pass
        left = _messages(bob.queue_url, jobs)
        # None: the dead-job queue was never even declared.
        dead = queue_depth(bob.queue_url, DEAD_JOBS_QUEUE)
        executions = containers.created[run_id]
        output = output_of(bob.log_lines(run_id))
        final = detail(bob, unique, run_id) or {}
        runner_log = "\n".join(line for r in bob.cluster.runners for line in r.lines)
        claims = len(re.findall(rf"run {run_id}: claimed", runner_log))
        refusals = len(re.findall(rf"run {run_id}: (not claimed|duplicate delivery)", runner_log))
        figures = Figures.of_one_run(
            "duplicate-delivery",
            status,
            duplicated=max(0, executions - 1, output.count("executed") - 1),
            extra={
                "deliveries": deliveries,
                "executions": executions,
                "claims_logged": claims,
                "refusals_logged": refusals,
                "attempt": final.get("attempt"),
                "jobs_left_in_queue": left,
                "dead_lettered": dead,
            },
        )
        message = figures.show()
        assert status == "passed", f"{message}\n{bob.logs_tail()}"
        assert executions == 1, message
        assert output.count("executed") == 1, f"{message}\n{output}"
        assert final.get("attempt") == 1, message
        assert left == 0 and not dead, message
