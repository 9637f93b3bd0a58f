"""The one place a run's status changes: entered() stamps the times the change means
(lifecycle.STAMPS) and journals it, in Bob's words, in the caller's transaction. Claims,
stops, runner events, lost runners and hand-backs all end up here."""

from __future__ import annotations

from bob_common.run_states import TERMINAL, RunStatus
from entities_svc import journal, notifications
from entities_svc.clock import now_ms
from entities_svc.lifecycle import STAMPS
from entities_svc.models import Run

KIND = "Pipeline"
# A new attempt starts without the times of the one before it.
_ATTEMPT_STAMPS = ("initiated_at_ms", "initialized_at_ms", "started_at_ms")

# Bob's event reason for each status a run enters, and the word of its message.
_REASONS: dict[RunStatus, tuple[str, str]] = {
    RunStatus.PENDING: ("StartPipelineRun", "started"),
    RunStatus.INITIALIZING: ("PipelineInitializing", "initializing"),
    RunStatus.INITIALIZED: ("PipelineInitialized", "initialized"),
    RunStatus.RUNNING: ("PipelineRunning", "running"),
    RunStatus.PAUSED: ("PipelinePaused", "paused"),
    RunStatus.PASSED: ("PipelineSuccessful", "successful"),
    RunStatus.FAILED: ("PipelineFailed", "failed"),
    RunStatus.STOPPED: ("PipelineStopped", "stopped"),
}
# Where the run came from changes the words: a resume. (A retry, PENDING again, has _RETRIED.)
_FROM: dict[tuple[RunStatus, RunStatus], tuple[str, str]] = {
    (RunStatus.PAUSED, RunStatus.RUNNING): ("PipelineResumed", "resumed"),
}
_RETRIED = ("PipelineRetrying", "queued again")


def change(row: Run, new: RunStatus, *, reason: str = "", why: str = "", at_ms: int = 0) -> None:
    """Moves the (loaded, unsaved) row to `new`; the caller saves it. `reason` becomes the
    run's reason when given; `why` only explains the change in the journal."""
    old = RunStatus(row.status)
    row.status = int(new)
    if reason:
        row.reason = reason
    entered(row, old, why, at_ms)


def entered(row: Run, old: RunStatus, why: str = "", at_ms: int = 0) -> None:
    """The row has just entered row.status from `old` (by change(), or by a compare-and-set
    UPDATE it was reloaded after): stamps its time and journals it, and the row keeps the
    journal event's id (the caller saves the row). `why` explains the change in the
    journal (the run's own reason is used otherwise)."""
    new = RunStatus(row.status)
    at_ms = at_ms or now_ms()
    retried = new is RunStatus.PENDING and old is not RunStatus.UNSPECIFIED
    if retried:
        for stamp in _ATTEMPT_STAMPS:
            setattr(row, stamp, 0)
    elif (stamped := STAMPS.get(new)) and not getattr(row, stamped):
        setattr(row, stamped, at_ms)
    reason, word = _RETRIED if retried else _FROM.get((old, new), _REASONS[new])
    why = why or (row.reason if new in (RunStatus.FAILED, RunStatus.STOPPED) else "")
    warn = retried or new is RunStatus.FAILED
    row.status_event_id = journal.append(
        KIND,
        reason,
        f"Pipeline {row.group}/{row.name} run {row.id} {word}" + (f": {why}" if why else ""),
        journal.WARNING if warn else journal.NORMAL,
        at_ms,
        run_id=row.id,
        run_status=int(new),
        group=row.group,
        name=row.name,
    )
    if new in TERMINAL:
        # Issue 11: the notifiers are owed the run's end, committed with it.
        notifications.owe(row.id, at_ms)


def discarded(row: Run, why: str) -> None:
    """A PENDING run removed because its job could not be queued: its start is undone."""
    journal.append(
        KIND,
        "PipelineDiscarded",
        f"Pipeline {row.group}/{row.name} run {row.id} was not started: {why}",
        journal.WARNING,
        run_id=row.id,
        group=row.group,
        name=row.name,
    )
