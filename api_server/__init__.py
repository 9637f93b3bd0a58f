"""The REST API server: implements api_server/openapi.yaml (Bob's REST API)."""

import warnings

# Connexion imports starlette's test client, whose import warns about httpx on every
# start of the server; nothing here uses that client.
warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
