"""Bob's current API beside its older one, on the running cluster: bodies read back as
posted, plugins named in the body, loggers, stop by run id, the plain and followed log,
the event stream, and Bob's shapes of runs, metrics, errors and cluster info."""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest

from tests.plugins.processes import logger as logger_process
from tests.waiting import wait_until

pytestmark = pytest.mark.e2e
IMAGE = "bob-test/busybox:latest"
QUICK = {"image": IMAGE, "steps": [{"cmd": "echo quick"}]}


def _read_pipeline(bob, group, name) -> dict:
    r = bob.http.get("/pipelines", params={"group": group, "name": name})
    assert r.status_code == 200, r.text
    found = r.json()["message"]
    assert len(found) == 1, found
    return found[0]


# Pipelines as posted


def test_a_pipeline_posted_with_its_group_and_name_reads_back_exactly_as_posted(bob, unique):
    # Given Bob's current create, with YAML-ish values and empty collections
    posted = {
        "group": "dev",
        "name": unique,
        "image": IMAGE,
        "vars": {"PORT": 8080, "DEBUG": True},
        "resources": [],
        "steps": [{"cmd": "echo $PORT $DEBUG", "needs_resource": "", "vars": {}}],
        "quotas": {"limits": {"cpu": 0.5, "mem": "64Mi"}, "requests": {"mem": "16Mi"}},
    }

    r = bob.http.post("/pipelines", json=posted)

    # Then it reads back exactly as sent: no paused: false, nothing dropped or added
    assert r.status_code == 202, r.text
    assert _read_pipeline(bob, "dev", unique) == posted
    # And it runs with the values in their string form
    run_id = bob.start("dev", unique)
    assert bob.wait_terminal(run_id) == "passed", bob.log_lines(run_id)
    assert "8080 true" in bob.log_lines(run_id)


def test_paused_shows_only_while_a_pipeline_is_paused(bob, unique):
    bob.create_pipeline("dev", unique, QUICK)
    bob.http.post(f"/pipelines/pause/groups/dev/names/{unique}")
    assert _read_pipeline(bob, "dev", unique)["paused"] is True
    bob.http.post(f"/pipelines/unpause/groups/dev/names/{unique}")
    assert "paused" not in _read_pipeline(bob, "dev", unique)


def test_the_older_path_refuses_a_body_whose_group_contradicts_it(bob, unique):
    r = bob.http.post(f"/pipelines/groups/dev/names/{unique}", json={**QUICK, "group": "ops"})
    assert r.status_code == 400 and "contradicts" in r.json()["message"]


def test_a_pipeline_may_name_plugins_registered_later_and_cannot_start_until_they_are(bob, unique):
    # Given a pipeline naming a provider and a store that do not exist yet (Bob accepts it)
    body = {
        "group": "dev",
        "name": unique,
        "image": IMAGE,
        "resources": [
            {"name": "src", "type": "external", "provider": f"{unique}-git", "params": {}}
        ],
        "steps": [
            {
                "cmd": "ls",
                "needs_resource": "src",
                "produces_artifact": {"name": "a", "path": ".", "store": f"{unique}-store"},
            }
        ],
    }
    assert bob.http.post("/pipelines", json=body).status_code == 202

    # When it is started, the start is refused naming what is missing, and nothing runs
    refused = bob.http.post(f"/pipelines/start/groups/dev/names/{unique}")
    assert refused.status_code == 422
    assert f"'{unique}-git'" in refused.json()["message"]
    assert bob.http.get(f"/pipelines/groups/dev/names/{unique}/runs").json()["message"] == []

    # And once the provider is there, the missing store is what it names
    bob.http.post(
        "/resource-providers", json={"name": f"{unique}-git", "url": "http://127.0.0.1:9"}
    )
    refused = bob.http.post(f"/pipelines/start/groups/dev/names/{unique}")
    assert refused.status_code == 422 and f"'{unique}-store'" in refused.json()["message"]
    bob.http.delete(f"/resource-providers/{unique}-git")


def test_runner_type_container_is_bobs_name_for_the_docker_runner(bob, unique):
    bob.create_pipeline("dev", unique, QUICK)
    run_id = bob.start("dev", unique, json={"runner/type": "container"})
    assert bob.wait_terminal(run_id) == "passed"


# Plugins named in the body, and loggers


@pytest.mark.parametrize("kind", ["resource-providers", "artifact-stores", "loggers"])
def test_plugins_are_created_by_body_filtered_by_name_and_deleted(bob, unique, kind):
    url = "http://127.0.0.1:9/plugin"
    assert bob.http.post(f"/{kind}", json={"name": unique, "url": url}).status_code == 202

    named = bob.http.get(f"/{kind}", params={"name": unique}).json()["message"]
    other = bob.http.get(f"/{kind}", params={"name": f"{unique}-no"}).json()["message"]

    assert named == [{"name": unique, "url": url}]
    assert other == []
    assert bob.http.delete(f"/{kind}/{unique}").status_code == 202
    assert bob.http.get(f"/{kind}", params={"name": unique}).json()["message"] == []


def test_a_start_with_an_unregistered_logger_is_422_naming_it(bob, unique):
    bob.create_pipeline("dev", unique, QUICK)
    r = bob.http.post(f"/pipelines/start/groups/dev/names/{unique}/loggers/{unique}-log")
    assert r.status_code == 422 and f"'{unique}-log'" in r.json()["message"]


def test_a_run_started_with_a_logger_sends_it_a_copy_of_its_log(bob, unique, tmp_path):
    steps = [{"cmd": "echo one"}, {"cmd": "echo two"}]
    with logger_process(tmp_path, tmp_path / "logs") as logger_url:
        # Given a registered logger (Bob's reference logger contract)
        bob.http.post("/loggers", json={"name": unique, "url": logger_url})
        bob.create_pipeline("dev", unique, {"image": IMAGE, "steps": steps})

        # When a run is started with it
        r = bob.http.post(f"/pipelines/start/groups/dev/names/{unique}/loggers/{unique}")

        # Then the run records it, and the logger holds the run's log as Bob keeps it
        assert r.status_code == 202, r.text
        run_id = r.json()["message"]
        assert bob.wait_terminal(run_id) == "passed"
        detail = bob.http.get(f"/pipelines/groups/dev/names/{unique}/runs/{run_id}").json()
        assert detail["message"]["logger"] == unique
        kept = bob.http.get(f"/pipelines/logs/runs/{run_id}").text.splitlines()
        copy = wait_until(
            lambda: (
                (got := httpx.get(f"{logger_url}/bob_logs/{run_id}")).status_code == 200
                and got.text.splitlines() == kept
                and got.text
            ),
            what="the logger's copy of the whole log",
        )
        assert "one" in copy and "two" in copy
        bob.http.delete(f"/loggers/{unique}")


# Runs


def test_stop_by_run_id_stops_a_running_run(bob, unique):
    bob.create_pipeline("dev", unique, {"image": IMAGE, "steps": [{"cmd": "sleep 60"}]})
    run_id = bob.start("dev", unique)
    bob.wait_status(run_id, "running")

    r = bob.http.post(f"/pipelines/stop/runs/{run_id}")

    assert r.status_code == 202
    assert bob.wait_terminal(run_id) == "stopped"
    assert bob.http.post("/pipelines/stop/runs/r-missing").status_code == 404


def test_run_lists_carry_both_generations_of_bobs_keys(bob, unique):
    bob.create_pipeline("dev", unique, QUICK)
    run_id = bob.start("dev", unique)
    bob.wait_terminal(run_id)

    (run,) = bob.http.get(f"/pipelines/groups/dev/names/{unique}/runs").json()["message"]

    assert run["run-id"] == run["run_id"] == run_id
    for key in (
        "scheduled-at",
        "initiated-at",
        "started-at",
        "completed-at",
        "started",
        "completed",
    ):
        assert run[key], key
    assert run["started"] == run["started-at"] and run["completed"] == run["completed-at"]
    assert run["scheduled-at"] <= run["initiated-at"] <= run["started-at"] <= run["completed-at"]


# Logs


def test_logs_as_plain_text_are_the_whole_log_one_line_each(bob, unique):
    bob.create_pipeline("dev", unique, {"image": IMAGE, "steps": [{"cmd": "seq 1 4500"}]})
    run_id = bob.start("dev", unique)
    bob.wait_terminal(run_id)

    r = bob.http.get(f"/pipelines/logs/runs/{run_id}")

    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    lines = r.text.splitlines()
    assert [line for line in lines if not line.startswith("[bob]")] == [
        str(n) for n in range(1, 4501)
    ]
    assert bob.http.get("/pipelines/logs/runs/r-missing").status_code == 404


def test_a_followed_log_streams_lines_live_and_until_end_closes_with_the_run(bob, unique):
    steps = [{"cmd": "echo first; sleep 2; echo second"}]
    bob.create_pipeline("dev", unique, {"image": IMAGE, "steps": steps})
    run_id = bob.start("dev", unique)
    got: list[tuple[float, str]] = []

    # When a script follows the log until the run ends
    with httpx.stream(
        "GET",
        f"{bob.cluster.api_url}/pipelines/logs/runs/{run_id}",
        params={"follow": "true", "until-end": "true"},
        timeout=60,
    ) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            got.append((time.monotonic(), line))

    # Then it saw every line, the first before the second was printed, and the stream
    # ended by itself with the run
    texts = [line for _, line in got]
    assert "first" in texts and "second" in texts and texts[-1].startswith("[bob]")
    first_at = next(t for t, line in got if line == "first")
    second_at = next(t for t, line in got if line == "second")
    assert second_at - first_at >= 1.0
    assert bob.status(run_id) == "passed"


def test_a_followed_log_of_a_finished_run_stays_open_until_the_client_leaves(bob, unique):
    bob.create_pipeline("dev", unique, QUICK)
    run_id = bob.start("dev", unique)
    bob.wait_terminal(run_id)
    lines: list[str] = []
    ended = threading.Event()
    client = httpx.Client(timeout=httpx.Timeout(5, read=None))

    def follow():
        try:
            url = f"{bob.cluster.api_url}/pipelines/logs/runs/{run_id}"
            with client.stream("GET", url, params={"follow": "true"}) as r:
                lines.extend(r.iter_lines())
        except (httpx.HTTPError, RuntimeError):
            pass  # the test closed the client: the user left
        ended.set()

    reader = threading.Thread(target=follow, daemon=True)
    reader.start()
    wait_until(lambda: "quick" in lines, what="the log's lines")
    # As Bob's, the stream is still open well after the whole log was sent (wendy treats
    # a closed stream as an error); it closes only after BOB_API_FOLLOW_IDLE_S.
    assert not ended.wait(3)
    client.close()
    reader.join(10)


# Events


def _events(bob, *, headers=None, params=None, count: int) -> list[str]:
    lines: list[str] = []
    with httpx.stream(
        "GET", f"{bob.cluster.api_url}/events", headers=headers, params=params, timeout=30
    ) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            lines.append(line)
            if sum(1 for x in lines if x.startswith("data: ")) >= count:
                break
    return lines


def test_events_stream_in_bobs_format_that_wendy_can_read(bob, unique):
    bob.create_pipeline("dev", unique, QUICK)
    bob.wait_terminal(bob.start("dev", unique))

    lines = _events(bob, count=3)

    # wendy reads each non-empty line from its seventh byte as JSON: every non-empty line
    # must be a data line, none shorter than six bytes
    for line in lines:
        if line:
            assert line.startswith("data: "), line
            event = json.loads(line[6:])
            assert set(event) == {"at", "type", "reason", "kind", "message"}
            assert isinstance(event["at"], int) and event["at"] > 1_600_000_000_000
            assert event["type"] in ("Normal", "Warning", "Error")


def _run_events(bob, run_id: str) -> list[dict]:
    """The events of one run, read from the start of the journal until its last one
    (the stream waits for events still to come; the read timeout bounds the wait)."""
    found: list[dict] = []
    with httpx.stream("GET", f"{bob.cluster.api_url}/events", timeout=30) as r:
        for line in r.iter_lines():
            if line.startswith("data: ") and run_id in line:
                found.append(json.loads(line[6:]))
                if found[-1]["reason"] in ("PipelineSuccessful", "PipelineFailed"):
                    return found
    return found


def test_events_of_a_run_appear_and_a_stream_resumes_after_the_last_event_id(bob, unique):
    bob.create_pipeline("dev", unique, QUICK)
    run_id = bob.start("dev", unique)
    bob.wait_terminal(run_id)

    # An SSE client gets id: lines
    sse = {"Accept": "text/event-stream"}
    lines = _events(bob, headers=sse, count=2)
    ids = [int(line[4:]) for line in lines if line.startswith("id: ")]
    assert len(ids) == 2 and ids[0] < ids[1]

    # Resuming after the first id starts with the second event
    resumed = _events(bob, headers={**sse, "Last-Event-ID": str(ids[0])}, count=1)
    assert resumed[0] == f"id: {ids[1]}"

    # And this run's events are in the journal, in order, ending with its success
    reasons = [e["reason"] for e in _run_events(bob, run_id)]
    assert reasons and reasons[-1] == "PipelineSuccessful", reasons
    assert "PipelineRunning" in reasons


def test_keepalive_comments_come_only_to_clients_that_ask(bob):
    # Given a stream with nothing to send (after an id far beyond the journal's)
    params = {"keepalive": 1, "after": 10**15}
    with httpx.stream("GET", f"{bob.cluster.api_url}/events", params=params, timeout=30) as r:
        first = next(r.iter_lines())
    # Then a client that asked gets a comment, long enough for wendy's reader
    assert first.startswith(":") and len(first) >= 6


# Bob's shapes of errors, cluster info


def test_cluster_info_has_bobs_node_shape_with_our_runner_fields(bob):
    def nodes():
        return bob.http.get("/cluster/info").json()["message"]

    info = wait_until(lambda: nodes().get(bob.runner_id), what="the runner's node")

    assert info["cpu/count"] >= 1 and info["mem/total"] > info["mem/free"] > 0
    assert 0 <= info["cpu/load"]
    assert info["bob/node-type"] == "runner/docker"
    assert info["runner-id"] == bob.runner_id and info["runner-type"] == "docker"
    assert info["bob/runs"] == info["runs"]
