"""Handlers, one function per operationId (snake_case): parse, call, translate, return."""

from api_server.handlers import api, cluster, pipeline, plugins

MODULES = [api, cluster, pipeline, plugins]
