"""Builds the Connexion app from openapi.yaml: strict request validation, Bob's error
envelope, and a lifespan that owns the gRPC channel and the queue connection."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import connexion
from connexion.exceptions import ProblemException
from connexion.middleware import MiddlewarePosition
from connexion.validators import JSONResponseBodyValidator
from starlette.exceptions import HTTPException

from api_server import handlers, problems
from api_server.backends import open_backends
from api_server.body_limit import BodyLimit
from api_server.guard import Guard
from api_server.memory_status import MemoryStatus
from api_server.resolver import HandlerResolver
from bob_common.config import ApiSettings

SPEC = "openapi.yaml"


def create_app(settings: ApiSettings) -> connexion.AsyncApp:
    @contextlib.asynccontextmanager
    async def lifespan(_app) -> AsyncIterator[dict]:
        async with open_backends(settings) as backends:
            yield {"backends": backends}

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
    )
    # Added first, so it runs first of the API's middlewares (each one added at a
    # position goes after those added before): a refused request reaches nothing else.
    app.add_middleware(Guard, MiddlewarePosition.BEFORE_EXCEPTION, settings=settings)
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
