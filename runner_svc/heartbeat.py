"""The runner's heartbeat: every few seconds, and once at start-up, a RunnerHeartbeat on
bob.events (routing key runner.<id>.heartbeat) says it is alive, its type and capacity,
and which runs it executes, so entities can tell a silent runner's runs from live ones."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from aio_pika.abc import AbstractExchange

from bob_common.amqp import encode
from bob_common.config import RunnerSettings
from bob_common.topology import runner_heartbeat_key
from bob_pb import messages_pb2
from runner_svc.reporter import CONFIRM_TIMEOUT_S, PUBLISH_ERRORS

log = logging.getLogger(__name__)


class Heartbeat:
    def __init__(
        self,
        exchange: AbstractExchange,
        settings: RunnerSettings,
        executing: Callable[[], list[str]],
        interval_s: float,
    ) -> None:
        self._exchange = exchange
        self._settings = settings
        self._executing = executing
        self._interval_s = interval_s

    async def serve(self, until: asyncio.Event) -> None:
        """Beats now, then every interval, until `until` is set."""
        while True:
            await self.beat()
            try:
                await asyncio.wait_for(until.wait(), self._interval_s)
                return
            except TimeoutError:
                pass

    async def beat(self) -> None:
        """Publishes one heartbeat. A lost one is only logged: the next one follows."""
        s = self._settings
        heartbeat = messages_pb2.RunnerHeartbeat(
            runner_id=s.runner_id,
            runner_type=s.runner_type,
            capacity=s.capacity,
            run_ids=self._executing(),
            at_ms=int(time.time() * 1000),
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
