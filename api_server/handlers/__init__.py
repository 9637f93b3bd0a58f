"""Handlers, one function per operationId (snake_case): parse, call, translate, return."""

from api_server.handlers import (
    api,
    artifacts,
    cluster,
    events,
    logs,
    observability,
    pipeline,
    plugins,
    runs,
    schedules,
    secrets,
    tokens,
    webhooks,
)

MODULES = [
    api,
    artifacts,
    cluster,
    events,
    logs,
    observability,
    pipeline,
    plugins,
    runs,
    schedules,
    secrets,
    tokens,
    webhooks,
]
