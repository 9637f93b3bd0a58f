"""RabbitMQ restarts under load: 200 runs queued and every runner slot busy. The job
queues are quorum queues and the messages persistent, so the backlog survives; every
service reconnects by itself; the claim in entities keeps a redelivered job from running
twice. Every run must end, none lost, none completed twice.

The cluster runs on a RabbitMQ node of the test's own (tests/support/rabbit_node.py),
stopped and started again as an operator would (`rabbitmqctl stop`, then the server): the
machine's shared broker, which other tests use meanwhile, is never touched. (`stop_app`
and `start_app` on the shared node were tried first: on RabbitMQ 3.10.8 with other
vhosts busy, the node came back half-booted and refused every channel until restarted.)"""

from __future__ import annotations

import time
from collections import Counter

import pytest

from bob_common.topology import job_queue_name
from tests.e2e.runner_cluster import TERMINAL, runner_cluster, runner_id
from tests.faults.harness import (
    FAST,
    Figures,
    detail,
    output_of,
    pipeline,
    queue_depth,
    settle,
    start_all,
    statuses,
)
from tests.waiting import wait_until

pytestmark = [pytest.mark.faults, pytest.mark.timeout(900)]

QUEUED = 200
RUNNERS = 2
CAPACITY = 2
RUNNING = RUNNERS * CAPACITY
# How long the broker stays down, beyond its stop and start: the fault itself, not a wait.
OUTAGE_S = 2.0


def test_a_broker_restart_with_200_queued_and_every_slot_running_loses_no_run_and_runs_none_twice(
    tmp_path, containers, unique, rabbit_node
):
    runners = [
        {"BOB_RUNNER_ID": runner_id("docker"), "BOB_RUNNER_CAPACITY": str(CAPACITY)}
        for _ in range(RUNNERS)
    ]
    with runner_cluster(tmp_path, runners, env=FAST, queue_url=rabbit_node.url) as bob:
        slow, quick = f"{unique}-slow", f"{unique}-quick"
        # The slow runs outlast the 200 starts, so they are still running at the restart.
        pipeline(bob, slow, "echo slow-begin; sleep 20; echo slow-done")
        pipeline(bob, quick, "echo quick-done")

        # Given every runner slot busy with a slow run, and 200 runs queued behind them
        running = start_all(bob, slow, RUNNING)
        wait_until(
            lambda: all(statuses(bob, slow).get(r) == "running" for r in running),
            timeout=60,
            what="every slot running a slow run",
            describe=bob.logs_tail,
        )
        queued = start_all(bob, quick, QUEUED)
        runs = {**dict.fromkeys(running, slow), **dict.fromkeys(queued, quick)}
        depth_before = queue_depth(bob.queue_url, job_queue_name("docker"))
        running_at_fault = sum(s == "running" for s in statuses(bob, slow).values())

        # When RabbitMQ restarts
        rabbit_node.stop()
        stopped_at = time.monotonic()
        time.sleep(OUTAGE_S)
        rabbit_node.start()
        restarted_at = time.monotonic()

        # Then every run ends, none lost and none completed twice
        final = settle(bob, runs, timeout=600)
        settled_s = time.monotonic() - restarted_at
        marker = {slow: "slow-done", quick: "quick-done"}
        completions = {
            run_id: output_of(bob.log_lines(run_id)).count(marker[name])
            for run_id, name in runs.items()
        }
        details = {run_id: detail(bob, name, run_id) or {} for run_id, name in runs.items()}
        created = containers.created
        failed = Counter(
            d.get("reason", "?") for d in details.values() if d.get("status") == "failed"
        )
        terminal = sum(status in TERMINAL for status in final.values())
        figures = Figures(
            "broker-restart",
            accepted=len(runs),
            terminal=terminal,
            passed=sum(status == "passed" for status in final.values()),
            lost=len(runs) - terminal,
            duplicated=sum(count > 1 for count in completions.values()),
            extra={
                "queued_at_fault": depth_before,
                "running_at_fault": running_at_fault,
                "broker_down_s": round(restarted_at - stopped_at, 1),
                "retried": sum(d.get("attempt", 1) > 1 for d in details.values()),
                "executed_more_than_once": sum(n > 1 for n in created.values()),
                "never_executed": sum(created[r] == 0 for r in runs),
                "settled_after_restart_s": round(settled_s, 1),
                "failed_reasons": dict(failed) or "none",
            },
        )
        message = figures.show()
        not_ended = {r: s for r, s in final.items() if s not in TERMINAL}
        assert figures.terminal == figures.accepted == RUNNING + QUEUED, (
            f"{message}\nnot ended: {dict(list(not_ended.items())[:10])}\n{bob.logs_tail()}"
        )
        assert figures.lost == 0, message
        assert figures.duplicated == 0, message
