"""A runner is SIGKILLed in the middle of a step: nothing tells entities, so its lease on
the run expires and entities retries the run as the next attempt (on the runner that is
left) or, once BOB_MAX_ATTEMPTS is reached, fails it as "runner lost". The dead runner's
container is removed by the survivor's orphan sweep."""

from __future__ import annotations

import contextlib
import time

import docker.errors
import pytest

from runner_svc.executors.docker.executor import LABEL_RUNNER, LABEL_SPARE
from tests.e2e.runner_cluster import TERMINAL, runner_cluster, runner_id
from tests.faults.harness import (
    FAST,
    GROUP,
    Figures,
    detail,
    output_of,
    pipeline,
)
from tests.support.containers import left_after
from tests.waiting import wait_until

pytestmark = [pytest.mark.faults, pytest.mark.timeout(300)]

# How long entities may take to notice a silent runner, at most: a lease, then one sweep.
BOUND_S = float(FAST["BOB_LEASE_S"]) + float(FAST["BOB_SWEEP_S"])


def _remove_spares_of(docker_client, runner) -> None:
    labels = [f"{LABEL_RUNNER}={runner.env['BOB_RUNNER_ID']}", LABEL_SPARE]
    for container in docker_client.containers.list(
        all=True, sparse=True, filters={"label": labels}
    ):
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True)


@pytest.mark.parametrize(
    ("max_attempts", "expected"), [("3", "passed"), ("1", "failed")], ids=["retried", "failed"]
)
def test_a_runner_killed_mid_step_has_its_run_retried_or_failed_and_leaves_no_container(
    tmp_path, docker_client, unique, max_attempts, expected, request
):
    runners = [{"BOB_RUNNER_ID": runner_id(k), "BOB_RUNNER_CAPACITY": "1"} for k in "ab"]
    env = {**FAST, "BOB_MAX_ATTEMPTS": max_attempts}
    with runner_cluster(tmp_path, runners, env=env) as bob:
        pipeline(bob, unique, "echo begin; sleep 6; echo end")
        run_id = bob.start(GROUP, unique)

        # Given the run in the middle of its step on one of two runners
        wait_until(
            lambda: "begin" in output_of(bob.log_lines(run_id)),
            timeout=60,
            what="the step to begin",
            describe=bob.logs_tail,
        )
        first = detail(bob, unique, run_id)
        assert first and first["runner-id"], first
        [victim] = [s for s in bob.cluster.runners if s.env["BOB_RUNNER_ID"] == first["runner-id"]]
        [survivor] = [s for s in bob.cluster.runners if s is not victim]

        # When that runner is killed outright (its idle spare containers, made for no run,
        # would wait ten minutes for another runner's sweep: the test removes them)
        request.addfinalizer(lambda: _remove_spares_of(docker_client, victim))
        victim.kill()
        killed_at = time.monotonic()

        # Then entities notices: the run moves to another attempt, or ends
        def noticed():
            d = detail(bob, unique, run_id)
            return d if d and (d["attempt"] > first["attempt"] or d["status"] in TERMINAL) else None

        wait_until(
            noticed, timeout=120, what="the lost runner to be noticed", describe=bob.logs_tail
        )
        detected_s = time.monotonic() - killed_at
        status = bob.wait_terminal(run_id, timeout=120)
        final = detail(bob, unique, run_id)
        lines = bob.log_lines(run_id)

        # And no container of the run is left, the dead runner's included
        leftover = left_after(docker_client, run_id, timeout=60)

        output = output_of(lines)
        figures = Figures.of_one_run(
            f"runner-sigkill-{max_attempts}-attempts",
            status,
            duplicated=max(0, output.count("end") - 1),
            extra={
                "outcome": status,
                "attempt": final["attempt"],
                "reason": repr(final["reason"]),
                "detected_after_s": round(detected_s, 1),
                "bound_s": BOUND_S,
                "leftover_containers": len(leftover),
            },
        )
        message = figures.show()
        assert status == expected, f"{message}\n{lines}\n{bob.logs_tail()}"
        if expected == "passed":
            # Retried on the runner that is left, its log continued after the first
            # attempt's, with Bob's word on which runner was lost in between.
            assert final["attempt"] == first["attempt"] + 1, message
            assert final["runner-id"] == survivor.env["BOB_RUNNER_ID"], message
            lost_line = [
                i
                for i, line in enumerate(lines)
                if line.startswith("[bob]") and victim.env["BOB_RUNNER_ID"] in line
            ]
            assert lost_line, f"no [bob] line names the lost runner:\n{lines}"
            last_end = len(lines) - 1 - lines[::-1].index("end")
            assert lines.index("begin") < lost_line[0] < last_end, lines
            assert output == ["begin", "begin", "end"], lines
        else:
            assert "runner lost" in final["reason"], message
        assert leftover == [], f"{message}\n{[c.name for c in leftover]}"
