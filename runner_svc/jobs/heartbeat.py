"""The runner's heartbeat: its lease renewal over gRPC (leases.py), at start-up and every
BOB_HEARTBEAT_S, with runs or without, is its one liveness signal. It says who the runner
is (type, capacity, node: node.py) and which runs it executes, which keeps them its own;
entities records the runner from it (the cluster info) and answers what to do with each.
"""

from __future__ import annotations

import asyncio
import logging

from runner_svc.jobs.leases import Leases

log = logging.getLogger(__name__)


class Heartbeat:
    def __init__(self, leases: Leases, interval_s: float) -> None:
        self._leases = leases
        self._interval_s = interval_s
        self._renew_now = asyncio.Event()

    async def serve(self, until: asyncio.Event) -> None:
        """Renews now, then every interval or when asked to, until `until` is set."""
        while not until.is_set():
            await self._renew()
            waits = [asyncio.ensure_future(e.wait()) for e in (until, self._renew_now)]
            try:
                await asyncio.wait(
                    waits, timeout=self._interval_s, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                for waiting in waits:
                    waiting.cancel()
            self._renew_now.clear()

    def renew_soon(self) -> None:
        """Renews the leases without waiting for the next beat: after a reconnection, the
        commands broadcast while the control queue was gone are due."""
        self._renew_now.set()

    async def _renew(self) -> None:
        try:
            await self._leases.renew()
        except Exception:  # noqa: BLE001 - a renewal is never worth the runner
            log.exception("could not renew leases")
