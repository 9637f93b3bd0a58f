"""The API's own document, and who the caller is."""

from __future__ import annotations

from pathlib import Path

from connexion import request
from connexion.lifecycle import ConnexionResponse

from api_server import backends
from bob_common.config import AUTH_NONE
from bob_common.roles import Role

SPEC_PATH = Path(__file__).resolve().parent.parent / "openapi.yaml"
_SPEC = SPEC_PATH.read_text(encoding="utf-8")
# The caller without a token (auth.holder_info).
ANONYMOUS = "anonymous"


async def get_api_spec() -> ConnexionResponse:
    return ConnexionResponse(status_code=200, body=_SPEC, content_type="application/yaml")


async def who_am_i():
    """The caller as the token check saw it (auth.holder_info). Without a token the caller
    is anonymous: as admin under BOB_API_AUTH=none, which lets every request through; as
    read otherwise (an operator opened this path with BOB_API_OPEN_PATHS)."""
    info = request.context.get("token_info") or {}
    name = info.get("sub", ANONYMOUS)
    if name == ANONYMOUS or "role" not in info:
        anonymous_role = Role.ADMIN if backends.current().settings.auth == AUTH_NONE else Role.READ
        return {"message": {"name": ANONYMOUS, "role": anonymous_role.label}}, 200
    return {"message": {"name": name, "role": info["role"]}}, 200
