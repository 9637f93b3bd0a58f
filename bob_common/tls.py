"""gRPC credentials from the settings: entities serves mutual TLS and requires a client
certificate from the cluster CA; the API, the runners and tools connect with their own.
Without BOB_TLS_* settings both sides speak plaintext, as on a developer's loopback."""

from __future__ import annotations

from pathlib import Path

import grpc

from bob_common.config import CommonSettings


def _read(path: str) -> bytes:
    return Path(path).read_bytes()


def server_credentials(common: CommonSettings) -> grpc.ServerCredentials:
    """Entities' own key and certificate; a client must present one the CA signed."""
    return grpc.ssl_server_credentials(
        [(_read(common.tls_key), _read(common.tls_cert))],
        root_certificates=_read(common.tls_ca),
        require_client_auth=True,
    )


def channel_credentials(common: CommonSettings) -> grpc.ChannelCredentials:
    """This service's key and certificate, and the CA that entities' must be signed by."""
    return grpc.ssl_channel_credentials(
        _read(common.tls_ca), _read(common.tls_key), _read(common.tls_cert)
    )


def aio_channel(
    common: CommonSettings,
    interceptors: list[grpc.aio.ClientInterceptor] | None = None,
) -> grpc.aio.Channel:
    """A channel to entities: TLS with this service's certificate when the settings give
    one, plaintext otherwise."""
    if common.tls:
        return grpc.aio.secure_channel(
            common.entities_addr, channel_credentials(common), interceptors=interceptors
        )
    return grpc.aio.insecure_channel(common.entities_addr, interceptors=interceptors)
