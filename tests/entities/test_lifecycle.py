from __future__ import annotations

import pytest

from bob_common.run_states import (
    ACTIVE,
    CLAIMED,
    TERMINAL,
    TRANSITIONS,
    RunStatus,
    can_transition,
)
from bob_pb import messages_pb2
from entities_svc.errors import Invalid
from entities_svc.lifecycle import STAMPS, parse_status

S = RunStatus


def test_domain_status_mirrors_the_proto_enum_value_for_value():
    proto = {name: number for name, number in messages_pb2.RunStatus.items()}
    domain = {status.name: int(status) for status in RunStatus}
    assert domain == {
        "UNSPECIFIED" if k == "RUN_STATUS_UNSPECIFIED" else k: v for k, v in proto.items()
    }


@pytest.mark.parametrize(
    ("current", "allowed"),
    [
        (S.PENDING, {S.INITIALIZING, S.FAILED, S.STOPPED}),
        # INITIALIZED may be skipped by a runner that never reports it.
        (S.INITIALIZING, {S.INITIALIZED, S.RUNNING, S.FAILED, S.STOPPED}),
        (S.INITIALIZED, {S.RUNNING, S.FAILED, S.STOPPED}),
        (S.RUNNING, {S.PAUSED, S.PASSED, S.FAILED, S.STOPPED}),
        (S.PAUSED, {S.RUNNING, S.FAILED, S.STOPPED}),
    ],
)
def test_transition_table_allows_exactly_the_lifecycle_moves(current, allowed):
    assert {new for new in RunStatus if can_transition(current, new)} == allowed


@pytest.mark.parametrize("terminal", sorted(TERMINAL))
def test_terminal_status_never_changes(terminal):
    assert not any(can_transition(terminal, new) for new in RunStatus)


def test_every_status_is_either_active_or_terminal():
    assert set(TRANSITIONS) == ACTIVE
    assert ACTIVE | TERMINAL == set(RunStatus) - {S.UNSPECIFIED}


def test_initialized_is_active_and_claimed_and_stamps_its_time():
    assert S.INITIALIZED in ACTIVE and S.INITIALIZED in CLAIMED
    assert STAMPS[S.INITIALIZING] == "initiated_at_ms"
    assert STAMPS[S.INITIALIZED] == "initialized_at_ms"
    assert STAMPS[S.RUNNING] == "started_at_ms"


def test_unknown_status_value_is_invalid():
    assert parse_status(6) is S.FAILED
    with pytest.raises(Invalid):
        parse_status(42)
