"""Entities' one connection to the broker, a BrokerLink: the jobs (job_queue.py) and
controls (controls.py) are published with confirms on its channel, the dead-job consumer
(dead_jobs.py) takes that channel too, and the run-event consumer (events.py) opens a
channel of its own on its connection. service.py makes it, starts it first among them and
closes it last."""

from __future__ import annotations

import socket

from bob_common.broker_link import BrokerLink
from bob_common.config import CommonSettings

# Of the gRPC deadline, what a publish may take: CreateRun must answer before its caller
# gives up on it.
PUBLISH_SHARE = 0.75


def link(settings: CommonSettings) -> BrokerLink:
    return BrokerLink(
        settings.queue_url,
        f"entities-{socket.gethostname()}",
        settings.grpc_timeout_s * PUBLISH_SHARE,
    )
