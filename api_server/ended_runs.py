"""The statuses of runs that have ended, remembered by the API process.

A terminal status never changes (the run lifecycle's promise), and finished runs are
what dashboards and scripts poll most: answering those from memory spares entities a
gRPC call per poll. Bounded, oldest forgotten first; a pipeline deleted through this
server takes its runs out (another API replica may answer for them until they age out).
"""

from __future__ import annotations

from api_server.convert import TERMINAL
from bob_pb import entities_pb2

CAPACITY = 100_000


class EndedRuns:
    def __init__(self, capacity: int = CAPACITY) -> None:
        self._capacity = capacity
        # run id -> (group, name, status); dicts keep insertion order, oldest first.
        self._runs: dict[str, tuple[str, str, int]] = {}

    def status(self, run_id: str) -> int | None:
        found = self._runs.get(run_id)
        return found[2] if found else None

    def remember(self, run: entities_pb2.Run) -> None:
        if run.status not in TERMINAL or run.id in self._runs:
            return
        if len(self._runs) >= self._capacity:
            del self._runs[next(iter(self._runs))]
        self._runs[run.id] = (run.group, run.name, run.status)

    def forget_pipeline(self, group: str, name: str) -> None:
        gone = [rid for rid, (g, n, _) in self._runs.items() if (g, n) == (group, name)]
        for run_id in gone:
            del self._runs[run_id]

    def __len__(self) -> int:
        return len(self._runs)
