"""Schedules against the running cluster, on real per-minute ticks (no clock is made to
go faster): each tick starts exactly one run, with entities killed across a tick and with
two entities processes on one database; a tick missed beyond the catch-up window starts
nothing; a bad expression or zone is 400 naming it."""

from __future__ import annotations

import time
import uuid
from datetime import datetime

import pytest

from devcluster.cluster import Service, free_port
from tests.e2e.runner_cluster import Bob, run_detail, runner_cluster
from tests.waiting import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]

IMAGE = "bob-test/busybox:latest"
GROUP = "sched"
EVERY_MINUTE = [{"cron": "* * * * *", "timezone": "Europe/Berlin"}]
FAST = {"BOB_SWEEP_S": "0.5", "BOB_HEARTBEAT_S": "0.5", "BOB_LEASE_S": "5"}
# Entities goes down this long before a tick and comes back this long after it.
BEFORE_S, AFTER_S = 6.0, 6.0


@pytest.fixture(scope="module")
def bob(rabbitmq_available, docker_client, tmp_path_factory):
    runner = {"BOB_RUNNER_ID": f"sched-{uuid.uuid4().hex[:8]}"}
    with runner_cluster(tmp_path_factory.mktemp("sched"), [runner], env=FAST) as b:
        yield b


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def _schedules(bob: Bob, name: str) -> list[dict]:
    r = bob.http.get(f"/pipelines/groups/{GROUP}/names/{name}/schedules")
    assert r.status_code == 200, r.text
    return r.json()["message"]


def _scheduled_runs(bob: Bob, name: str) -> dict[str, list[str]]:
    """Tick -> the runs started for it."""
    r = bob.http.get(f"/pipelines/groups/{GROUP}/names/{name}/runs")
    assert r.status_code == 200, r.text
    found: dict[str, list[str]] = {}
    for run in r.json()["message"]:
        detail = run_detail(bob, GROUP, name, run["run-id"])
        assert detail["scheduled-by"]["cron"] == "* * * * *", detail
        found.setdefault(detail["scheduled-by"]["tick"], []).append(run["run-id"])
    return found


def _wait_ticks(bob: Bob, name: str, count: int, timeout: float) -> dict[str, list[str]]:
    return wait_until(
        lambda: (runs := _scheduled_runs(bob, name)) and len(runs) >= count and runs,
        timeout=timeout,
        interval=1.0,
        what=f"runs of {count} ticks",
        describe=bob.logs_tail,
    )


def _sleep_until(at: float) -> None:
    """The fault's timing (entities down across a tick), not a wait on a condition."""
    time.sleep(max(0.0, at - time.time()))


def _next_tick(bob: Bob, name: str) -> float:
    (schedule,) = _schedules(bob, name)
    return _epoch(schedule["next"])


def _down_across_next_tick(bob: Bob, name: str, env: dict[str, str] | None = None) -> float:
    """Kills entities BEFORE_S before the schedule's next tick (the one after that when it
    is too close), starts it again AFTER_S after the tick; the tick."""
    tick = _next_tick(bob, name)
    if tick - time.time() < BEFORE_S + 2:
        _wait_ticks(bob, name, len(_scheduled_runs(bob, name)) + 1, 90)
        tick = _next_tick(bob, name)
    _sleep_until(tick - BEFORE_S)
    entities = bob.cluster.entities
    entities.kill()
    entities.env.update(env or {})
    _sleep_until(tick + AFTER_S)
    bob.cluster.start_service(entities)
    bob.cluster.wait_healthy(60)
    return tick


def test_a_minute_schedule_starts_one_run_per_tick_across_a_restart_and_with_two_entities(
    bob,
):
    name = f"every-minute-{uuid.uuid4().hex[:6]}"
    body = {"image": IMAGE, "steps": [{"cmd": "echo tick"}], "schedules": EVERY_MINUTE}
    bob.create_pipeline(GROUP, name, body)
    began = time.monotonic()

    # The pipeline reads back as posted; the next tick is in the schedules view.
    r = bob.http.get(f"/pipelines/groups/{GROUP}/names/{name}")
    assert r.json()["message"] == {**body, "group": GROUP, "name": name}
    (schedule,) = _schedules(bob, name)
    assert schedule["timezone"] == "Europe/Berlin" and schedule["last-tick"] is None
    assert 0 < _epoch(schedule["next"]) - time.time() <= 61

    # Tick 1 as usual; tick 2 while entities is down (killed before it, back after it):
    # started once on its return.
    _wait_ticks(bob, name, 1, 90)
    missed = _down_across_next_tick(bob, name)
    runs = _wait_ticks(bob, name, 2, 60)
    assert any(_epoch(tick) == missed for tick in runs), runs

    # Tick 3 with a second entities process on the same database file.
    second = Service(
        "entities-2",
        "entities_svc",
        {**bob.cluster.entities.env, "BOB_ENTITIES_LISTEN": f"127.0.0.1:{free_port()}"},
    )
    bob.cluster.start_service(second)
    try:
        wait_until(
            lambda: any("serving bob.v1.Entities" in line for line in second.lines),
            timeout=30,
            what="the second entities process to serve",
            describe=bob.logs_tail,
        )
        assert second.alive, "\n".join(second.lines[-30:])
        runs = _wait_ticks(bob, name, 3, 90)
        # A little past the tick, so that a late second start would be seen.
        _sleep_until(max(_epoch(t) for t in runs) + 5)
        runs = _scheduled_runs(bob, name)
    finally:
        second.signal(15)
        second.wait(15)

    ticks = sorted(_epoch(t) for t in runs)
    assert all(len(ids) == 1 for ids in runs.values()), runs  # one run per tick
    assert [b - a for a, b in zip(ticks, ticks[1:], strict=False)] == [60.0] * (len(ticks) - 1)
    # (Their statuses are not awaited here: each entities process knows only its own
    # journal appends, so the API's status reads lag behind the other's; see README.)
    claimed = [line for line in second.lines if "started run" in line]
    print(
        f"triggers[schedules]: {len(ticks)} ticks, one run each, entities down across one "
        f"and a second entities process on the same file for the last (it started "
        f"{len(claimed)} of them), in {time.monotonic() - began:.0f} s"
    )
    r = bob.http.delete(f"/pipelines/groups/{GROUP}/names/{name}")
    assert r.status_code == 202, r.text


def test_a_tick_missed_for_longer_than_the_catch_up_window_starts_nothing(bob):
    name = f"missed-{uuid.uuid4().hex[:6]}"
    body = {"image": IMAGE, "steps": [{"cmd": "echo tick"}], "schedules": EVERY_MINUTE}
    bob.create_pipeline(GROUP, name, body)
    catchup = bob.cluster.entities.env.get("BOB_SCHEDULE_CATCHUP_S")

    # Entities back AFTER_S after the tick, with a window shorter than that.
    tick = _down_across_next_tick(bob, name, {"BOB_SCHEDULE_CATCHUP_S": str(AFTER_S / 3)})
    try:
        schedule = wait_until(
            lambda: (s := _schedules(bob, name)[0])["last-tick"] and s,
            timeout=30,
            what="the missed tick to be claimed",
            describe=bob.logs_tail,
        )
        assert _epoch(schedule["last-tick"]) == tick
        assert schedule["last-outcome"].startswith("skipped: missed by"), schedule
        assert schedule["last-run-id"] == "" and _epoch(schedule["next"]) == tick + 60
        assert _scheduled_runs(bob, name) == {}
        print(
            f"triggers[schedules]: entities back {AFTER_S:.0f} s after a tick: "
            + schedule["last-outcome"]
        )
    finally:
        if catchup is None:
            bob.cluster.entities.env.pop("BOB_SCHEDULE_CATCHUP_S", None)
        bob.http.delete(f"/pipelines/groups/{GROUP}/names/{name}")


@pytest.mark.parametrize(
    ("schedule", "says"),
    [
        ({"cron": "61 * * * *"}, "Schedule 1: cron expression '61 * * * *' is not valid"),
        ({"cron": "* * * *"}, "Schedule 1: cron expression '* * * *' must have 5 fields"),
        (
            {"cron": "@daily", "timezone": "Europe/Atlantis"},
            "Schedule 1: time zone 'Europe/Atlantis' is not an IANA time zone name",
        ),
    ],
)
def test_a_bad_cron_expression_or_zone_is_400_naming_it(bob, schedule, says):
    name = f"bad-{uuid.uuid4().hex[:6]}"
    body = {"image": IMAGE, "steps": [{"cmd": "true"}], "schedules": [schedule]}
    r = bob.http.post(f"/pipelines/groups/{GROUP}/names/{name}", json=body)
    assert r.status_code == 400, r.text
    assert says in r.json()["message"], r.text
    assert bob.http.get(f"/pipelines/groups/{GROUP}/names/{name}").status_code == 404
