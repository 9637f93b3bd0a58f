"""The API's own document."""

from __future__ import annotations

from pathlib import Path

from connexion.lifecycle import ConnexionResponse

SPEC_PATH = Path(__file__).resolve().parent.parent / "openapi.yaml"
_SPEC = SPEC_PATH.read_text(encoding="utf-8")


async def get_api_spec() -> ConnexionResponse:
    return ConnexionResponse(status_code=200, body=_SPEC, content_type="application/yaml")
