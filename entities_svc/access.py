"""Who may call which rpc: the caller's identity is the one its TLS client certificate
names (bob_common/pki.py), and RULES says which callers each rpc of bob.v1.Entities
accepts. An rpc without a row is refused to everyone, so a new rpc is closed until
someone decides who may call it: adding its row is all it takes.

Callers are `api`, `runner` (any runner), `tool/read` and `tool/admin`. A runner may only
speak for itself: in the rpcs marked `own_runner_id`, the request's runner_id must be the
runner's own id, so it can neither claim as another runner nor renew or release a run
another runner holds (leases.py and run_commands.py refuse a run not held by the
runner_id given). Servicers that need the caller (a run's secrets, say) read `caller()`.

Only a TLS server gets this interceptor: in plaintext (loopback, no BOB_TLS_*) there are
no identities, and every rpc is open as before.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc

from bob_common import pki

log = logging.getLogger(__name__)

SERVICE = "bob.v1.Entities"
API = "api"
RUNNER = "runner"
READ = "tool/read"
ADMIN = "tool/admin"

# The API reads and writes for its users; an admin tool may do as much; a read-only tool
# only reads; runners read what a run needs (its run, the plugins it uses).
READERS = frozenset({API, ADMIN, READ})
WRITERS = frozenset({API, ADMIN})
RUNNERS = frozenset({RUNNER})
RUN_READERS = READERS | RUNNERS
# Credentials (API tokens, secrets) are managed through the API alone, where each user's
# role is checked.
API_ONLY = frozenset({API})


@dataclass(frozen=True)
class Rule:
    callers: frozenset[str]
    # The request's runner_id must be the calling runner's own id.
    own_runner_id: bool = False


RULES: dict[str, Rule] = {
    "PutPipeline": Rule(WRITERS),
    "GetPipeline": Rule(READERS),
    "DeletePipeline": Rule(WRITERS),
    "ListPipelines": Rule(READERS),
    "SetPipelinePaused": Rule(WRITERS),
    "PutResourceProvider": Rule(WRITERS),
    "DeleteResourceProvider": Rule(WRITERS),
    "ListResourceProviders": Rule(RUN_READERS),
    "PutArtifactStore": Rule(WRITERS),
    "DeleteArtifactStore": Rule(WRITERS),
    "ListArtifactStores": Rule(RUN_READERS),
    "PutLogger": Rule(WRITERS),
    "DeleteLogger": Rule(WRITERS),
    "ListLoggers": Rule(RUN_READERS),
    "CreateRun": Rule(WRITERS),
    "ClaimRun": Rule(RUNNERS, own_runner_id=True),
    "GetRun": Rule(RUN_READERS),
    "ListRuns": Rule(READERS),
    "ListRunsPage": Rule(READERS),
    "GetLogs": Rule(READERS),
    "StopRun": Rule(WRITERS),
    "SetRunPaused": Rule(WRITERS),
    "RenewLeases": Rule(RUNNERS, own_runner_id=True),
    "ReleaseRun": Rule(RUNNERS, own_runner_id=True),
    "ListRunners": Rule(READERS),
    "GetStats": Rule(READERS),
    "ListEvents": Rule(READERS),
    # API tokens
    "CreateToken": Rule(API_ONLY),
    "ListTokens": Rule(API_ONLY),
    "RevokeToken": Rule(API_ONLY),
    "VerifyToken": Rule(API_ONLY),
    # Secrets: written through the API alone; a run's values only to the runner holding its
    # claim (secrets.py checks the claim and its proof; here, that it asks as itself).
    "PutSecret": Rule(API_ONLY),
    "ListSecrets": Rule(API_ONLY),
    "DeleteSecret": Rule(API_ONLY),
    "GetRunSecrets": Rule(RUNNERS, own_runner_id=True),
    # Runner types a pipeline may run on
    "GetPipelineRunnerTypes": Rule(READERS),
    "SetPipelineRunnerTypes": Rule(WRITERS),
    # Issue 11 (sched): a pipeline's schedules; notifiers, which entities itself calls
    "ListSchedules": Rule(READERS),
    "PutNotifier": Rule(WRITERS),
    "DeleteNotifier": Rule(WRITERS),
    "ListNotifiers": Rule(READERS),
    # Webhooks (issue 11): forge deliveries reach entities through the API alone, which
    # parses them; entities verifies their signatures against the webhook secrets.
    "DeliverWebhook": Rule(API_ONLY),
    # Issue 15 (watch): the journal as a stream, for the API's run statuses. The API only:
    # a stream holds entities' resources for as long as it lasts; tools read ListEvents.
    "WatchEvents": Rule(API_ONLY),
}

# The standard services beside Entities (health checks, reflection) tell nothing a
# caller with a certificate of the cluster may not know.
OPEN_SERVICES = ("grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection")

_caller: contextvars.ContextVar[pki.Identity | None] = contextvars.ContextVar(
    "bob_caller", default=None
)


def caller() -> pki.Identity | None:
    """The identity of the peer whose rpc is being handled; None in plaintext mode."""
    return _caller.get()


@contextlib.contextmanager
def calling_as(identity: pki.Identity | None) -> Iterator[None]:
    token = _caller.set(identity)
    try:
        yield
    finally:
        _caller.reset(token)


def role(identity: pki.Identity) -> str:
    """The caller class RULES speaks of: `runner` for every runner, else the identity."""
    return RUNNER if identity.kind == pki.RUNNER else str(identity)


def refusal(rpc_name: str, identity: pki.Identity | None, request: Any) -> str | None:
    """Why `identity` may not make this call, or None when it may."""
    rule = RULES.get(rpc_name)
    who = str(identity) if identity else "a caller without a Bob identity"
    if rule is None:
        return f"{who} may not call {rpc_name}: no caller may"
    if identity is None or role(identity) not in rule.callers:
        allowed = ", ".join(sorted(rule.callers))
        return f"{who} may not call {rpc_name} (only {allowed})"
    if rule.own_runner_id:
        given = getattr(request, "runner_id", "")
        if given != identity.name:
            return f"{who} may not call {rpc_name} for runner_id {given!r}: only for its own"
    return None


def _peer_identity(context: grpc.aio.ServicerContext) -> pki.Identity | None:
    # gRPC lists a verified peer's URI names as peer_uri; older releases only among all
    # its subject alternative names, where the bob:// one is as easily found.
    found = context.auth_context()
    uris = found.get("peer_uri") or found.get("x509_subject_alternative_name") or []
    return pki.identity_from_uris(u.decode() for u in uris)


class AccessInterceptor(grpc.aio.ServerInterceptor):
    """Checks each Entities rpc against RULES before it runs, and handles it with the
    caller's identity in `caller()`. A refusal is PERMISSION_DENIED naming the caller
    and the rpc. Other services' rpcs pass when listed in OPEN_SERVICES."""

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        service, _, rpc_name = handler_call_details.method.lstrip("/").partition("/")
        if handler is None or service in OPEN_SERVICES:
            return handler
        if service != SERVICE:
            return _denied(handler_call_details.method)
        if handler.unary_stream is not None:
            return _checked_stream(rpc_name, handler)
        behavior = handler.unary_unary
        if behavior is None:
            return _denied(handler_call_details.method)

        # The stubs type handlers as grpc's synchronous ones; under grpc.aio they are
        # coroutine functions taking an aio context.
        async def checked(request: Any, context: Any) -> Any:
            with calling_as(await _admitted(rpc_name, request, context)):
                return await behavior(request, context)

        return grpc.unary_unary_rpc_method_handler(
            checked,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


async def _admitted(rpc_name: str, request: Any, context: Any) -> pki.Identity | None:
    """The caller's identity; the call aborted PERMISSION_DENIED when RULES refuse it."""
    identity = _peer_identity(context)
    why = refusal(rpc_name, identity, request)
    if why is not None:
        log.warning("refused: %s", why)
        await context.abort(grpc.StatusCode.PERMISSION_DENIED, why)
    return identity


def _checked_stream(
    rpc_name: str, handler: grpc.RpcMethodHandler[Any, Any]
) -> grpc.RpcMethodHandler[Any, Any]:
    """A server-streaming rpc, checked as the unary ones are before its first message."""
    behavior = handler.unary_stream

    async def checked(request: Any, context: Any) -> None:
        with calling_as(await _admitted(rpc_name, request, context)):
            await behavior(request, context)

    return grpc.unary_stream_rpc_method_handler(
        checked,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


def _denied(method: str) -> grpc.RpcMethodHandler[Any, Any]:
    async def deny(request: Any, context: Any) -> Any:
        await context.abort(grpc.StatusCode.PERMISSION_DENIED, f"no caller may call {method}")

    return grpc.unary_unary_rpc_method_handler(deny)
