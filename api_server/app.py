"""Builds the Connexion app from openapi.yaml: strict request validation, Bob's error
envelope, and a lifespan that owns the gRPC channel and the queue connection."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import connexion
from connexion.exceptions import ProblemException
from connexion.middleware import MiddlewarePosition
from connexion.validators import JSONResponseBodyValidator
from starlette.exceptions import HTTPException

from api_server import bootstrap, handlers, problems
from api_server.auth import SECURITY_MAP, VERIFIER, Authenticate
from api_server.backends import open_backends
from api_server.body_limit import BodyLimit
from api_server.guard import Guard
from api_server.memory_status import MemoryStatus
from api_server.operation_roles import OperationRoles
from api_server.resolver import HandlerResolver
from api_server.token_verifier import TokenVerifier
from api_server.web_page import WebPage
from bob_common.config import AUTH_TOKENS, ApiSettings

SPEC = "openapi.yaml"


def create_app(settings: ApiSettings) -> connexion.AsyncApp:
    """The app; operation_roles.SpecError when the document or BOB_API_OPEN_PATHS gives
    an operation no valid role."""
    roles = OperationRoles.from_spec(Path(__file__).parent / SPEC, settings.open_paths)

    @contextlib.asynccontextmanager
    async def lifespan(_app) -> AsyncIterator[dict]:
        async with open_backends(settings) as backends:
            verifier = TokenVerifier(backends, settings.token_cache_s, settings.token_cache_size)
            bootstrapping = None
            if settings.auth == AUTH_TOKENS:
                bootstrapping = asyncio.create_task(
                    bootstrap.admin_token(backends.entities), name="bootstrap-token"
                )
            try:
                yield {"backends": backends, VERIFIER: verifier}
            finally:
                if bootstrapping is not None:
                    bootstrapping.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await bootstrapping

    app = connexion.AsyncApp(__name__, specification_dir=".", lifespan=lifespan)
    app.add_api(
        SPEC,
        resolver=HandlerResolver(handlers.MODULES),
        strict_validation=True,
        validate_responses=settings.validate_responses,
        pythonic_params=True,
        swagger_ui_options=connexion.options.SwaggerUIOptions(swagger_ui_path="/ui"),
        # Responses are validated as JSON only: Connexion's text/plain validator holds the
        # whole body before sending it, which a followed log never finishes (and a
        # `type: string` schema has nothing to check).
        validator_map={"response": {"*/*json": JSONResponseBodyValidator}},
        # Tokens are checked in front of everything (auth.py); Connexion's own security
        # step only records the caller.
        security_map=SECURITY_MAP,
    )
    # Added first, so it runs first of the API's middlewares (each one added at a
    # position goes after those added before): a refused request reaches nothing else.
    app.add_middleware(Guard, MiddlewarePosition.BEFORE_EXCEPTION, settings=settings)
    # The web page's static files, open (they hold no data), so in front of the token
    # check; behind the guard, which refuses foreign Hosts and Origins for them too.
    app.add_middleware(WebPage, MiddlewarePosition.BEFORE_EXCEPTION)
    # Then the caller's token: nothing is answered, not even a too-large body's 413 or a
    # status from memory, before it is checked.
    app.add_middleware(
        Authenticate, MiddlewarePosition.BEFORE_EXCEPTION, roles=roles, mode=settings.auth
    )
    app.add_middleware(
        BodyLimit, MiddlewarePosition.BEFORE_EXCEPTION, max_bytes=settings.max_body_bytes
    )
    # The status of a run held in memory, answered in front of Connexion's stack.
    app.add_middleware(
        MemoryStatus, MiddlewarePosition.BEFORE_EXCEPTION, spec=Path(__file__).parent / SPEC
    )
    app.add_error_handler(problems.ApiError, problems.handle_api_error)
    app.add_error_handler(ProblemException, problems.handle_problem)
    app.add_error_handler(HTTPException, problems.handle_http)
    app.add_error_handler(UnicodeDecodeError, problems.handle_undecodable)
    app.add_error_handler(Exception, problems.handle_unexpected)
    return app
