"""System errors, Prometheus metrics and CCTray: what watches the cluster reads."""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET

from connexion import request
from connexion.lifecycle import ConnexionResponse
from google.protobuf import empty_pb2
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from api_server import backends, convert
from api_server.handlers import pipeline
from api_server.problems import unavailable
from bob_common import runner_types, topology
from bob_common.broker_link import QueueUnavailable
from bob_common.run_states import ACTIVE
from bob_pb import entities_pb2, messages_pb2

# CCTray knows Success, Failure, Exception and Unknown.
CCTRAY_STATUS = {
    messages_pb2.PASSED: "Success",
    messages_pb2.FAILED: "Failure",
    messages_pb2.STOPPED: "Unknown",
}


# What GET /error answers when the queue is empty, as Bob does.
NO_MORE_ERRORS = "No more errors"

# Bob's gauges of runs: one per status it has, counting runs in that status.
BOB_RUN_GAUGES = {
    "bob_running_jobs": "running",
    "bob_initializing_jobs": "initializing",
    "bob_passed_jobs": "passed",
    "bob_failed_jobs": "failed",
    "bob_stopped_jobs": "stopped",
}


async def get_error():
    try:
        text = await backends.current().publisher.pop_error()
    except QueueUnavailable as exc:
        raise unavailable(f"Queue unavailable: {exc}") from exc
    return {"message": text or NO_MORE_ERRORS}, 200


class _Snapshot:
    """A one-shot collector: the figures gathered for one scrape."""

    def __init__(
        self,
        stats: entities_pb2.Stats,
        runners,
        queued: dict[str, int],
        depths: dict[str, int],
    ) -> None:
        self._stats = stats
        self._runners = runners
        self._queued = queued
        self._depths = depths

    def _bob_gauges(self):
        """Bob's own gauges, under Bob's names, for dashboards made for Bob."""
        yield GaugeMetricFamily(
            "bob_queued_jobs", "Jobs waiting in the queues", value=sum(self._queued.values())
        )
        yield GaugeMetricFamily(
            "bob_queued_entities",
            "Run events waiting for entities",
            value=self._depths.get(topology.ENTITIES_EVENTS_QUEUE, 0),
        )
        yield GaugeMetricFamily(
            "bob_errors",
            "System errors waiting in bob.errors",
            value=self._depths.get(topology.ERRORS_QUEUE, 0),
        )
        for metric, status in BOB_RUN_GAUGES.items():
            count = self._stats.runs_by_status.get(status, 0)
            yield GaugeMetricFamily(metric, f"Runs {status}", value=count)

    def collect(self):
        yield from self._bob_gauges()
        runs = GaugeMetricFamily("bob_runs", "Runs by status", labels=["status"])
        for status in messages_pb2.RunStatus.keys()[1:]:
            runs.add_metric([status.lower()], self._stats.runs_by_status.get(status.lower(), 0))
        yield runs
        yield GaugeMetricFamily("bob_pipelines", "Pipelines", value=self._stats.pipelines)
        yield GaugeMetricFamily("bob_log_lines", "Log lines stored", value=self._stats.log_lines)
        yield CounterMetricFamily(
            "bob_events_applied",
            "Run events applied by entities since it started",
            value=self._stats.events_applied,
        )
        yield CounterMetricFamily(
            "bob_events_refused",
            "Run events entities refused since it started: not signed by the run's claim, "
            "or out of sequence for too long",
            value=self._stats.events_refused,
        )
        # Issue 11 (sched): schedules and run notifications, since entities started.
        for name, text, value in (
            ("bob_schedule_runs_started", "Runs started by schedules", "schedule_runs_started"),
            (
                "bob_schedule_ticks_skipped",
                "Schedule ticks that started no run (missed, paused, refused)",
                "schedule_ticks_skipped",
            ),
            (
                "bob_notifications_delivered",
                "Run notifications a notifier accepted",
                "notifications_delivered",
            ),
            (
                "bob_notification_failures",
                "Deliveries of run notifications that failed (each is retried)",
                "notification_failures",
            ),
            (
                "bob_notifications_dropped",
                "Run notifications given up after BOB_NOTIFY_GIVE_UP_S",
                "notifications_dropped",
            ),
        ):
            yield CounterMetricFamily(name, text, value=getattr(self._stats, value))
        queued = GaugeMetricFamily(
            "bob_queued_jobs_by_type",
            "Jobs waiting in the queue, by runner type",
            labels=["runner_type"],
        )
        for runner_type, depth in sorted(self._queued.items()):
            queued.add_metric([runner_type], depth)
        yield queued
        runners = GaugeMetricFamily(
            "bob_runners", "Runners seen, by runner type", labels=["runner_type"]
        )
        by_type: dict[str, int] = {}
        for runner in self._runners:
            by_type[runner.runner_type] = by_type.get(runner.runner_type, 0) + 1
        for runner_type, count in sorted(by_type.items()):
            runners.add_metric([runner_type], count)
        yield runners


async def get_metrics():
    b = backends.current()
    stats, runners = await asyncio.gather(
        b.call(b.entities.GetStats(empty_pb2.Empty())),
        b.call(b.entities.ListRunners(empty_pb2.Empty())),
    )
    types = {r.runner_type for r in runners.runners} | {runner_types.DEFAULT}
    try:
        queued = await b.publisher.queued_jobs(types)
        depths = await b.publisher.queue_depths(
            {topology.ENTITIES_EVENTS_QUEUE, topology.ERRORS_QUEUE}
        )
    except QueueUnavailable as exc:
        raise unavailable(f"Queue unavailable: {exc}") from exc
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(stats, list(runners.runners), queued, depths))
    return ConnexionResponse(
        status_code=200, body=generate_latest(registry), content_type=CONTENT_TYPE_LATEST
    )


def _project(stored: entities_pb2.StoredPipeline, base_url: str) -> ET.Element:
    run = stored.last_run if stored.HasField("last_run") else None
    when = run and (run.completed_at_ms or run.started_at_ms or run.created_at_ms)
    return ET.Element(
        "Project",
        {
            "name": f"{stored.group}:{stored.name}",
            "activity": "Building" if run and run.status in ACTIVE else "Sleeping",
            "lastBuildStatus": CCTRAY_STATUS.get(run.status, "Unknown") if run else "Unknown",
            "lastBuildLabel": run.id if run else "",
            "lastBuildTime": (convert.timestamp(when) or "") if run else "",
            "webUrl": f"{base_url}/pipelines/groups/{stored.group}/names/{stored.name}/runs",
        },
    )


async def cc_tray(limit: int | None = None, cursor: str | None = None):
    found, headers = await pipeline.list_page(limit=limit, cursor=cursor, summary=True)
    base_url = str(request.base_url).rstrip("/")
    root = ET.Element("Projects")
    root.extend(_project(p, base_url) for p in found)
    body = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return ConnexionResponse(
        status_code=200, body=body, content_type="application/xml", headers=headers
    )
