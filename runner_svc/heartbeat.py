"""The runner's heartbeat: every few seconds, and once at start-up, a RunnerHeartbeat on
bob.events (routing key runner.<id>.heartbeat) says it is alive, its type and capacity,
which runs it executes, and its node's cores, load and memory (node.py); and, on its own
clock, the leases of those runs are renewed over gRPC (leases.py).

The two go separately: a publish may wait seconds for a broker that is away, and the
leases, which keep the runs this runner's, must not wait for it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from aio_pika.abc import AbstractExchange

from bob_common.amqp import encode
from bob_common.config import RunnerSettings
from bob_common.topology import runner_heartbeat_key
from bob_pb import messages_pb2
from runner_svc.leases import Leases
from runner_svc.node import node_info
from runner_svc.reporter import CONFIRM_TIMEOUT_S, PUBLISH_ERRORS

log = logging.getLogger(__name__)


class Heartbeat:
    def __init__(
        self,
        exchange: AbstractExchange,
        settings: RunnerSettings,
        executing: Callable[[], list[tuple[str, int]]],
        leases: Leases,
        interval_s: float,
    ) -> None:
        self._exchange = exchange
        self._settings = settings
        self._executing = executing
        self._leases = leases
        self._interval_s = interval_s
        self._renew_now = asyncio.Event()

    async def serve(self, until: asyncio.Event) -> None:
        """Beats and renews now, then every interval, until `until` is set."""
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._every(self.beat, until))
            tasks.create_task(self._every(self._renew, until, self._renew_now))

    def renew_soon(self) -> None:
        """Renews the leases without waiting for the next beat: after a reconnection, the
        commands broadcast while the control queue was gone are due."""
        self._renew_now.set()

    async def _every(
        self,
        action: Callable[[], Awaitable[None]],
        until: asyncio.Event,
        wake: asyncio.Event | None = None,
    ) -> None:
        while not until.is_set():
            await action()
            waits = [asyncio.ensure_future(e.wait()) for e in (until, wake) if e is not None]
            try:
                await asyncio.wait(waits, timeout=self._interval_s,
                                   return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiting in waits:
                    waiting.cancel()
            if wake is not None:
                wake.clear()

    async def _renew(self) -> None:
        try:
            await self._leases.renew()
        except Exception:  # noqa: BLE001 - a renewal is never worth the runner
            log.exception("could not renew leases")

    async def beat(self) -> None:
        """Publishes one heartbeat. A lost one is only logged: the next one follows."""
        s = self._settings
        heartbeat = messages_pb2.RunnerHeartbeat(
            runner_id=s.runner_id,
            runner_type=s.runner_type,
            capacity=s.capacity,
            run_ids=[run_id for run_id, _ in self._executing()],
            at_ms=int(time.time() * 1000),
            node=node_info(),
        )
        try:
            await self._exchange.publish(
                encode(heartbeat),
                routing_key=runner_heartbeat_key(s.runner_id),
                timeout=CONFIRM_TIMEOUT_S,
            )
        except PUBLISH_ERRORS as exc:
            log.warning("could not publish a heartbeat: %r", exc)
        except Exception:  # noqa: BLE001 - a heartbeat is never worth the runner
            log.exception("could not publish a heartbeat")
