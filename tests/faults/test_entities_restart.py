"""Entities is killed while a step prints 50,000 lines, and started again on the same port
and database. The runner goes on printing into bob.events, where the batches wait for
entities; on its return it applies each exactly once, in order: lines already stored are
not stored again (a batch is acked only once its lines are committed, and (run, line_no)
is unique), and none is missing. Entities stays down for longer than a lease, so the run
must also stay with its runner (attempt 1): a retry would print the lines a second time."""

from __future__ import annotations

import time
from collections import Counter

import pytest

from bob_common.topology import ENTITIES_EVENTS_QUEUE
from tests.e2e.runner_cluster import runner_cluster, runner_id
from tests.faults.harness import (
    FAST,
    GROUP,
    Figures,
    all_log_lines,
    detail,
    output_of,
    pipeline,
    queue_depth,
    settle,
)
from tests.waiting import wait_until

pytestmark = [pytest.mark.faults, pytest.mark.timeout(300)]

LINES = 50_000
CHUNK = 500
# 100 chunks of 500 numbered lines, a tenth of a second apart: the step prints for ten
# seconds or more, long enough to be killed under and restarted under.
PRINT = (
    f"i=0; while [ $i -lt {LINES // CHUNK} ]; do "
    f"seq $((i*{CHUNK})) $((i*{CHUNK}+{CHUNK - 1})); sleep 0.1; i=$((i+1)); done"
)
# Entities is started again once this many events wait for it...
WAITING_EVENTS = 10
# ...and it has been down for longer than a lease: the runner could not renew meanwhile,
# and must not be taken for lost for that (entities judges leases only once runners have
# had a whole lease to renew with it). The outage is the fault, not a wait on something.
OUTAGE_S = float(FAST["BOB_LEASE_S"]) + 1


def _stored_at_least(bob, run_id: str, count: int) -> bool:
    r = bob.http.get(f"/pipelines/logs/runs/{run_id}/offset/{count}/lines/1")
    return r.status_code == 200 and bool(r.json()["message"])


def test_entities_killed_while_a_step_prints_50000_lines_stores_every_line_once_in_order(
    tmp_path, unique
):
    runners = [{"BOB_RUNNER_ID": runner_id("docker"), "BOB_RUNNER_CAPACITY": "1"}]
    with runner_cluster(tmp_path, runners, env=FAST) as bob:
        pipeline(bob, unique, PRINT)
        run_id = bob.start(GROUP, unique)

        # Given the step part of the way through its output
        wait_until(
            lambda: _stored_at_least(bob, run_id, 4 * CHUNK),
            timeout=60,
            what="the first lines to be stored",
            describe=bob.logs_tail,
        )
        entities = bob.cluster.entities

        # When entities is killed, and started again once batches wait for it, after more
        # than a lease
        entities.kill()
        killed_at = time.monotonic()
        try:
            waiting = wait_until(
                lambda: (
                    (n := queue_depth(bob.queue_url, ENTITIES_EVENTS_QUEUE) or 0) >= WAITING_EVENTS
                    and n
                ),
                timeout=30,
                what="events to wait for entities",
                describe=bob.logs_tail,
            )
            time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - killed_at)))
        finally:
            bob.cluster.start_service(entities)
        outage_s = time.monotonic() - killed_at

        # Then the run ends, and its log holds every line once, in order
        status = settle(bob, {run_id: unique}, timeout=180)[run_id]
        output = output_of(all_log_lines(bob, run_id))
        expected = [str(i) for i in range(LINES)]
        counts = Counter(output)
        final = detail(bob, unique, run_id) or {}
        figures = Figures.of_one_run(
            "entities-restart",
            status,
            duplicated=int(final.get("attempt", 1) > 1),
            extra={
                "attempt": final.get("attempt"),
                "events_waiting_at_restart": waiting,
                "outage_s": round(outage_s, 1),
                "lease_s": float(FAST["BOB_LEASE_S"]),
                "lines_printed": LINES,
                "lines_stored": len(output),
                "lines_lost": len(set(expected) - counts.keys()),
                "lines_duplicated": sum(n - 1 for n in counts.values()),
                "lines_in_order": output == expected,
            },
        )
        message = figures.show()
        assert status == "passed", f"{message}\n{bob.logs_tail()}"
        assert figures.extra["lines_lost"] == 0, message
        assert figures.extra["lines_duplicated"] == 0, message
        assert output == expected, message
        assert final.get("attempt") == 1, message
