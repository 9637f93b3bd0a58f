"""Every endpoint of the REST API against the running cluster, including its error cases."""

from __future__ import annotations

import asyncio
import io
import tarfile
import xml.etree.ElementTree as ET

import aio_pika
import pytest

from bob_common import topology
from tests.support.http_stub import Answer, plugin_server
from tests.waiting import wait_until

pytestmark = pytest.mark.e2e
IMAGE = "bob-test/busybox:latest"
LONG = {"image": IMAGE, "steps": [{"cmd": "echo started; sleep 60"}]}
QUICK = {"image": IMAGE, "steps": [{"cmd": "echo quick"}]}


def _running(bob, run_id):
    return bob.wait_status(run_id, "running")


# Pipelines


def test_get_one_pipeline_and_404_for_an_unknown_one(bob, unique):
    bob.create_pipeline("dev", unique, QUICK)

    found = bob.http.get(f"/pipelines/groups/dev/names/{unique}")
    missing = bob.http.get(f"/pipelines/groups/dev/names/{unique}-no")

    assert found.status_code == 200
    assert found.json()["message"] == {"group": "dev", "name": unique, **QUICK}
    assert missing.status_code == 404 and f"{unique}-no" in missing.json()["message"]


def test_list_filters_by_group_name_and_last_run_status(bob, unique):
    bob.create_pipeline("lst", unique, QUICK)
    bob.create_pipeline("lst", f"{unique}-b", {**QUICK, "steps": [{"cmd": "exit 2"}]})
    bob.wait_terminal(bob.start("lst", unique))
    bob.wait_terminal(bob.start("lst", f"{unique}-b"))

    def names(**params):
        r = bob.http.get("/pipelines", params=params)
        assert r.status_code == 200, r.text
        return sorted(p["name"] for p in r.json()["message"])

    assert names(group="lst") == [unique, f"{unique}-b"]
    assert names(group="lst", name=unique) == [unique]
    assert names(group="lst", status="failed") == [f"{unique}-b"]
    assert names(group="lst", status="passed") == [unique]
    assert bob.http.get("/pipelines", params={"status": "bogus"}).status_code == 400


def test_a_replaced_pipeline_keeps_its_runs_on_their_snapshot(bob, unique):
    bob.create_pipeline("dev", unique, LONG)
    run_id = bob.start("dev", unique)

    bob.create_pipeline("dev", unique, QUICK)

    assert (
        bob.http.get(f"/pipelines/groups/dev/names/{unique}").json()["message"]["steps"]
        == (QUICK["steps"])
    )
    _running(bob, run_id)
    assert (
        bob.http.post(f"/pipelines/stop/groups/dev/names/{unique}/runs/{run_id}").status_code == 202
    )
    assert bob.wait_terminal(run_id) == "stopped"


def test_delete_with_an_active_run_is_422_listing_it_then_deletes_runs_and_logs(bob, unique):
    bob.create_pipeline("dev", unique, LONG)
    run_id = bob.start("dev", unique)
    _running(bob, run_id)

    refused = bob.http.delete(f"/pipelines/groups/dev/names/{unique}")

    assert refused.status_code == 422
    assert refused.json()["message"]["runs"] == [run_id]
    assert "active runs" in refused.json()["message"]["error"]

    bob.http.post(f"/pipelines/stop/groups/dev/names/{unique}/runs/{run_id}")
    assert bob.wait_terminal(run_id) == "stopped"
    assert bob.http.delete(f"/pipelines/groups/dev/names/{unique}").status_code == 202
    assert bob.http.get(f"/pipelines/groups/dev/names/{unique}").status_code == 404
    assert bob.http.get(f"/pipelines/status/runs/{run_id}").status_code == 404
    assert bob.http.get(f"/pipelines/logs/runs/{run_id}/offset/0/lines/5").status_code == 404


def test_deleting_an_unknown_pipeline_is_404(bob, unique):
    assert bob.http.delete(f"/pipelines/groups/dev/names/{unique}").status_code == 404


def test_a_paused_pipeline_cannot_start_until_unpaused(bob, unique):
    bob.create_pipeline("dev", unique, QUICK)
    assert bob.http.post(f"/pipelines/pause/groups/dev/names/{unique}").status_code == 202

    refused = bob.http.post(f"/pipelines/start/groups/dev/names/{unique}")

    assert refused.status_code == 422
    assert refused.json() == {"message": "Pipeline is paused. Unpause it first."}
    assert bob.http.get(f"/pipelines/groups/dev/names/{unique}/runs").json()["message"] == []
    assert bob.http.post(f"/pipelines/unpause/groups/dev/names/{unique}").status_code == 202
    assert bob.wait_terminal(bob.start("dev", unique)) == "passed"


def test_pausing_a_pipeline_lets_runs_in_flight_complete(bob, unique):
    bob.create_pipeline("dev", unique, {"image": IMAGE, "steps": [{"cmd": "sleep 1"}]})
    run_id = bob.start("dev", unique)

    bob.http.post(f"/pipelines/pause/groups/dev/names/{unique}")

    assert bob.wait_terminal(run_id) == "passed"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"image": IMAGE, "steps": [{"cmd": ""}]}, "steps.0.cmd"),
        ({"image": IMAGE, "steps": [{"cmd": "x", "step_vars": {}}]}, "step_vars"),
        ({"image": IMAGE, "steps": [{"cmd": "x", "needs_resource": "src"}]}, "'src'"),
        ({"image": IMAGE, "steps": [{"cmd": "x"}], "vars": {"N": [1]}}, "vars.N"),
        ({"image": IMAGE, "steps": [{"cmd": "x"}], "vars": {"N": None}}, "vars.N"),
        (
            {"image": IMAGE, "steps": [{"cmd": "x"}], "quotas": {"limits": {"mem": "lots"}}},
            "quotas.limits.mem",
        ),
    ],
)
def test_invalid_pipelines_are_refused_with_a_message_naming_the_problem(
    bob, unique, body, message
):
    r = bob.http.post(f"/pipelines/groups/dev/names/{unique}", json=body)

    assert r.status_code in (400, 422), r.text
    assert message in r.json()["message"]
    assert bob.http.get(f"/pipelines/groups/dev/names/{unique}").status_code == 404


@pytest.mark.parametrize("bad", ["has space", "x" * 129, "semi;colon"])
def test_invalid_group_or_name_is_400(bob, bad):
    r = bob.http.post(f"/pipelines/groups/dev/names/{bad}", json=QUICK)
    assert r.status_code == 400
    assert "does not match" in r.json()["message"]


def test_unknown_route_answers_in_the_envelope(bob):
    r = bob.http.get("/no/such/thing")
    assert r.status_code == 404
    assert "message" in r.json()


# Runs


def test_start_for_an_unknown_runner_type_is_422_naming_it(bob, unique):
    bob.create_pipeline("dev", unique, QUICK)

    r = bob.http.post(
        f"/pipelines/start/groups/dev/names/{unique}", json={"runner/type": "quantum"}
    )

    assert r.status_code == 422
    assert "quantum" in r.json()["message"]
    assert bob.http.get(f"/pipelines/groups/dev/names/{unique}/runs").json()["message"] == []


def test_start_with_the_default_runner_type_named_explicitly(bob, unique):
    bob.create_pipeline("dev", unique, QUICK)
    run_id = bob.start("dev", unique, json={"runner/type": "docker"})
    assert bob.wait_terminal(run_id) == "passed"


def test_start_with_a_malformed_body_is_400(bob, unique):
    bob.create_pipeline("dev", unique, QUICK)
    r = bob.http.post(f"/pipelines/start/groups/dev/names/{unique}", json={"runner": "docker"})
    assert r.status_code == 400


def test_run_detail_has_steps_exit_codes_runner_and_reason(bob, unique):
    bob.create_pipeline(
        "dev", unique, {"image": IMAGE, "steps": [{"cmd": "true"}, {"cmd": "exit 7"}]}
    )
    run_id = bob.start("dev", unique)
    assert bob.wait_terminal(run_id) == "failed"

    detail = bob.http.get(f"/pipelines/groups/dev/names/{unique}/runs/{run_id}").json()["message"]

    assert detail["run-id"] == run_id and detail["status"] == "failed"
    assert [(s["index"], s["exit-code"]) for s in detail["steps"]] == [(0, 0), (1, 7)]
    assert detail["runner-id"] == bob.runner_id and detail["attempt"] == 1
    assert "7" in detail["reason"]
    assert detail["started-at"] and detail["completed-at"]


def test_run_detail_of_another_pipeline_is_404(bob, unique):
    bob.create_pipeline("dev", unique, QUICK)
    run_id = bob.start("dev", unique)
    r = bob.http.get(f"/pipelines/groups/dev/names/{unique}-other/runs/{run_id}")
    assert r.status_code == 404


def test_stop_of_a_running_run_ends_it_stopped(bob, unique):
    bob.create_pipeline("dev", unique, LONG)
    run_id = bob.start("dev", unique)
    _running(bob, run_id)

    r = bob.http.post(f"/pipelines/stop/groups/dev/names/{unique}/runs/{run_id}")

    assert r.status_code == 202
    assert bob.wait_terminal(run_id) == "stopped"


def test_stop_before_a_runner_picks_the_run_up_means_it_never_starts(bob, unique):
    # Given the runner's two slots busy, a third run waits in the queue
    bob.create_pipeline("dev", unique, LONG)
    busy = [bob.start("dev", unique) for _ in range(2)]
    for run_id in busy:
        _running(bob, run_id)
    waiting = bob.start("dev", unique)
    assert bob.status(waiting) == "pending"

    # When it is stopped, it is stopped at once and never runs
    r = bob.http.post(f"/pipelines/stop/groups/dev/names/{unique}/runs/{waiting}")
    assert r.status_code == 202
    assert bob.status(waiting) == "stopped"
    for run_id in busy:
        bob.http.post(f"/pipelines/stop/groups/dev/names/{unique}/runs/{run_id}")
        assert bob.wait_terminal(run_id) == "stopped"
    detail = bob.http.get(f"/pipelines/groups/dev/names/{unique}/runs/{waiting}").json()
    assert detail["message"]["started-at"] is None
    assert bob.log_lines(waiting) == []


def test_stopping_a_finished_run_is_accepted_as_in_bob_and_changes_nothing(bob, unique):
    bob.create_pipeline("dev", unique, QUICK)
    run_id = bob.start("dev", unique)
    assert bob.wait_terminal(run_id) == "passed"

    old = bob.http.post(f"/pipelines/stop/groups/dev/names/{unique}/runs/{run_id}")
    new = bob.http.post(f"/pipelines/stop/runs/{run_id}")

    for r in (old, new):
        assert r.status_code == 202 and r.json() == {"message": "Ok"}
    assert bob.status(run_id) == "passed"


def test_stop_of_an_unknown_run_is_404(bob, unique):
    bob.create_pipeline("dev", unique, QUICK)
    r = bob.http.post(f"/pipelines/stop/groups/dev/names/{unique}/runs/r-missing")
    assert r.status_code == 404


def test_pause_then_resume_a_running_run_then_it_passes(bob, unique):
    bob.create_pipeline(
        "dev", unique, {"image": IMAGE, "steps": [{"cmd": "sleep 2"}, {"cmd": "echo after"}]}
    )
    run_id = bob.start("dev", unique)
    _running(bob, run_id)

    assert (
        bob.http.post(f"/pipelines/pause/groups/dev/names/{unique}/runs/{run_id}").status_code
        == 202
    )
    bob.wait_status(run_id, "paused")
    again = bob.http.post(f"/pipelines/pause/groups/dev/names/{unique}/runs/{run_id}")
    assert again.status_code == 422 and "not running" in again.json()["message"]
    assert (
        bob.http.post(f"/pipelines/unpause/groups/dev/names/{unique}/runs/{run_id}").status_code
        == 202
    )

    assert bob.wait_terminal(run_id) == "passed"
    assert "after" in bob.log_lines(run_id)


def test_unpausing_a_run_that_is_not_paused_is_422(bob, unique):
    bob.create_pipeline("dev", unique, QUICK)
    run_id = bob.start("dev", unique)
    bob.wait_terminal(run_id)
    r = bob.http.post(f"/pipelines/unpause/groups/dev/names/{unique}/runs/{run_id}")
    assert r.status_code == 422


@pytest.mark.parametrize(("offset", "lines"), [(-1, 5), (0, -1), (0, 10_001)])
def test_log_window_out_of_range_is_400(bob, offset, lines):
    r = bob.http.get(f"/pipelines/logs/runs/r-x/offset/{offset}/lines/{lines}")
    assert r.status_code == 400


# Plugins and artifacts


@pytest.mark.parametrize("kind", ["resource-providers", "artifact-stores"])
def test_plugins_are_registered_listed_and_deleted(bob, unique, kind):
    url = "http://127.0.0.1:9/plugin"
    assert bob.http.post(f"/{kind}/{unique}", json={"url": url}).status_code == 202

    listed = bob.http.get(f"/{kind}").json()["message"]
    assert {"name": unique, "url": url} in listed

    assert bob.http.delete(f"/{kind}/{unique}").status_code == 202
    assert all(p["name"] != unique for p in bob.http.get(f"/{kind}").json()["message"])
    assert bob.http.delete(f"/{kind}/{unique}").status_code == 404


@pytest.mark.parametrize("body", [{"url": "ftp://x"}, {"url": ""}, {}, {"uri": "http://x"}])
def test_a_plugin_without_an_http_url_is_400(bob, unique, body):
    assert bob.http.post(f"/artifact-stores/{unique}", json=body).status_code == 400


def _tar_of(name: str, content: bytes) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(content)
        tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()


def test_an_artifact_streams_from_its_store_through_the_api(bob, unique):
    bob.create_pipeline("dev", unique, QUICK)
    run_id = bob.start("dev", unique)
    tar = _tar_of("app.bin", b"\x7fELF" + bytes(range(256)) * 400)
    with plugin_server() as store:
        store.routes[f"/bob_artifact/dev/{unique}/{run_id}/app"] = Answer(200, tar)
        bob.http.post(f"/artifact-stores/{unique}", json={"url": store.url})
        base = f"/pipelines/groups/dev/names/{unique}/runs/{run_id}/artifact-stores"

        fetched = bob.http.get(f"{base}/{unique}/artifact/app")
        missing = bob.http.get(f"{base}/{unique}/artifact/other")
        unknown_store = bob.http.get(f"{base}/{unique}-no/artifact/app")

    assert fetched.status_code == 200
    assert fetched.headers["content-type"] == "application/tar"
    assert fetched.content == tar
    assert missing.status_code == 404 and "other" in missing.json()["message"]
    assert unknown_store.status_code == 404 and "not registered" in unknown_store.json()["message"]

    # And once the store is gone, the API says it cannot reach it
    gone = bob.http.get(f"{base}/{unique}/artifact/app")
    assert gone.status_code == 503 and "unreachable" in gone.json()["message"]
    bob.http.delete(f"/artifact-stores/{unique}")


def test_an_artifact_store_error_is_a_502(bob, unique):
    bob.create_pipeline("dev", unique, QUICK)
    run_id = bob.start("dev", unique)
    with plugin_server() as store:
        store.routes[f"/bob_artifact/dev/{unique}/{run_id}/app"] = Answer(500, b"boom")
        bob.http.post(f"/artifact-stores/{unique}", json={"url": store.url})
        path = f"/pipelines/groups/dev/names/{unique}/runs/{run_id}/artifact-stores/{unique}"
        r = bob.http.get(f"{path}/artifact/app")
        bob.http.delete(f"/artifact-stores/{unique}")
    assert r.status_code == 502 and "500" in r.json()["message"]


def test_health_check_fails_for_an_unreachable_plugin_a_pipeline_uses(bob, unique):
    uses = {**QUICK, "resources": [{"name": "src", "type": "external", "provider": unique}]}
    bob.create_pipeline("dev", unique, uses)
    with plugin_server() as provider:
        bob.http.post(f"/resource-providers/{unique}", json={"url": provider.url})
        healthy = bob.http.get("/can-we-build-it")
        assert "/ping" in provider.requests
    unhealthy = bob.http.get("/can-we-build-it")
    bob.http.delete(f"/resource-providers/{unique}")
    bob.http.delete(f"/pipelines/groups/dev/names/{unique}")
    recovered = bob.http.get("/can-we-build-it")

    assert healthy.status_code == 200
    assert unhealthy.status_code == 503
    assert f"resource provider {unique}" in unhealthy.json()["message"]
    assert unhealthy.headers["retry-after"]
    assert recovered.status_code == 200


def test_health_check_lists_an_unreachable_plugin_no_pipeline_uses(bob, unique):
    with plugin_server() as provider:
        bob.http.post(f"/resource-providers/{unique}", json={"url": provider.url})
    health = bob.http.get("/can-we-build-it")
    bob.http.delete(f"/resource-providers/{unique}")

    assert health.status_code == 200, health.text
    assert f"resource provider {unique}: not answering" in str(health.json()["degraded"])


# Observability


def test_metrics_count_runs_by_status_and_queued_jobs(bob, unique):
    bob.create_pipeline("dev", unique, QUICK)
    bob.wait_terminal(bob.start("dev", unique))

    r = bob.http.get("/metrics")

    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    samples = {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in r.text.splitlines()
        if line and not line.startswith("#")
    }
    assert samples['bob_runs{status="passed"}'] >= 1
    assert 'bob_queued_jobs_by_type{runner_type="docker"}' in samples
    # Bob's own gauges, under Bob's names
    assert samples["bob_passed_jobs"] >= 1
    for gauge in (
        "bob_queued_jobs",
        "bob_queued_entities",
        "bob_errors",
        "bob_running_jobs",
        "bob_initializing_jobs",
        "bob_failed_jobs",
        "bob_stopped_jobs",
    ):
        assert gauge in samples, gauge
    assert samples["bob_events_applied_total"] > 0
    assert samples["bob_pipelines"] >= 1


def test_cctray_has_a_project_per_pipeline_with_its_last_run(bob, unique):
    bob.create_pipeline("cc", unique, QUICK)
    bob.create_pipeline("cc", f"{unique}-never", QUICK)
    run_id = bob.start("cc", unique)
    bob.wait_terminal(run_id)

    r = bob.http.get("/cctray.xml")

    assert r.status_code == 200 and "xml" in r.headers["content-type"]
    projects = {p.get("name"): p.attrib for p in ET.fromstring(r.content).iter("Project")}
    ran = projects[f"cc:{unique}"]
    assert ran["lastBuildStatus"] == "Success" and ran["lastBuildLabel"] == run_id
    assert ran["activity"] == "Sleeping" and ran["lastBuildTime"]
    assert projects[f"cc:{unique}-never"]["lastBuildStatus"] == "Unknown"


def test_get_error_pops_reported_errors_then_answers_no_more_errors(bob):
    async def publish_garbage_job():
        connection = await aio_pika.connect(bob.queue_url)
        async with connection:
            channel = await connection.channel()
            exchange, _ = await topology.declare_jobs(channel, "docker", bob.queue_max_jobs)
            await exchange.publish(
                aio_pika.Message(b"\xff not protobuf", type="bob.v1.Job"), routing_key="docker"
            )

    while bob.http.get("/error").json()["message"] != "No more errors":
        pass  # drain what earlier tests left
    asyncio.run(publish_garbage_job())

    def popped():
        message = bob.http.get("/error").json()["message"]
        return message if message != "No more errors" else None

    error = wait_until(popped, what="an error")
    assert "dead-lettered" in error
    assert bob.http.get("/error").json() == {"message": "No more errors"}


def test_api_document_and_ui_are_served(bob):
    spec = bob.http.get("/api.yaml")
    ui = bob.http.get("/ui/")

    assert spec.status_code == 200 and "PipelineCreate" in spec.text
    assert ui.status_code == 200 and "swagger" in ui.text.lower()


# What the web page reads (ours): the caller's role, last runs, newest runs, a log's tail


def test_whoami_without_a_token_is_anonymous_admin_under_auth_none(bob):
    r = bob.http.get("/whoami")

    assert r.status_code == 200, r.text
    assert r.json()["message"] == {"name": "anonymous", "role": "admin"}


def test_page_reads_last_runs_newest_runs_and_a_log_tail(bob, unique):
    bob.create_pipeline("pg", unique, {"image": IMAGE, "steps": [{"cmd": "seq 1 50"}]})
    bob.create_pipeline("pg", f"{unique}-idle", QUICK)
    first = bob.start("pg", unique)
    bob.wait_terminal(first)
    second = bob.start("pg", unique)
    bob.wait_terminal(second)

    listed = bob.http.get("/pipelines", params={"group": "pg", "last-run": "true"})
    plain = bob.http.get("/pipelines", params={"group": "pg"})
    newest = bob.http.get(f"/pipelines/groups/pg/names/{unique}/runs", params={"order": "newest"})
    paged = bob.http.get(
        f"/pipelines/groups/pg/names/{unique}/runs", params={"order": "newest", "limit": 1}
    )
    older = bob.http.get(
        f"/pipelines/groups/pg/names/{unique}/runs",
        params={"order": "newest", "cursor": paged.headers["X-Next-Cursor"]},
    )
    whole = bob.log_lines(second)
    tail = bob.http.get(f"/pipelines/logs/runs/{second}", params={"tail": 5})
    followed = bob.http.get(
        f"/pipelines/logs/runs/{second}", params={"tail": 3, "follow": "true", "until-end": "true"}
    )

    last = {p["name"]: p["last-run"] for p in listed.json()["message"]}
    assert last[unique]["run-id"] == second and last[unique]["status"] == "passed"
    assert last[f"{unique}-idle"] is None
    assert all("last-run" not in p for p in plain.json()["message"])  # as Bob's clients read
    assert [r["run-id"] for r in newest.json()["message"]] == [second, first]
    assert [r["run-id"] for r in older.json()["message"]] == [first]
    assert tail.text.splitlines() == whole[-5:]
    assert int(tail.headers["X-Log-Offset"]) == len(whole) - 5
    assert followed.text.splitlines() == whole[-3:]
    bad = bob.http.get(f"/pipelines/logs/runs/{second}", params={"tail": 0})
    assert bad.status_code == 400, bad.text
