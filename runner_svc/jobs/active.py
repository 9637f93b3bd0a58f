"""The runs active on this runner: registered by the consumer when a job arrives (before
its claim, so a STOP racing with the claim finds the run), marked claimed once entities
has said yes, and unregistered when the run ends.

The consumer is the only writer. Control commands, lease renewals, the orphan sweep and
tools only read, through RunsHere.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Protocol

from runner_svc.reporting.reporter import RunReporter
from runner_svc.run import Run


class RunsHere(Protocol):
    """What the runner's other parts may ask about the runs active here."""

    def run_of(self, run_id: str) -> Run | None:
        """The run with this id if this runner is executing it."""
        ...

    def executing(self) -> list[tuple[str, int]]:
        """(run id, attempt) of the runs claimed here and not ended yet."""
        ...


@dataclass
class Active:
    run: Run
    # Where the run's events go; signed with the claim's secret once claimed.
    events: RunReporter
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    # Claimed in entities: executing here, as far as leases and heartbeats are concerned.
    claimed: bool = False


class ActiveRuns:
    """At most one active run per run id."""

    def __init__(self) -> None:
        self._active: dict[str, Active] = {}

    def run_of(self, run_id: str) -> Run | None:
        active = self._active.get(run_id)
        return active.run if active else None

    def executing(self) -> list[tuple[str, int]]:
        return [(run_id, a.run.spec.attempt) for run_id, a in self._active.items() if a.claimed]

    def get(self, run_id: str) -> Active | None:
        return self._active.get(run_id)

    def claimed(self) -> list[Run]:
        """The claimed runs, ended or not."""
        return [a.run for a in self._active.values() if a.claimed]

    def register(self, active: Active) -> None:
        """Makes `active` the one of its run id, replacing any other."""
        self._active[active.run.spec.run_id] = active

    def unregister(self, active: Active) -> None:
        """Forgets `active`, unless another has replaced it meanwhile."""
        run_id = active.run.spec.run_id
        if self._active.get(run_id) is active:
            del self._active[run_id]
