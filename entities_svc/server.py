"""The gRPC server: the Entities service, and beside it the standard health-checking and
reflection services, so that grpcurl and the like can list and call the rpcs."""

from __future__ import annotations

from collections.abc import Sequence

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from bob_common import rpc
from bob_pb import entities_pb2, entities_pb2_grpc

SERVICE_NAME = entities_pb2.DESCRIPTOR.services_by_name["Entities"].full_name


class BindError(RuntimeError):
    """The listen address cannot be bound; the cli exits with RET_BIND."""


async def start_server(
    servicer: entities_pb2_grpc.EntitiesServicer,
    listen_addr: str,
    *,
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
    credentials: grpc.ServerCredentials | None = None,
) -> tuple[grpc.aio.Server, int, health.aio.HealthServicer]:
    """A started server, the port it listens on (useful with port 0), and its health
    servicer, which reports SERVING for "" and bob.v1.Entities.

    Every rpc is handled within the run it is about (bob_common.rpc), so its log lines
    name the run; `interceptors` come after, the place to check who is calling. With
    `credentials`, it serves TLS only (bob_common.tls), else plaintext."""
    server = grpc.aio.server(interceptors=(rpc.ServerInterceptor(), *interceptors))
    entities_pb2_grpc.add_EntitiesServicer_to_server(servicer, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (
            SERVICE_NAME,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ),
        server,
    )
    try:
        if credentials is None:
            port = server.add_insecure_port(listen_addr)
        else:
            port = server.add_secure_port(listen_addr, credentials)
    except RuntimeError as exc:
        raise BindError(f"cannot listen on {listen_addr}: {exc}") from exc
    if port == 0:
        raise BindError(f"cannot listen on {listen_addr}")
    await server.start()
    for name in ("", SERVICE_NAME):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return server, port, health_servicer
