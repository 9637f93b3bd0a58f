"""What handlers talk to: the entities service over gRPC and, for reading only (errors,
queue depths, health), the queue.

The app's lifespan owns one Backends; handlers reach it through request state.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from typing import TypeVar

import grpc
import httpx
from connexion import request
from grpc_health.v1 import health_pb2, health_pb2_grpc

from api_server import run_statuses
from api_server.problems import from_grpc
from api_server.publisher import Publisher
from bob_common import plugin_http, rpc, tls
from bob_common.config import ApiSettings
from bob_pb import entities_pb2_grpc

T = TypeVar("T")


@dataclass
class Backends:
    settings: ApiSettings
    channel: grpc.aio.Channel
    entities: entities_pb2_grpc.EntitiesStub
    health: health_pb2_grpc.HealthStub
    publisher: Publisher
    # For the plugins: artifact downloads and pings.
    http: httpx.AsyncClient
    statuses: run_statuses.RunStatuses = field(default_factory=run_statuses.RunStatuses)

    async def call(self, pending: Awaitable[T]) -> T:
        """The answer of an entities rpc, `await b.call(b.entities.GetRun(ref))`; a
        failure becomes the ApiError that fits. The channel gives the call its deadline."""
        try:
            return await pending
        except grpc.aio.AioRpcError as err:
            raise from_grpc(err) from err

    async def entities_healthy(self) -> bool:
        try:
            reply = await self.health.Check(
                health_pb2.HealthCheckRequest(service="bob.v1.Entities")
            )
        except grpc.aio.AioRpcError:
            return False
        return reply.status == health_pb2.HealthCheckResponse.SERVING


def open_channel(settings: ApiSettings) -> grpc.aio.Channel:
    """The API's channel to entities (the server's, and `python -m api_server tokens`'):
    TLS with the API's own certificate when the settings give one (bob_common.tls)."""
    return tls.aio_channel(settings.common)


@contextlib.asynccontextmanager
async def open_backends(settings: ApiSettings) -> AsyncIterator[Backends]:
    # Every call gets the configured deadline and names the run it is about: the stubs
    # see to it (rpc.with_defaults), as rpc.ClientInterceptor would at a higher cost.
    channel = open_channel(settings)
    timeout_s = settings.common.grpc_timeout_s
    publisher = Publisher(settings.common)
    await publisher.start()
    timeout = httpx.Timeout(settings.common.grpc_timeout_s)
    following: asyncio.Task[None] | None = None
    try:
        # Plugins only (pings, artifact downloads): it connects where the policy allows.
        async with plugin_http.async_client(settings.plugin_policy, timeout) as http:
            backends = Backends(
                settings=settings,
                channel=channel,
                entities=rpc.with_defaults(entities_pb2_grpc.EntitiesStub(channel), timeout_s),
                health=rpc.with_defaults(health_pb2_grpc.HealthStub(channel), timeout_s),
                publisher=publisher,
                http=http,
            )
            following = asyncio.create_task(
                run_statuses.follow(
                    backends.statuses, backends.entities, settings.common.grpc_timeout_s
                ),
                name="run-statuses",
            )
            yield backends
    finally:
        if following is not None:
            following.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await following
        await publisher.close()
        await channel.close()


def current() -> Backends:
    """The Backends of the app serving the current request."""
    return request.state.backends
