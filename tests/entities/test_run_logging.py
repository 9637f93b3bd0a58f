"""Entities' log lines about a run name it, also where no rpc carried the run's id: the
events runners send over AMQP, and the start of a run, whose id is made there."""

from __future__ import annotations

import logging

from bob_common.rpc import RunIdFilter
from bob_common.run_states import RunStatus
from entities_svc import run_commands, run_start
from entities_svc.progress import apply_events
from tests.entities.support import LEASE_MS, status_event


def _named_runs(caplog, logger: str) -> list[tuple[str, str]]:
    return [(r.getMessage(), r.run) for r in caplog.records if r.name == logger]


def test_lines_about_a_run_name_it(pipeline, caplog):
    caplog.handler.addFilter(RunIdFilter())
    with caplog.at_level(logging.INFO):
        run_id = run_start.create_run(*pipeline).id
        run_commands.claim_run(run_id, 1, "runner-1", LEASE_MS)
        # seq 2 after nothing: held (not applied), with a warning about the gap
        apply_events([status_event(run_id, 2, RunStatus.RUNNING)])

    started = _named_runs(caplog, "entities_svc.run_start")
    assert started and all(run == f" run={run_id}" for _, run in started)
    applied = _named_runs(caplog, "entities_svc.progress")
    assert any("seq 2 is ahead of 0" in message for message, _ in applied)
    assert all(run == f" run={run_id}" for _, run in applied)
