"""GET /pipelines/status/runs/{run-id} answered in front of Connexion (memory_status.py):
the same answer as Connexion's, byte for byte, and only where Connexion's would be it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from api_server import app as app_module
from api_server.memory_status import MemoryStatus
from api_server.run_statuses import RunStatuses
from bob_common.config import ApiSettings
from bob_common.run_states import RunStatus
from bob_pb import entities_pb2


def _scope(path: str, state: dict[str, Any], **changes: Any) -> dict[str, Any]:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1:7777"), (b"accept", b"*/*")],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 7777),
        "state": state,
    }
    scope.update(changes)
    return scope


async def _get(app: Any, scope: dict[str, Any]) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(dict(message))

    await app(scope, receive, send)
    return sent


@contextlib.asynccontextmanager
async def _serving(statuses: RunStatuses) -> AsyncIterator[tuple[Any, dict[str, Any]]]:
    """The API's app with backends that hold `statuses` and nothing else, started."""

    @contextlib.asynccontextmanager
    async def backends(settings: ApiSettings) -> AsyncIterator[Any]:
        yield SimpleNamespace(statuses=statuses, settings=settings)

    with pytest.MonkeyPatch.context() as patch:
        # The lifespan opens the backends when it starts: patched until it has ended.
        patch.setattr(app_module, "open_backends", backends)
        app = app_module.create_app(ApiSettings.from_env({"BOB_API_VALIDATE_RESPONSES": "1"}))
        state: dict[str, Any] = {}
        inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        started = asyncio.Event()

        async def lifespan_send(message: dict[str, Any]) -> None:
            started.set()

        await inbox.put({"type": "lifespan.startup"})
        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": state}
        lifespan = asyncio.ensure_future(app(scope, inbox.get, lifespan_send))
        await asyncio.wait_for(started.wait(), 10)
        try:
            yield app, state
        finally:
            await inbox.put({"type": "lifespan.shutdown"})
            await asyncio.wait_for(lifespan, 10)


def _middleware() -> MemoryStatus:
    """The middleware alone, in front of nothing: what it would answer, not how."""
    return MemoryStatus(None, Path(app_module.__file__).parent / app_module.SPEC)  # type: ignore[arg-type]


def _statuses() -> RunStatuses:
    statuses = RunStatuses()
    statuses.caught_up()
    for event_id, status in enumerate(RunStatus, start=1):
        if status is not RunStatus.UNSPECIFIED:
            statuses.apply(
                entities_pb2.ClusterEvent(
                    id=event_id, run_id=f"r-{status.name.lower()}", run_status=int(status)
                )
            )
    return statuses


def test_a_status_in_memory_is_answered_as_connexion_answers_it(monkeypatch):
    async def main() -> list[tuple[list[dict[str, Any]], list[dict[str, Any]]]]:
        async with _serving(_statuses()) as (app, state):
            found = []
            for status in RunStatus:
                if status is RunStatus.UNSPECIFIED:
                    continue
                scope = _scope(f"/pipelines/status/runs/r-{status.name.lower()}", state)
                fast = await _get(app, scope)
                with monkeypatch.context() as patch:
                    patch.setattr(MemoryStatus, "known_status", lambda self, scope: None)
                    slow = await _get(app, dict(scope))
                found.append((fast, slow))
            return found

    for fast, slow in asyncio.run(main()):
        assert fast == slow
        assert fast[0]["status"] == 200


@pytest.mark.parametrize(
    "changes",
    [
        {"query_string": b"x=1"},
        {"method": "HEAD"},
        {"path": "/pipelines/status/runs/r-running/"},
        {"path": "/pipelines/status/runs/r-running/x"},
        {"path": "/pipelines/status/runs/"},
        {"path": "/pipelines/status/runs/.r-running"},
        {"path": "/pipelines/status/runs/r-unknown"},
        {"root_path": "/bob"},
        {"headers": [(b"host", b"127.0.0.1:7777"), (b"Content-Type", b"application/json")]},
        {"headers": [(b"host", b"127.0.0.1:7777"), (b"content-length", b"0")]},
        {"type": "websocket"},
    ],
)
def test_anything_else_goes_on_to_connexion(changes):
    middleware = _middleware()
    state = {"backends": SimpleNamespace(statuses=_statuses())}
    running = "/pipelines/status/runs/r-running"

    assert middleware.known_status(_scope(running, state)) == RunStatus.RUNNING
    assert middleware.known_status({**_scope(running, state), **changes}) is None


def test_a_run_that_may_have_changed_goes_on_to_connexion_while_not_following():
    statuses = _statuses()
    statuses.lost()
    middleware = _middleware()
    state = {"backends": SimpleNamespace(statuses=statuses)}

    assert middleware.known_status(_scope("/pipelines/status/runs/r-running", state)) is None
    # An ended run's status never changes: answered all the same.
    assert (
        middleware.known_status(_scope("/pipelines/status/runs/r-passed", state))
        == RunStatus.PASSED
    )
