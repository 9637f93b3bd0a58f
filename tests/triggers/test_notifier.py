"""Run notifications against the running cluster: the reference notifier (started with
the other reference plugins) receives one document per ended run, with its status; one
that is down when a run ends receives it once it is back (from entities' outbox)."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest

from tests.e2e.runner_cluster import Bob, runner_cluster
from tests.waiting import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

IMAGE = "bob-test/busybox:latest"
GROUP = "notify"
# Retries at most this far apart, so that a notifier back up is found again soon.
ENV = {
    "BOB_SWEEP_S": "0.5",
    "BOB_HEARTBEAT_S": "0.5",
    "BOB_NOTIFY_RETRY_MAX_S": "2",
}


@pytest.fixture(scope="module")
def bob(rabbitmq_available, docker_client, tmp_path_factory):
    runner = {"BOB_RUNNER_ID": f"notify-{uuid.uuid4().hex[:8]}"}
    tmp = tmp_path_factory.mktemp("notify")
    with runner_cluster(tmp, [runner], plugins=True, env=ENV) as b:
        url = b.cluster.plugin_urls["notifier-local"]
        r = b.http.post("/notifiers", json={"name": "notifier-local", "url": url})
        assert r.status_code == 202, r.text
        yield b


def _received(bob: Bob) -> list[dict]:
    url = bob.cluster.plugin_urls["notifier-local"] + "/bob_notification"
    try:
        r = httpx.get(url, timeout=10)
    except httpx.HTTPError:
        return []
    assert r.status_code == 200, r.text
    return r.json()["message"]


def _of(bob: Bob, run_id: str) -> list[dict]:
    return [d for d in _received(bob) if d["run_id"] == run_id]


def _metric(bob: Bob, name: str) -> float:
    text = bob.http.get("/metrics").text
    values = [line.split()[-1] for line in text.splitlines() if line.startswith(name + " ")]
    return float(values[0]) if values else 0.0


def _pipeline(bob: Bob, name: str, cmd: str) -> None:
    bob.create_pipeline(GROUP, name, {"image": IMAGE, "steps": [{"cmd": cmd}]})


def test_each_ended_run_is_notified_once_with_its_status(bob):
    runs = {}
    for status, cmd in (("passed", "echo fine"), ("failed", "exit 3"), ("stopped", "sleep 120")):
        name = f"{status}-{uuid.uuid4().hex[:6]}"
        _pipeline(bob, name, cmd)
        runs[status] = (name, bob.start(GROUP, name))
    stopped = runs["stopped"][1]
    bob.wait_status(stopped, "running")
    r = bob.http.post(f"/pipelines/stop/runs/{stopped}")
    assert r.status_code == 202, r.text
    for _, run_id in runs.values():
        bob.wait_terminal(run_id)

    for status, (name, run_id) in runs.items():
        (document,) = wait_until(
            lambda run_id=run_id: _of(bob, run_id),
            timeout=30,
            what=f"the notification of run {run_id}",
            describe=bob.logs_tail,
        )
        assert document["status"] == status
        assert document["pipeline"] == {"group": GROUP, "name": name}
        assert document["created_at"] and document["completed_at"]
        assert "schedule" not in document
        if status == "failed":
            assert "3" in document["reason"], document  # the step's exit code
    # Nothing sent twice once delivered: a later run's notification comes alone.
    name = f"later-{uuid.uuid4().hex[:6]}"
    _pipeline(bob, name, "true")
    later = bob.start(GROUP, name)
    bob.wait_terminal(later)
    wait_until(lambda: _of(bob, later), timeout=30, what="the later run's notification")
    seen = [d["run_id"] for d in _received(bob)]
    assert all(seen.count(run_id) == 1 for _, run_id in runs.values()), seen


def test_a_notifier_down_when_a_run_ends_receives_it_once_back(bob):
    name = f"while-down-{uuid.uuid4().hex[:6]}"
    _pipeline(bob, name, "echo fine")
    notifier = next(s for s in bob.cluster.plugins if s.name == "notifier")
    failures_before = _metric(bob, "bob_notification_failures_total")

    notifier.signal(15)
    notifier.wait(15)
    run_id = bob.start(GROUP, name)
    assert bob.wait_terminal(run_id) == "passed"
    # Entities tried and failed (counted), and keeps it owed.
    wait_until(
        lambda: _metric(bob, "bob_notification_failures_total") >= failures_before + 2,
        timeout=30,
        what="deliveries to the stopped notifier to fail",
        describe=bob.logs_tail,
    )
    back_at = time.monotonic()
    bob.cluster.start_service(notifier)

    (document,) = wait_until(
        lambda: _of(bob, run_id),
        timeout=30,
        what="the notification once the notifier is back",
        describe=bob.logs_tail,
    )
    assert document["status"] == "passed"
    print(
        f"triggers[notifier]: delivered {time.monotonic() - back_at:.1f} s after the notifier "
        f"came back, after {_metric(bob, 'bob_notification_failures_total') - failures_before:.0f}"
        " failed deliveries"
    )
