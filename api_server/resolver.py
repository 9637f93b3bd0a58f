"""Finds the handler of each operation: the function named snake_case(operationId) in one
of the handler modules. A missing or ambiguous handler stops start-up."""

from __future__ import annotations

import re
from types import ModuleType

from connexion.exceptions import ResolverError
from connexion.resolver import Resolution, Resolver


def snake_case(operation_id: str) -> str:
    """PipelineStart -> pipeline_start; an acronym stays one word: CCTray -> cc_tray."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", operation_id).lower()


class HandlerResolver(Resolver):
    def __init__(self, modules: list[ModuleType]) -> None:
        super().__init__()
        self._modules = modules

    def resolve(self, operation) -> Resolution:
        operation_id = operation.operation_id
        name = snake_case(operation_id)
        found = [m for m in self._modules if callable(getattr(m, name, None))]
        if len(found) != 1:
            where = ", ".join(m.__name__ for m in found) or "no handler module"
            raise ResolverError(f"operationId {operation_id}: {name}() found in {where}")
        return Resolution(getattr(found[0], name), operation_id)
