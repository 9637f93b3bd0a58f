"""Which role each request needs, read once from openapi.yaml's `x-bob-role`s.

The document is the one place an operation's role is written; this builds, at start-up,
one regular expression per HTTP method whose alternatives are the document's path
templates, so that a request's role is a single match on the hot path. A request that
matches no operation (an unknown path or method) needs `read`: Connexion answers it 404
or 405, and only to a caller with a token.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bob_common import roles
from bob_common.roles import Role

METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
EXTENSION = "x-bob-role"
# What the document serves besides its operations: Connexion's copy of the document and
# its Swagger UI, open like GET /api.yaml (the same document, which holds no data).
DOCUMENT_PREFIXES = ("/openapi.json", "/ui")

# A needed role, or None for an operation that needs no token.
Needed = Role | None


class SpecError(ValueError):
    """The document names no role, or an unknown one, for an operation; the API does not
    start."""


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    operation_id: str
    needs: Needed


def operations(spec: Mapping[str, Any]) -> list[Operation]:
    """Every operation of the document with the role it needs; SpecError when one
    declares none or an unknown one."""
    found = []
    for path, item in spec["paths"].items():
        for method in METHODS:
            op = item.get(method)
            if op is None:
                continue
            declared = op.get(EXTENSION)
            where = f"{method.upper()} {path} ({op.get('operationId')})"
            if declared is None:
                raise SpecError(f"{where} declares no {EXTENSION}")
            try:
                needs = None if declared == roles.OPEN else roles.parse(declared)
            except ValueError as exc:
                raise SpecError(f"{where}: {EXTENSION}: {exc}") from None
            found.append(Operation(method.upper(), path, op.get("operationId", ""), needs))
    return found


def load(spec_path: Path) -> dict[str, Any]:
    with spec_path.open() as f:
        loaded: dict[str, Any] = yaml.safe_load(f)
    return loaded


def _template(path: str) -> str:
    """A path template as a regular expression: each {param} one segment, as Starlette
    routes it."""
    parts = re.split(r"(\{[^}]+\})", path)
    return "".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts)


class OperationRoles:
    """The role each request needs. `open_paths`: paths of the document whose `read`
    operations need no token (BOB_API_OPEN_PATHS); SpecError for one the document does
    not have."""

    def __init__(self, ops: Iterable[Operation], open_paths: Iterable[str] = ()) -> None:
        ops = list(ops)
        known = {op.path for op in ops}
        unknown = sorted(set(open_paths) - known)
        if unknown:
            raise SpecError(f"BOB_API_OPEN_PATHS names paths the API does not have: {unknown}")
        opened = set(open_paths)
        self._needs: dict[str, list[Needed]] = {}
        self._patterns: dict[str, re.Pattern[str]] = {}
        by_method: dict[str, list[Operation]] = {}
        for op in ops:
            by_method.setdefault(op.method, []).append(op)
        for method, group in by_method.items():
            # Literal segments first: a literal beats a parameter where both would match.
            group.sort(key=lambda op: -len(re.sub(r"\{[^}]+\}", "", op.path)))
            self._needs[method] = [
                None if op.path in opened and op.needs == Role.READ else op.needs for op in group
            ]
            alternatives = "|".join(f"(?P<o{i}>{_template(op.path)})" for i, op in enumerate(group))
            self._patterns[method] = re.compile(f"(?:{alternatives})")
        # HEAD is served by the GET routes.
        if "GET" in self._patterns and "HEAD" not in self._patterns:
            self._patterns["HEAD"], self._needs["HEAD"] = self._patterns["GET"], self._needs["GET"]

    def needed(self, method: str, path: str) -> Needed:
        """The role a request needs; None when it needs no token."""
        pattern = self._patterns.get(method)
        if pattern is not None:
            match = pattern.fullmatch(path)
            if match is not None and match.lastgroup is not None:
                return self._needs[method][int(match.lastgroup[1:])]
        if method in ("GET", "HEAD") and path.startswith(DOCUMENT_PREFIXES):
            return None
        return Role.READ

    @classmethod
    def from_spec(cls, spec_path: Path, open_paths: Iterable[str] = ()) -> OperationRoles:
        return cls(operations(load(spec_path)), open_paths)
