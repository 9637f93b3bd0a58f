"""Errors at the HTTP edge: every error answers {"message": ...} with a status that fits.

gRPC status codes map to HTTP in the one table below; nothing else in the API server
decides a status code for a backend failure.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import grpc
from connexion.exceptions import ProblemException
from connexion.lifecycle import ConnexionRequest, ConnexionResponse
from starlette.exceptions import HTTPException

from bob_common import rpc

log = logging.getLogger(__name__)

RETRY_AFTER_S = 5

GRPC_TO_HTTP: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.FAILED_PRECONDITION: 422,
    # Entities refused the API server's own certificate: the cluster is misconfigured
    # (the caller did nothing wrong, and a retry will not help).
    grpc.StatusCode.PERMISSION_DENIED: 502,
    grpc.StatusCode.UNAUTHENTICATED: 502,
    # Entities could not answer now: retry later.
    **dict.fromkeys(rpc.RETRY_LATER, 503),
}


class ApiError(Exception):
    """Raised by handlers to answer with an error; caught by handle_api_error."""

    def __init__(self, status: int, message: Any, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def unavailable(message: str) -> ApiError:
    """A 503 that tells the client when to retry."""
    return ApiError(503, message, {"Retry-After": str(RETRY_AFTER_S)})


def from_grpc(err: grpc.aio.AioRpcError) -> ApiError:
    status = GRPC_TO_HTTP.get(err.code(), 500)
    if err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
        # Entities is up, the queue behind it is not taking jobs: its message says which.
        return unavailable(err.details() or "The job queue is not taking jobs; retry later")
    if status == 503:
        log.warning("entities unavailable: %s %s", err.code().name, err.details())
        return unavailable(f"Entities service unavailable: {err.details() or err.code().name}")
    if status == 502:
        log.error("entities refused the API server: %s %s", err.code().name, err.details())
        return ApiError(
            502, f"The entities service refused the API server's identity: {err.details()}"
        )
    if status == 500:
        log.error("entities failed: %s %s", err.code().name, err.details())
        return ApiError(500, "Internal error in the entities service")
    return ApiError(status, err.details() or err.code().name)


def _response(status: int, message: Any, headers: dict[str, str] | None = None):
    return ConnexionResponse(
        status_code=status,
        body=json.dumps({"message": message}),
        content_type="application/json",
        headers=headers or {},
    )


def handle_api_error(_request: ConnexionRequest, exc: ApiError) -> ConnexionResponse:
    return _response(exc.status, exc.message, exc.headers)


def handle_problem(_request: ConnexionRequest, exc: ProblemException) -> ConnexionResponse:
    """Connexion's validation problems, in Bob's envelope. jsonschema appends the whole
    failing schema to its message; the first line is the part that names the problem."""
    message = str(exc.detail or exc.title or "Bad request").split("\n", 1)[0]
    return _response(exc.status, message, dict(exc.headers or {}))


def handle_http(_request: ConnexionRequest, exc: HTTPException) -> ConnexionResponse:
    """Routing errors (unknown path, wrong method), in Bob's envelope."""
    return _response(exc.status_code, exc.detail, dict(exc.headers or {}))


def handle_undecodable(_request: ConnexionRequest, _exc: UnicodeDecodeError) -> ConnexionResponse:
    """A body that is not UTF-8 (connexion decodes before it parses JSON)."""
    return _response(400, "Request body is not valid UTF-8 JSON")


def handle_unexpected(_request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
    log.exception("unhandled error", exc_info=exc)
    return _response(500, "Internal server error")
