"""The API's hottest read, GET /pipelines/status/runs/{run-id}, answered in front of
Connexion when the run's status is held in memory (run_statuses.py): routing, parameter
validation and the handler's decorators cost several times what the answer does.

Only a request that Connexion would answer the same way is answered here: a GET without
query, body or content type, of a run id its path parameter's schema accepts, whose
status is current in memory; the answer is the handler's, byte for byte. Anything else,
and a run not known, goes on to Connexion (and the handler asks entities).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from connexion.spec import Specification

from api_server.asgi import App, Receive, Scope, Send, send_json
from bob_common.run_states import status_name

PATH = "/pipelines/status/runs/{run-id}"
_PREFIX = PATH.removesuffix("{run-id}")
# Headers that make a request one with a body: Connexion would look at it.
_BODY_HEADERS = frozenset({b"content-length", b"transfer-encoding", b"content-type"})


def run_id_pattern(spec: Path) -> re.Pattern[str] | None:
    """The pattern the specification gives the path's run id, read as Connexion reads it;
    None when its paths are under a base path, which this does not know of."""
    loaded = Specification.load(spec)
    if loaded.base_path not in ("", "/"):
        return None
    [parameter] = loaded["paths"][PATH]["get"]["parameters"]
    return re.compile(parameter["schema"]["pattern"])


def answer_body(status: int) -> bytes:
    """The JSON body of the handler's answer, as Connexion's jsonifier writes it."""
    return (json.dumps({"message": status_name(status)}) + "\n").encode()


class MemoryStatus:
    def __init__(self, app: App, spec: Path):
        self.app = app
        self._run_id = run_id_pattern(spec)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        status = self.known_status(scope)
        if status is None:
            return await self.app(scope, receive, send)
        await send_json(send, 200, answer_body(status))

    def known_status(self, scope: Scope) -> int | None:
        """The status to answer with here; None to let Connexion answer."""
        if self._run_id is None or scope["type"] != "http":
            return None
        if scope["method"] != "GET" or scope.get("query_string"):
            return None
        path: str = scope["path"]
        if scope.get("root_path") or not path.startswith(_PREFIX):
            return None
        run_id = path[len(_PREFIX) :]
        # jsonschema checks a pattern with re.search, as here.
        if not run_id or "/" in run_id or not self._run_id.search(run_id):
            return None
        if any(name.lower() in _BODY_HEADERS for name, _ in scope["headers"]):
            return None
        backends = (scope.get("state") or {}).get("backends")
        return None if backends is None else backends.statuses.status(run_id)
