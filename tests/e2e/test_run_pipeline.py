"""A user drives the whole cluster over HTTP: pipelines run on real Docker through RabbitMQ."""

from __future__ import annotations

import pytest

from tests.support.containers import run_containers
from tests.waiting import wait_until

pytestmark = pytest.mark.e2e
IMAGE = "bob-test/busybox:latest"


def test_two_step_pipeline_passes_and_its_log_comes_back_in_order(bob, unique):
    # Given a pipeline whose first step writes a file and whose second prints it and a var
    bob.create_pipeline(
        "dev",
        unique,
        {
            "image": IMAGE,
            "vars": {"GREETING": "hello"},
            "steps": [
                {"cmd": "echo from-step-one > note.txt; echo wrote"},
                {"cmd": "cat note.txt; echo $GREETING $WHO", "vars": {"WHO": "bob"}},
            ],
        },
    )

    # When it is started
    run_id = bob.start("dev", unique)

    # Then it passes, and the log holds each step's output in order
    assert run_id.startswith("r-")
    assert bob.wait_terminal(run_id) == "passed"
    output = [line for line in bob.log_lines(run_id) if not line.startswith("[bob]")]
    assert output == ["wrote", "from-step-one", "hello bob"]
    lines = bob.log_lines(run_id)
    assert lines.index("wrote") < lines.index("from-step-one") < lines.index("hello bob")


def test_log_window_is_served_by_offset_and_lines(bob, unique):
    bob.create_pipeline("dev", unique, {"image": IMAGE, "steps": [{"cmd": "seq 1 50"}]})
    run_id = bob.start("dev", unique)
    assert bob.wait_terminal(run_id) == "passed"

    everything = bob.log_lines(run_id)
    r = bob.http.get(f"/pipelines/logs/runs/{run_id}/offset/5/lines/3")

    assert r.status_code == 200
    assert r.json()["message"] == everything[5:8]
    assert [line for line in everything if not line.startswith("[bob]")] == [
        str(i) for i in range(1, 51)
    ]


def test_failing_middle_step_fails_the_run_and_later_steps_never_run(bob, unique):
    bob.create_pipeline(
        "dev",
        unique,
        {
            "image": IMAGE,
            "steps": [
                {"cmd": "echo first"},
                {"cmd": "echo second; exit 1"},
                {"cmd": "echo third-must-not-run"},
            ],
        },
    )

    run_id = bob.start("dev", unique)

    assert bob.wait_terminal(run_id) == "failed"
    lines = bob.log_lines(run_id)
    assert "first" in lines and "second" in lines
    assert not any("third-must-not-run" in line for line in lines if not line.startswith("[bob]"))
    assert not any(line == "third-must-not-run" for line in lines)


def test_starting_an_unknown_pipeline_is_404_and_stores_nothing(bob, unique):
    r = bob.http.post(f"/pipelines/start/groups/dev/names/{unique}")

    assert r.status_code == 404
    assert unique in r.json()["message"]
    runs = bob.http.get("/pipelines", params={"name": unique}).json()["message"]
    assert runs == []


@pytest.mark.parametrize("missing", ["image", "steps"])
def test_pipeline_without_a_required_field_is_400_naming_it_and_stores_nothing(
    bob, unique, missing
):
    body = {"image": IMAGE, "steps": [{"cmd": "true"}]}
    del body[missing]

    r = bob.http.post(f"/pipelines/groups/dev/names/{unique}", json=body)

    assert r.status_code == 400
    assert missing in r.json()["message"]
    assert bob.http.get(f"/pipelines/groups/dev/names/{unique}").status_code == 404
    assert bob.http.get("/pipelines", params={"name": unique}).json()["message"] == []


def test_invalid_replacement_keeps_the_stored_pipeline(bob, unique):
    good = {"image": IMAGE, "steps": [{"cmd": "echo kept"}]}
    bob.create_pipeline("dev", unique, good)

    r = bob.http.post(f"/pipelines/groups/dev/names/{unique}", json={"image": IMAGE})

    assert r.status_code == 400
    stored = bob.http.get(f"/pipelines/groups/dev/names/{unique}").json()["message"]
    assert stored["steps"] == [{"cmd": "echo kept"}]


def test_image_that_cannot_be_pulled_fails_the_run_with_a_log_line_saying_why(bob, unique):
    image = "bob-test/does-not-exist:1"
    bob.create_pipeline("dev", unique, {"image": image, "steps": [{"cmd": "true"}]})

    run_id = bob.start("dev", unique)

    assert bob.wait_terminal(run_id, timeout=30) == "failed"
    assert any(image in line and "pull" in line for line in bob.log_lines(run_id)), bob.log_lines(
        run_id
    )


def test_runs_of_a_pipeline_list_each_run_with_status_and_times(bob, unique):
    bob.create_pipeline("dev", unique, {"image": IMAGE, "steps": [{"cmd": "true"}]})
    first = bob.start("dev", unique)
    second = bob.start("dev", unique)
    bob.wait_terminal(first)
    bob.wait_terminal(second)

    runs = bob.http.get(f"/pipelines/groups/dev/names/{unique}/runs").json()["message"]

    assert [r["run-id"] for r in runs] == [first, second]
    assert all(r["status"] == "passed" and r["completed-at"] for r in runs)


def test_build_containers_are_removed_when_runs_end(bob, unique, docker_client):
    bob.create_pipeline("dev", unique, {"image": IMAGE, "steps": [{"cmd": "exit 3"}]})
    run_id = bob.start("dev", unique)
    assert bob.wait_terminal(run_id) == "failed"

    def gone():
        return not run_containers(docker_client, run_id)

    wait_until(gone, timeout=10, what=f"container of {run_id} to be removed")


def test_unknown_run_is_404_for_status_and_logs(bob):
    assert bob.http.get("/pipelines/status/runs/r-unknown").status_code == 404
    assert bob.http.get("/pipelines/logs/runs/r-unknown/offset/0/lines/10").status_code == 404


def test_health_check_says_yes_we_can(bob):
    r = bob.http.get("/can-we-build-it")

    assert r.status_code == 200
    assert r.json() == {"message": "Yes we can! 🔨 🔨"}
