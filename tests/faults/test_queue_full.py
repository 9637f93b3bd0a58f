"""A job queue filled to its bound (BOB_QUEUE_MAX_JOBS): the broker rejects the next
publish, so a further start answers 503 with Retry-After and leaves no run behind; every
start that was accepted still completes once runners take the jobs."""

from __future__ import annotations

import signal
from collections import Counter

import pytest

from bob_common.topology import job_queue_name
from devcluster.cluster import STOP_GRACE_S
from tests.e2e.runner_cluster import TERMINAL, runner_cluster, runner_id
from tests.faults.harness import (
    FAST,
    GROUP,
    Figures,
    output_of,
    pipeline,
    queue_depth,
    settle,
    statuses,
)

pytestmark = [pytest.mark.faults, pytest.mark.timeout(300)]

QUEUE_MAX = 5
REJECTIONS = 3
# A quorum queue checks its bound before it takes a message, so it rejects once it holds
# more than the bound (RabbitMQ 3.10: the sixth publish of five is still taken).
TAKEN = range(QUEUE_MAX, QUEUE_MAX + 2)


def test_a_full_job_queue_answers_503_and_every_accepted_run_still_completes(
    tmp_path, containers, unique
):
    runners = [{"BOB_RUNNER_ID": runner_id("docker"), "BOB_RUNNER_CAPACITY": "2"}]
    env = {**FAST, "BOB_QUEUE_MAX_JOBS": str(QUEUE_MAX)}
    with runner_cluster(tmp_path, runners, env=env) as bob:
        pipeline(bob, unique, "echo done")
        # Given no runner consuming (seen once, then stopped), so jobs stay queued
        for runner in bob.cluster.runners:
            runner.signal(signal.SIGTERM)
            runner.wait(STOP_GRACE_S)

        # When runs are started until the queue is full, and a few more
        accepted: list[str] = []
        refused = []
        while len(refused) < REJECTIONS and len(accepted) <= 2 * QUEUE_MAX:
            r = bob.http.post(f"/pipelines/start/groups/{GROUP}/names/{unique}")
            if r.status_code == 202:
                accepted.append(r.json()["message"])
            else:
                refused.append(r)
        depth = queue_depth(bob.queue_url, job_queue_name("docker"))
        phantoms = set(statuses(bob, unique)) - set(accepted)

        # Then the starts beyond the bound get 503 with Retry-After, and leave no run
        refusals = Counter(r.status_code for r in refused)
        summary = (
            f"accepted={len(accepted)} refused={dict(refusals)} queued={depth} "
            f"phantom_runs={len(phantoms)}"
        )
        assert len(accepted) in TAKEN, summary
        assert refusals == {503: REJECTIONS}, f"{summary}: {[r.text for r in refused]}"
        assert all(r.headers.get("retry-after") for r in refused), summary
        assert all(r.json()["message"] for r in refused), summary
        assert not phantoms, summary

        # And once a runner consumes, every accepted run completes, and starts are taken again
        for runner in bob.cluster.runners:
            bob.cluster.start_service(runner)
        final = settle(bob, dict.fromkeys(accepted, unique), timeout=180)
        after = bob.http.post(f"/pipelines/start/groups/{GROUP}/names/{unique}")
        after_status = (
            settle(bob, {after.json()["message"]: unique}, timeout=120).popitem()[1]
            if after.status_code == 202
            else f"HTTP {after.status_code}"
        )
        completions = {r: output_of(bob.log_lines(r)).count("done") for r in accepted}
        created = containers.created
        terminal = sum(s in TERMINAL for s in final.values())
        figures = Figures(
            "queue-full",
            accepted=len(accepted),
            terminal=terminal,
            passed=sum(s == "passed" for s in final.values()),
            lost=len(accepted) - terminal,
            duplicated=sum(n > 1 for n in completions.values()),
            extra={
                "queue_max": QUEUE_MAX,
                "refused_503": refusals[503],
                "retry_after": refused[0].headers.get("retry-after"),
                "phantom_runs": len(phantoms),
                "executed_more_than_once": sum(n > 1 for n in created.values()),
                "start_after_drain": after_status,
            },
        )
        message = figures.show()
        assert figures.passed == figures.accepted, f"{message}\n{bob.logs_tail()}"
        assert figures.lost == 0 and figures.duplicated == 0, message
        assert after_status == "passed", message
