"""The engine check: every BOB_RUNNER_ENGINE_CHECK_S the runner asks its executor whether
its engine (Docker) answers. While it does not, the runner takes no jobs (its slots leave
the queue, so the jobs wait there for other runners) and says so with every lease renewal,
which /cluster/info and /can-we-build-it show; once it answers again, the runner takes
jobs again. The runs in flight meanwhile end by themselves: their streams break with the
engine, and the run fails naming it (run.py, Workspace.gone).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from runner_svc.executors import Executor
from runner_svc.jobs.claims import RunClaims
from runner_svc.jobs.consumer import JobConsumer
from runner_svc.jobs.heartbeat import Heartbeat

log = logging.getLogger(__name__)


class EngineWatch:
    def __init__(
        self,
        executor: Executor,
        consumer: JobConsumer,
        claims: RunClaims,
        heartbeat: Heartbeat,
        interval_s: float,
    ) -> None:
        self._executor = executor
        self._consumer = consumer
        self._claims = claims
        self._heartbeat = heartbeat
        self._interval_s = interval_s

    async def serve(self, until: asyncio.Event) -> None:
        """Checks now, then every interval, until `until` is set."""
        problem = ""
        while not until.is_set():
            found = await self._executor.engine_problem()
            if found != problem:
                if found and not problem:
                    await self._consumer.pause_taking()
                elif not found:
                    await self._consumer.resume_taking()
                problem = found
                self._claims.engine_problem = found
                # Entities (and so the cluster info) hears of it now, not a beat later.
                self._heartbeat.renew_soon()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(until.wait(), self._interval_s)
