"""What every gRPC call between the services shares: which failures are worth a retry,
the deadline a call gets when its caller sets none, and the run a call is about.

A caller says which run its work is about with `about_run(run_id)`; a call whose request
has a `run_id` field is about that run without being told. The client interceptor sends
the run id as metadata `bob-run-id`; the server interceptor puts it back in the same
context variable while the rpc is handled, and `RunIdFilter`, installed by the services'
logging set-up, names it on every log line emitted meanwhile (` run=<id>`).
"""

from __future__ import annotations

import contextlib
import contextvars
import copy
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import grpc

RUN_ID_KEY = "bob-run-id"
S = TypeVar("S")

# Entities could not answer now; the same call later may succeed. The API answers 503
# with Retry-After.
RETRY_LATER: frozenset[grpc.StatusCode] = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    }
)
# Answers that say nothing about the request, only that entities did not decide it: a
# caller whose calls are safe to repeat (the runner's claims, renewals and releases)
# tries again later rather than taking them for a refusal.
UNDECIDED: frozenset[grpc.StatusCode] = RETRY_LATER | {
    grpc.StatusCode.ABORTED,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.CANCELLED,
}

# The run the current work is about; "" when none.
_run_id: contextvars.ContextVar[str] = contextvars.ContextVar("bob_run_id", default="")


def current_run() -> str:
    """The run id the current work is about, "" when none."""
    return _run_id.get()


@contextlib.contextmanager
def about_run(run_id: str) -> Iterator[None]:
    """Within the block, calls carry `run_id` and log lines name it."""
    token = _run_id.set(run_id)
    try:
        yield
    finally:
        _run_id.reset(token)


def _request_run_id(request: Any) -> str:
    value = getattr(request, "run_id", "")
    return value if isinstance(value, str) else ""


def _call_defaults(
    request: Any, timeout: float | None, metadata: Any, timeout_s: float
) -> tuple[float, grpc.aio.Metadata]:
    """A call's deadline and metadata: `timeout_s` unless its caller set a deadline, and
    the run id of its request (or else of `about_run`), unless its caller sent one."""
    given = grpc.aio.Metadata(*(metadata or ()))
    run_id = _request_run_id(request) or current_run()
    if run_id and given.get(RUN_ID_KEY) is None:
        given.add(RUN_ID_KEY, run_id)
    return (timeout_s if timeout is None else timeout), given


class ClientInterceptor(grpc.aio.UnaryUnaryClientInterceptor):
    """Gives every call `timeout_s` unless its caller set a deadline, and the run id of
    its request (or else of `about_run`) as metadata, unless its caller sent one."""

    def __init__(self, timeout_s: float) -> None:
        self._timeout_s = timeout_s

    async def intercept_unary_unary(
        self,
        continuation: Callable[[grpc.aio.ClientCallDetails, Any], Awaitable[Any]],
        client_call_details: grpc.aio.ClientCallDetails,
        request: Any,
    ) -> Any:
        details = client_call_details
        timeout, metadata = _call_defaults(
            request, details.timeout, details.metadata, self._timeout_s
        )
        given = grpc.aio.ClientCallDetails(
            method=details.method,
            timeout=timeout,
            metadata=metadata,
            credentials=details.credentials,
            wait_for_ready=details.wait_for_ready,
        )
        return await continuation(given, request)


class _WithDefaults:
    """One unary method of a stub, whose calls get what ClientInterceptor gives."""

    __slots__ = ("_method", "_timeout_s")

    def __init__(self, method: grpc.aio.UnaryUnaryMultiCallable[Any, Any], timeout_s: float):
        self._method = method
        self._timeout_s = timeout_s

    def __call__(
        self, request: Any, *, timeout: float | None = None, metadata: Any = None, **kwargs: Any
    ) -> Any:
        timeout, given = _call_defaults(request, timeout, metadata, self._timeout_s)
        return self._method(request, timeout=timeout, metadata=given, **kwargs)


def with_defaults(stub: S, timeout_s: float) -> S:
    """The stub, but each of its unary methods gives its calls what ClientInterceptor
    would: for a process whose calls all go through stubs, the same without grpc.aio's
    interceptor machinery, which costs a task and an intercepted call per call."""
    wrapped = copy.copy(stub)
    for name, method in vars(stub).items():
        if isinstance(method, grpc.aio.UnaryUnaryMultiCallable):
            setattr(wrapped, name, _WithDefaults(method, timeout_s))
    return wrapped


class ServerInterceptor(grpc.aio.ServerInterceptor):
    """Handles each unary rpc within `about_run` of the run it is about: metadata
    `bob-run-id`, else the request's `run_id` field (a client without ClientInterceptor,
    grpcurl say). Streaming rpcs (health Watch, reflection) pass through untouched."""

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        behavior = handler.unary_unary if handler is not None else None
        if handler is None or behavior is None or not inspect.iscoroutinefunction(behavior):
            return handler
        sent = dict(handler_call_details.invocation_metadata or ()).get(RUN_ID_KEY, "")
        sent_id = sent if isinstance(sent, str) else sent.decode()

        # The stubs type handlers as grpc's synchronous ones; under grpc.aio they are
        # coroutine functions taking an aio context, as checked above.
        async def about_its_run(request: Any, context: Any) -> Any:
            with about_run(sent_id or _request_run_id(request)):
                return await behavior(request, context)

        return grpc.unary_unary_rpc_method_handler(
            about_its_run,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


class RunIdFilter(logging.Filter):
    """Gives every record `run`: " run=<id>" while the work is about a run, else ""."""

    def filter(self, record: logging.LogRecord) -> bool:
        run_id = current_run()
        record.run = f" run={run_id}" if run_id else ""
        return True
