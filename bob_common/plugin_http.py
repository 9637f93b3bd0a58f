"""HTTP clients for plugins that connect only where bob_common.plugin_policy allows.

The check sits in httpcore's network backend, where a connection is made: the host is
resolved once, every address it resolves to is checked, and the connection goes to a
checked address (never to the name again), so a name that changes its answer between
the check and the connect (DNS rebinding) gains nothing. TLS still verifies the
certificate against the URL's host name: httpcore passes that as the server name.
httpx has no public way to give its transport a network backend, hence `_install`.

A refusal is an httpx.ConnectError whose text says why: for logs, not for callers
(callers say "could not reach ..."; the text would help someone scan the network).
"""

from __future__ import annotations

import asyncio
import socket
import typing

import httpcore
import httpx

from bob_common.plugin_policy import AddressPolicy


class AddressRefused(httpcore.ConnectError):
    """The plugin's host resolves to an address the policy refuses."""


def _addresses(host: str, infos: list[typing.Any]) -> list[str]:
    found = [info[4][0] for info in infos]
    if not found:
        raise httpcore.ConnectError(f"{host} resolves to no address")
    return list(dict.fromkeys(found))


def _checked(policy: AddressPolicy, host: str, addresses: list[str]) -> list[str]:
    """`addresses`, unless one of them is refused: then none is used (a name whose answers
    mix public and internal addresses is someone's trick)."""
    for address in addresses:
        if why := policy.refusal(host, address):
            raise AddressRefused(f"{host} resolves to {address}, {why}")
    return addresses


class GuardedBackend(httpcore.NetworkBackend):
    def __init__(self, policy: AddressPolicy) -> None:
        self._policy = policy
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[typing.Any] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        last: Exception | None = None
        for address in _checked(self._policy, host, _addresses(host, infos)):
            try:
                return self._inner.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last

    def connect_unix_socket(self, *args: typing.Any, **kwargs: typing.Any) -> typing.NoReturn:
        raise AddressRefused("plugins are reached over TCP only")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class AsyncGuardedBackend(httpcore.AsyncNetworkBackend):
    def __init__(self, policy: AddressPolicy) -> None:
        self._policy = policy
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[typing.Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            infos = await asyncio.wait_for(
                loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), timeout
            )
        except (OSError, TimeoutError) as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        last: Exception | None = None
        for address in _checked(self._policy, host, _addresses(host, infos)):
            try:
                return await self._inner.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last

    async def connect_unix_socket(self, *args: typing.Any, **kwargs: typing.Any) -> typing.NoReturn:
        raise AddressRefused("plugins are reached over TCP only")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def _install(transport: typing.Any, backend: typing.Any) -> None:
    transport._pool._network_backend = backend


def client(policy: AddressPolicy, timeout: httpx.Timeout) -> httpx.Client:
    """A client for plugins. Given a transport, httpx ignores proxy variables, which would
    otherwise connect to a proxy instead of the checked address."""
    transport = httpx.HTTPTransport()
    _install(transport, GuardedBackend(policy))
    return httpx.Client(transport=transport, timeout=timeout, follow_redirects=False)


def async_client(policy: AddressPolicy, timeout: httpx.Timeout) -> httpx.AsyncClient:
    transport = httpx.AsyncHTTPTransport()
    _install(transport, AsyncGuardedBackend(policy))
    return httpx.AsyncClient(transport=transport, timeout=timeout, follow_redirects=False)
