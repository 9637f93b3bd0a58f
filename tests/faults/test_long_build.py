"""A build longer than RabbitMQ's consumer acknowledgement timeout (30 min by default) is
not redelivered mid-run: the runner acks its job as soon as the claim in entities
succeeds, since from then on the run is owned in the database, not in the queue.

The timeout is lowered to 2 s on a RabbitMQ node of the test's own (and the broker's
channel tick, which checks it, to 0.5 s), and the build takes 8 s."""

from __future__ import annotations

import pytest

from tests.e2e.runner_cluster import runner_cluster, runner_id
from tests.faults.harness import FAST, GROUP, Figures, detail, output_of, pipeline

pytestmark = [pytest.mark.faults, pytest.mark.timeout(300)]

TIMEOUT_MS = 2000
BUILD_S = 8


@pytest.mark.parametrize(
    "rabbit_node",
    [{"consumer_timeout": TIMEOUT_MS, "channel_tick_interval": 500}],
    indirect=True,
)
def test_a_build_longer_than_the_consumer_timeout_runs_once_and_passes(
    tmp_path, containers, unique, rabbit_node
):
    runners = [{"BOB_RUNNER_ID": runner_id(k), "BOB_RUNNER_CAPACITY": "1"} for k in "ab"]
    with runner_cluster(tmp_path, runners, env=FAST, queue_url=rabbit_node.url) as bob:
        pipeline(bob, unique, f"echo begin; sleep {BUILD_S}; echo end")

        run_id = bob.start(GROUP, unique)
        status = bob.wait_terminal(run_id, timeout=120)

        output = output_of(bob.log_lines(run_id))
        final = detail(bob, unique, run_id) or {}
        runner_log = "\n".join(line for r in bob.cluster.runners for line in r.lines)
        executions = containers.created[run_id]
        figures = Figures.of_one_run(
            "long-build",
            status,
            duplicated=max(0, executions - 1, output.count("begin") - 1),
            extra={
                "consumer_timeout_ms": TIMEOUT_MS,
                "build_s": BUILD_S,
                "executions": executions,
                "attempt": final.get("attempt"),
                "consumer_timeouts_logged": runner_log.count("PRECONDITION_FAILED"),
            },
        )
        message = figures.show()
        assert status == "passed", f"{message}\n{bob.logs_tail()}"
        assert output == ["begin", "end"], message
        assert executions == 1 and final.get("attempt") == 1, message
        assert "PRECONDITION_FAILED" not in runner_log, message
