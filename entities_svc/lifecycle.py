"""What entities adds to the run statuses of bob_common.run_states: the Run column each
status stamps, and the parsing of a status a request names."""

from __future__ import annotations

from bob_common.run_states import TERMINAL, RunStatus
from entities_svc.errors import Invalid

# The Run column stamped when the current attempt first enters a status: Bob's
# initiated-at, initialized-at, started-at (steps started) and completed-at.
STAMPS: dict[RunStatus, str] = {
    RunStatus.INITIALIZING: "initiated_at_ms",
    RunStatus.INITIALIZED: "initialized_at_ms",
    RunStatus.RUNNING: "started_at_ms",
    **{status: "completed_at_ms" for status in TERMINAL},
}


def parse_status(value: int) -> RunStatus:
    """The status with this value; Invalid for a value this version does not know."""
    try:
        return RunStatus(value)
    except ValueError:
        raise Invalid(f"Unknown run status {value}") from None
