"""Handlers, one function per operationId (snake_case): parse, call, translate, return."""

from api_server.handlers import api, artifacts, cluster, observability, pipeline, plugins

MODULES = [api, artifacts, cluster, observability, pipeline, plugins]
