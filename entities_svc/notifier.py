"""Delivering run notifications from their outbox (notifications.py): every POLL_S, each
due notification is taken (a compare-and-set, so two entities processes do not send it at
the same time), POSTed as JSON to {notifier url}/bob_notification, and deleted once the
notifier answers 2xx. A failure (no connection, a timeout, any other status) is logged
and counted, and the notification is due again after a backoff (bob_common/backoff.py),
until BOB_NOTIFY_GIVE_UP_S after the run ended: then it is dropped, logged and counted.

At least once: a notifier that answered 2xx but whose answer was lost, or whose
notification was taken by a process that died before deleting it, receives it again (the
document's `id` is the same). Order is not kept across runs. Connections go only where
the plugin address policy allows (bob_common/plugin_http.py).
"""

from __future__ import annotations

import asyncio
import logging

import httpx

from bob_common import backoff, plugin_http
from bob_common.plugin_policy import AddressPolicy
from entities_svc import notifications
from entities_svc.clock import now_ms
from entities_svc.db import DatabaseThread

log = logging.getLogger(__name__)

# How often due notifications are looked for.
POLL_S = 1.0
# Notifications taken per look at most, and delivered at once at most.
BATCH = 50
PARALLEL = 8
# The first retry waits this long; each next one twice as long, up to retry_max_s.
FIRST_RETRY_S = 1.0


class NotificationSender:
    def __init__(
        self,
        db: DatabaseThread,
        policy: AddressPolicy,
        *,
        timeout_s: float,
        give_up_s: float,
        retry_max_s: float,
        poll_s: float = POLL_S,
    ) -> None:
        self._db = db
        self._policy = policy
        self._timeout_s = timeout_s
        self._give_up_ms = int(give_up_s * 1000)
        self._retry_max_s = retry_max_s
        self._poll_s = poll_s
        self._stopping = asyncio.Event()
        # Since this process started (GetStats, /metrics).
        self.delivered = 0
        self.failed = 0
        self.dropped = 0

    def stop(self) -> None:
        self._stopping.set()

    async def serve(self) -> None:
        timeout = httpx.Timeout(self._timeout_s)
        async with plugin_http.async_client(self._policy, timeout) as http:
            await backoff.every(
                self._poll_s,
                lambda: self.deliver_due(http),
                what="notifications: delivering",
                log=log,
                stopping=self._stopping,
            )

    async def deliver_due(self, http: httpx.AsyncClient) -> int:
        """Delivers what is due now; how many were delivered."""
        now = now_ms()
        owed = await self._db.call(notifications.due, now, BATCH)
        # Held for longer than one delivery may take, by the timeout, with room to spare.
        hold_until = now + int(self._timeout_s * 1000) * 3
        taken = [o for o in owed if await self._db.call(notifications.hold, o, hold_until)]
        limit = asyncio.Semaphore(PARALLEL)

        async def one(o: notifications.Owed) -> bool:
            async with limit:
                return await self._deliver(http, o)

        results = await asyncio.gather(*(one(o) for o in taken))
        return sum(results)

    async def _deliver(self, http: httpx.AsyncClient, owed: notifications.Owed) -> bool:
        body = await self._db.call(notifications.document, owed)
        if body is None:  # the run is gone with its pipeline
            await self._db.call(notifications.delivered, owed.id)
            return False
        url = owed.url.rstrip("/") + notifications.PATH
        try:
            answer = await http.post(url, json=body)
            error = "" if answer.is_success else f"answered {answer.status_code}"
        except httpx.HTTPError as exc:
            # The exception's text may say why the address was refused: for this log only.
            error = f"could not reach it ({type(exc).__name__}: {exc})"
        if not error:
            await self._db.call(notifications.delivered, owed.id)
            self.delivered += 1
            log.info("notified %s of run %s (%s)", owed.notifier, owed.run_id, body["status"])
            return True
        self.failed += 1
        now = now_ms()
        if now - owed.created_at_ms >= self._give_up_ms:
            await self._db.call(notifications.delivered, owed.id)
            self.dropped += 1
            log.error(
                "notifier %s: gave up notifying run %s after %d attempt(s): %s "
                "(BOB_NOTIFY_GIVE_UP_S)",
                owed.notifier,
                owed.run_id,
                owed.attempts + 1,
                error,
            )
            return False
        wait_s = backoff.delay_s(owed.attempts + 1, first_s=FIRST_RETRY_S, most_s=self._retry_max_s)
        await self._db.call(notifications.failed, owed.id, error, now + int(wait_s * 1000))
        log.warning(
            "notifier %s: run %s not notified (attempt %d): %s; retrying in %.0f s",
            owed.notifier,
            owed.run_id,
            owed.attempts + 1,
            error,
            wait_s,
        )
        return False
