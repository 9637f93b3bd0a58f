"""Connections on the shared broker, as a test sees them through rabbitmqctl."""

from __future__ import annotations

import asyncio
import subprocess


async def drop_connection(rabbit_url: str, name: str) -> None:
    """Has the broker close the connection named `name` on the test's vhost (as when the
    network fails), which a robust connection then re-establishes."""
    vhost = rabbit_url.rsplit("/", 1)[1]
    # The plain listing, whose pids close_connection takes (the JSON one's it does not).
    listed = await asyncio.to_thread(
        subprocess.run,
        ["rabbitmqctl", "-q", "list_connections", "pid", "vhost", "client_properties"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    [pid] = [
        row.split("\t")[0]
        for row in listed.stdout.splitlines()
        if row.split("\t")[1:2] == [vhost] and f'"{name}"' in row
    ]
    await asyncio.to_thread(
        subprocess.run,
        ["rabbitmqctl", "-q", "close_connection", pid, "test: network down"],
        capture_output=True,
        timeout=60,
        check=True,
    )
