"""Spare containers: started containers kept ready per image (and pipeline user, which a
container cannot change), for the next runs of it.

Starting a container is most of what a run waits for before its first step (~200 ms of
the engine's time, where an exec costs ~50 ms). So once a run has its container, the
runner starts the next one in the background, and the next run of that image takes it.
A spare is made for no run: it carries no run label and no variables (the pipeline's go
with each exec); taking it renames it after the run and attempt, which is how the orphan
sweep finds its run. A spare is used only while fresh, only if the image has not changed
since (same image id), and only if it is still running (an engine's restart kills them
all; the runner also drops them all once its engine is back). The runner removes its
spares when it stops, and any runner removes another's stale ones: removing a spare is
always harmless, since a run that then cannot take it starts a container of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from docker.models.containers import Container

log = logging.getLogger(__name__)

# A spare older than this is not taken (it may be about to be swept)...
FRESH_S = 300.0
# ...and one of another runner older than this is swept.
STALE_S = 600.0


# What a spare is made for: (image name, the pipeline's user or "" for the image's).
Kind = tuple[str, str]


def run_container_name(run_id: str, attempt: int) -> str:
    return f"bob-{run_id}-a{attempt}"


@dataclass
class _Spare:
    image_id: str
    started: asyncio.Task[Container]
    made_at: float


class SparePool:
    def __init__(
        self,
        make: Callable[[Kind], Awaitable[Container]],
        discard: Callable[[Container], Awaitable[object]],
        *,
        per_image: int,
        max_images: int,
    ) -> None:
        self._make = make
        self._discard = discard
        # Two per image: runs that follow each other closely find the next spare started
        # a whole run earlier, not still starting.
        self._per_image = per_image
        self._max_images = max_images
        # By image name, least recently used first; each list oldest first.
        self._spares: dict[Kind, list[_Spare]] = {}
        self._chores: set[asyncio.Task[None]] = set()

    async def take(self, image: Kind, image_id: str) -> Container | None:
        """A started spare of the image, or None (none left fresh and of this image id,
        or its start failed)."""
        spares = self._spares.get(image, [])
        while spares:
            spare = spares.pop(0)
            if spare.image_id != image_id or time.monotonic() - spare.made_at > FRESH_S:
                self._later(self._drop(spare))
                continue
            try:
                return await spare.started
            except Exception as exc:  # noqa: BLE001 - the run starts a container of its own
                log.warning("spare container for %s could not start: %r", image, exc)
        return None

    def replenish(self, image: Kind, image_id: str) -> None:
        """Starts spares of the image up to per_image; the least recently used image loses
        its spares beyond max_images."""
        spares = self._spares.pop(image, [])
        self._spares[image] = spares  # most recently used now
        while len(self._spares) > self._max_images:
            for spare in self._spares.pop(next(iter(self._spares))):
                self._later(self._drop(spare))
        while len(spares) < self._per_image:
            spares.append(
                _Spare(image_id, asyncio.create_task(self._make(image)), time.monotonic())
            )

    async def close(self) -> None:
        """Removes every spare (and waits for those being started); the pool may be
        replenished again afterwards, e.g. once an engine that restarted is back."""
        spares = [spare for kept in self._spares.values() for spare in kept]
        self._spares = {}
        await asyncio.gather(
            *(self._drop(s) for s in spares), *self._chores, return_exceptions=True
        )

    async def _drop(self, spare: _Spare) -> None:
        with contextlib.suppress(Exception):  # failed to start: nothing to remove
            await self._discard(await spare.started)

    def _later(self, chore: Awaitable[None]) -> None:
        task = asyncio.ensure_future(chore)
        self._chores.add(task)
        task.add_done_callback(self._chores.discard)
