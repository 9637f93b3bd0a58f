"""The event loop every Bob service runs on: uvloop's (libuv), as uvicorn already gives the
API. A run costs each service a few dozen loop iterations (gRPC calls, AMQP frames, the
Docker calls' threads handing back their answers), and the standard loop's iteration,
written in Python, was the largest single item in the runner's and entities' profiles."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import uvloop

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    """asyncio.run(main), on a uvloop loop."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)
