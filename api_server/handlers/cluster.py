"""Cluster health."""

from __future__ import annotations

from api_server import backends
from api_server.problems import unavailable

HEALTHY = "Yes we can! 🔨 🔨"


async def health_check():
    b = backends.current()
    unhealthy = []
    if not await b.entities_healthy():
        unhealthy.append("entities")
    if not b.publisher.connected:
        unhealthy.append("queue")
    if unhealthy:
        raise unavailable(f"Health check failed: {', '.join(unhealthy)} not healthy")
    return {"message": HEALTHY}, 200
