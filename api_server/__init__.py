"""The REST API server: implements api_server/openapi.yaml (Bob's REST API)."""
