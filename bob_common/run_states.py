"""A run's statuses and the transitions between them, for every service: the one table
every status change goes through in entities, whether it comes from a claim or from a
runner's event, and the sets the API and the runners ask a status about. The enums equal
the protobuf ones value for value, so a protobuf field takes them and int() converts."""

from __future__ import annotations

import enum


class RunStatus(enum.IntEnum):
    """Mirrors bob.v1.RunStatus value for value, so adapters convert with int()."""

    UNSPECIFIED = 0
    PENDING = 1
    INITIALIZING = 2
    RUNNING = 3
    PAUSED = 4
    PASSED = 5
    FAILED = 6
    STOPPED = 7
    # The runner has the image and the container; steps start next (Bob's "initialized").
    INITIALIZED = 8


class Order(enum.IntEnum):
    """What a runner must do with a run it executes; mirrors bob.v1.RunOrder. Run.desired
    holds one too (RUN, PAUSE or STOP): what the user asked for, kept for lease renewals."""

    UNSPECIFIED = 0
    RUN = 1
    PAUSE = 2
    STOP = 3
    ABANDON = 4


TERMINAL = frozenset({RunStatus.PASSED, RunStatus.FAILED, RunStatus.STOPPED})
# Runs in these states may still change, so their pipeline cannot be deleted.
ACTIVE = frozenset(
    {
        RunStatus.PENDING,
        RunStatus.INITIALIZING,
        RunStatus.INITIALIZED,
        RunStatus.RUNNING,
        RunStatus.PAUSED,
    }
)
# Runs a runner has claimed and holds with its lease; a pause or a stop of any of them is
# the runner's to carry out.
CLAIMED = ACTIVE - {RunStatus.PENDING}

# Terminal states have no entry: nothing leaves them. One move is entities' own and not in
# this table: a claimed run whose runner is lost or hands it back becomes PENDING again as
# a new attempt (see leases.py). INITIALIZING -> RUNNING stays allowed for runners that
# never report INITIALIZED.
TRANSITIONS: dict[RunStatus, frozenset[RunStatus]] = {
    RunStatus.PENDING: frozenset({RunStatus.INITIALIZING, RunStatus.FAILED, RunStatus.STOPPED}),
    RunStatus.INITIALIZING: frozenset(
        {RunStatus.INITIALIZED, RunStatus.RUNNING, RunStatus.FAILED, RunStatus.STOPPED}
    ),
    RunStatus.INITIALIZED: frozenset({RunStatus.RUNNING, RunStatus.FAILED, RunStatus.STOPPED}),
    RunStatus.RUNNING: frozenset(
        {RunStatus.PAUSED, RunStatus.PASSED, RunStatus.FAILED, RunStatus.STOPPED}
    ),
    RunStatus.PAUSED: frozenset({RunStatus.RUNNING, RunStatus.FAILED, RunStatus.STOPPED}),
}


def can_transition(current: RunStatus, new: RunStatus) -> bool:
    return new in TRANSITIONS.get(current, frozenset())


def status_name(status: int) -> str:
    """ "stopped" for STOPPED; the value itself for a status this version does not know."""
    try:
        return RunStatus(status).name.lower()
    except ValueError:
        return str(status)
