"""wendy's commands, bootstrapped from our GET /api.yaml, driven over HTTP against the
running cluster with real arguments, as a user of Bob's CLI would type them. Each test
checks what wendy prints and how it exits (tests/clients/wendy.py re-enacts it)."""

from __future__ import annotations

import json
import re
import tarfile
import time

import pytest

from tests.clients.conftest import IMAGE
from tests.clients.golang import trim_space
from tests.clients.wendy import Result
from tests.waiting import wait_until

pytestmark = pytest.mark.e2e

EVENT = re.compile(r"^\{At:(-?\d+) Kind:(.*) Type:(.*) Reason:(.*) Message:(.*)\}$")


def ok(result: Result) -> Result:
    assert result.exit_code == 0, result.report()
    return result


def register(bob, kind: str, name: str, url: str) -> None:
    """Through Bob's latest endpoint: the name in the body."""
    r = bob.http.post(f"/{kind}", json={"name": name, "url": url})
    assert r.status_code in (200, 202), f"POST /{kind} -> {r.status_code} {r.text}"


def _pipeline(group: str, name: str, repo, provider: str, store: str) -> dict:
    """A pipeline as wendy's manifests write them: a checkout, steps inside it, an artifact."""
    return {
        "group": group,
        "name": name,
        "image": IMAGE,
        "vars": {"WHO": "wendy"},
        "steps": [
            {"cmd": "echo build started."},
            {"needs_resource": "source", "cmd": "sh test.sh"},
            {
                "needs_resource": "source",
                "cmd": "sh build.sh && for i in 1 2 3; do echo tick $i; sleep 0.3; done",
                "produces_artifact": {"name": "jar", "path": "build/libs", "store": store},
            },
        ],
        "resources": [
            {
                "name": "source",
                "type": "external",
                "provider": provider,
                "params": {"repo": str(repo), "branch": "main"},
            }
        ],
    }


def _passed_run(bob, wendy, plugins, unique: str) -> str:
    """A one-step pipeline created and started with a logger through wendy, and passed."""
    logger = f"logger-{unique}"
    register(bob, "loggers", logger, plugins["logger-local"])
    spec = {"group": "dev", "name": unique, "image": IMAGE, "steps": [{"cmd": "echo hi"}]}
    ok(wendy.run("pipelines", "create", "--spec", json.dumps(spec)))
    run_id = ok(
        wendy.run("pipelines", "start", "--group", "dev", "--name", unique, "--logger", logger)
    ).printed
    assert bob.wait_terminal(run_id) == "passed"
    return run_id


def test_wendy_pings_the_cluster_and_shows_its_info(wendy):
    ping = ok(wendy.run("cluster", "ping"))
    info = ok(wendy.run("cluster", "info"))
    hidden = ok(wendy.run("GetApiSpec"))

    assert ping.stdout == '"Yes we can! 🔨 🔨"\n'
    assert info.printed, info.report()
    assert hidden.console.logs[0][1].startswith("Oooh, you stumbled on a hidden one!")


@pytest.mark.parametrize("kind", ["resource-providers", "artifact-stores", "loggers"])
def test_wendy_creates_lists_and_deletes_a_plugin(wendy, plugins, unique, kind, tmp_path):
    url = {
        "resource-providers": plugins["git"],
        "artifact-stores": plugins["local"],
        "loggers": plugins["logger-local"],
    }[kind]
    name, other = f"{unique}-a", f"{unique}-b"
    (tmp_path / "spec.json").write_text(json.dumps({"name": name, "url": url}))

    # When one is created from a file and another from a literal spec
    from_file = ok(wendy.run(kind, "create", "--spec", "@spec.json"))
    literal = ok(wendy.run(kind, "create", "--spec", json.dumps({"name": other, "url": url})))

    # Then both answer Ok and the list filters by name, under its aliases too
    assert from_file.stdout == literal.stdout == '"Ok"\n'
    assert from_file.exchanges[0].chunked  # wendy streams a file of unknown length
    assert ok(wendy.run(kind, "list", "--name", name)).printed == [{"name": name, "url": url}]
    assert ok(wendy.run(kind, "ls", "--name", other)).printed == [{"name": other, "url": url}]
    assert {"name": name, "url": url} in ok(wendy.run(kind, "get")).printed

    # When one is deleted, it leaves the list
    assert ok(wendy.run(kind, "delete", "--name", name)).stdout == '"Ok"\n'
    wait_until(
        lambda: ok(wendy.run(kind, "list", "--name", name)).printed == [],
        timeout=10,
        what=f"{name} to leave the {kind} list",
    )
    assert ok(wendy.run(kind, "delete", "--name", other)).stdout == '"Ok"\n'


def test_wendy_creates_starts_and_fetches_the_artifact_of_a_pipeline(
    bob, wendy, plugins, unique, repo, tmp_path
):
    # Given a provider, a store and a logger registered, and a pipeline file
    provider, store, logger = f"git-{unique}", f"local-{unique}", f"logger-{unique}"
    register(bob, "resource-providers", provider, plugins["git"])
    register(bob, "artifact-stores", store, plugins["local"])
    register(bob, "loggers", logger, plugins["logger-local"])
    spec = _pipeline("dev", unique, repo, provider, store)

    # When it is created (the spec given inline), listed and started with the logger
    assert ok(wendy.run("pipelines", "create", "--spec", json.dumps(spec))).stdout == '"Ok"\n'
    listed = ok(wendy.run("pipelines", "list", "--group", "dev", "--name", unique)).printed
    started = ok(
        wendy.run("pipelines", "start", "--group", "dev", "--name", unique, "--logger", logger)
    )
    run_id = started.printed

    # Then the pipeline reads back as it was sent, and the run id is printed
    assert listed == [spec]
    assert isinstance(run_id, str) and run_id.startswith("r-"), started.report()

    # When it has run
    assert bob.wait_terminal(run_id) == "passed", bob.log_lines(run_id)

    # And status, runs and the plain log say the same
    assert ok(wendy.run("pipelines", "status", "--run-id", run_id)).stdout == '"passed"\n'
    plain = ok(wendy.run("pipelines", "logs", "--id", run_id))
    assert plain.stdout.splitlines() == bob.log_lines(run_id)
    runs = ok(wendy.run("pipelines", "runs", "--group", "dev", "--name", unique)).printed
    run = next((r for r in runs if r.get("run-id") == run_id), None)
    assert run is not None, runs
    assert run["status"] == "passed", run

    # When its artifact is fetched
    fetched = ok(
        wendy.run(
            "pipelines",
            "fetch-artifact",
            "--group",
            "dev",
            "--name",
            unique,
            "--id",
            run_id,
            "--store-name",
            store,
            "--artifact-name",
            "jar",
        )
    )

    # Then jar.tar holds the jar built inside the checkout
    with tarfile.open(tmp_path / "jar.tar") as archive:
        files = {m.name: archive.extractfile(m).read() for m in archive if m.isreg()}
    jars = {n: c for n, c in files.items() if n.endswith("bob-example-1.0-SNAPSHOT-all.jar")}
    assert list(jars.values()) == [b"jar of source\n"], (files, fetched.report())

    # When the pipeline is deleted, it is gone
    assert (
        ok(wendy.run("pipelines", "delete", "--group", "dev", "--name", unique)).stdout == '"Ok"\n'
    )
    assert ok(wendy.run("pipelines", "list", "--group", "dev", "--name", unique)).printed == []


def test_wendy_lists_runs_with_bobs_keys_of_both_generations(bob, wendy, plugins, unique):
    # Given a run that has passed
    run_id = _passed_run(bob, wendy, plugins, unique)

    # When wendy lists the pipeline's runs
    runs = ok(wendy.run("pipelines", "runs", "--group", "dev", "--name", unique)).printed

    # Then the run carries Bob HEAD's keys and the older ones, each with its value
    assert len(runs) == 1, runs
    run = runs[0]
    missing = [
        key
        for key in (
            "run-id",
            "run_id",
            "scheduled-at",
            "initiated-at",
            "initialized-at",
            "started-at",
            "completed-at",
            "started",
            "completed",
        )
        if run.get(key) is None
    ]
    assert not missing, f"no value for {missing} in {run}"
    assert run["run-id"] == run["run_id"] == run_id and run["status"] == "passed", run


def test_wendy_creates_a_pipeline_from_a_file(wendy, unique, tmp_path):
    # Given a pipeline file, as in `wendy pipelines create --spec @p.json`
    spec = {"group": "dev", "name": unique, "image": IMAGE, "steps": [{"cmd": "echo hi"}]}
    (tmp_path / "p.json").write_text(json.dumps(spec, indent=2))

    # When wendy creates it (Go streams a file body: chunked, no Content-Length)
    created = wendy.run("pipelines", "create", "--spec", "@p.json")

    # Then it is created as it was written
    assert created.exchanges[0].chunked
    assert ok(created).stdout == '"Ok"\n'
    assert ok(wendy.run("pipelines", "list", "--group", "dev", "--name", unique)).printed == [spec]


def test_wendy_stops_a_running_pipeline_and_a_stop_after_the_end_is_accepted(
    bob, wendy, plugins, unique
):
    # Given a long run
    register(bob, "loggers", f"logger-{unique}", plugins["logger-local"])
    spec = {
        "group": "dev",
        "name": unique,
        "image": IMAGE,
        "steps": [{"cmd": "echo started; sleep 60"}],
    }
    ok(wendy.run("pipelines", "create", "--spec", json.dumps(spec)))
    run_id = ok(
        wendy.run(
            "pipelines", "start", "--group", "dev", "--name", unique, "--logger", f"logger-{unique}"
        )
    ).printed
    bob.wait_status(run_id, "running")

    # When wendy stops it, and stops it again once it has ended
    stopped = ok(wendy.run("pipelines", "stop", "--run-id", run_id))
    assert bob.wait_terminal(run_id) == "stopped"
    again = ok(wendy.run("pipelines", "stop", "--run-id", run_id))

    # Then both are accepted, and answered Ok as Bob answers
    assert stopped.stdout == '"Ok"\n'
    assert again.stdout == '"Ok"\n', again.report()
    assert ok(wendy.run("pipelines", "status", "--run-id", run_id)).stdout == '"stopped"\n'


def test_wendy_pauses_and_unpauses_a_pipeline(bob, wendy, plugins, unique):
    # Given a pipeline
    logger = f"logger-{unique}"
    register(bob, "loggers", logger, plugins["logger-local"])
    spec = {"group": "dev", "name": unique, "image": IMAGE, "steps": [{"cmd": "echo hi"}]}
    ok(wendy.run("pipelines", "create", "--spec", json.dumps(spec)))
    start = ("pipelines", "start", "--group", "dev", "--name", unique, "--logger", logger)

    # When it is paused, a start is refused and the pipeline says it is paused
    assert (
        ok(wendy.run("pipelines", "pause", "--group", "dev", "--name", unique)).stdout == '"Ok"\n'
    )
    refused = wendy.run(*start)
    paused = ok(wendy.run("pipelines", "list", "--group", "dev", "--name", unique)).printed

    assert refused.exit_code == 1 and "Status: 422" in (refused.error or ""), refused.report()
    assert paused == [{**spec, "paused": True}]

    # When it is unpaused, it starts and runs, and reads back as sent
    assert (
        ok(wendy.run("pipelines", "unpause", "--group", "dev", "--name", unique)).stdout == '"Ok"\n'
    )
    run_id = ok(wendy.run(*start)).printed

    assert bob.wait_terminal(run_id) == "passed"
    assert ok(wendy.run("pipelines", "list", "--group", "dev", "--name", unique)).printed == [spec]


def test_wendy_streams_events_without_crashing(bob, wendy, plugins, unique):
    # Given wendy streaming events
    with wendy.stream("events", "stream") as events:
        # When a pipeline is created and run
        run_id = _passed_run(bob, wendy, plugins, unique)

        # Then wendy prints events as they come, and is still reading
        wait_until(
            events.until(lambda lines: any(run_id in line for line in lines)),
            timeout=30,
            what="an event about the run",
            describe=lambda: events.result.report(),
        )
        assert not events.ended, events.result.report()
    result = events.result
    assert (result.exit_code, result.panic, result.error) == (0, None, None), result.report()

    # And each is Bob's event: epoch milliseconds, a type, a kind, a reason
    now_ms = time.time() * 1000
    assert len(events.lines) >= 3, result.report()
    for line in events.lines:
        match = EVENT.match(line)
        assert match, f"{line!r}\n{result.report()}"
        at, kind, type_, reason, _message = match.groups()
        assert now_ms - 7 * 86400_000 < int(at) <= now_ms + 60_000, line
        assert type_ in ("Normal", "Warning", "Error") and kind and reason, line


def test_wendy_follows_a_running_pipeline_to_its_last_line(bob, wendy, plugins, unique):
    # Given a pipeline that prints for a while, started with a logger
    logger = f"logger-{unique}"
    register(bob, "loggers", logger, plugins["logger-local"])
    spec = {
        "group": "dev",
        "name": unique,
        "image": IMAGE,
        "steps": [
            {"cmd": "for i in 1 2 3 4 5 6 7 8; do echo tick $i; sleep 0.5; done"},
            {"cmd": "echo done"},
        ],
    }
    ok(wendy.run("pipelines", "create", "--spec", json.dumps(spec)))
    run_id = ok(
        wendy.run("pipelines", "start", "--group", "dev", "--name", unique, "--logger", logger)
    ).printed

    # When its log is followed while it runs
    with wendy.stream("pipelines", "logs", "--id", run_id, "--follow") as follow:
        wait_until(
            follow.until(lambda lines: "tick 1" in lines),
            timeout=30,
            what="a line while the run is running",
            describe=follow.result.report,
        )
        live = bob.status(run_id)
        assert bob.wait_terminal(run_id) == "passed", bob.log_lines(run_id)
        expected = [trim_space(line) for line in bob.log_lines(run_id) if line]
        wait_until(
            follow.until(lambda lines: lines[-1:] == expected[-1:]),
            timeout=30,
            what="wendy to print the run's last line",
            describe=follow.result.report,
        )

        # Then lines came while it ran, every line came, and the stream was still open
        # when wendy left
        assert live not in ("passed", "failed", "stopped"), live
        assert follow.lines == expected, follow.result.report()
        assert not follow.ended, follow.result.report()
    assert follow.result.exit_code == 0, follow.result.report()


def test_a_follow_of_a_finished_run_replays_it_and_stays_open(bob, wendy, plugins, unique):
    # Given a run that has ended
    logger = f"logger-{unique}"
    register(bob, "loggers", logger, plugins["logger-local"])
    spec = {
        "group": "dev",
        "name": unique,
        "image": IMAGE,
        "steps": [{"cmd": "echo one"}, {"cmd": "echo two"}],
    }
    ok(wendy.run("pipelines", "create", "--spec", json.dumps(spec)))
    run_id = ok(
        wendy.run("pipelines", "start", "--group", "dev", "--name", unique, "--logger", logger)
    ).printed
    assert bob.wait_terminal(run_id) == "passed"
    expected = [trim_space(line) for line in bob.log_lines(run_id) if line]

    # When wendy follows its log
    with wendy.stream("pipelines", "logs", "--id", run_id, "--follow") as follow:
        wait_until(
            follow.until(lambda lines: lines == expected),
            timeout=30,
            what="the whole log",
            describe=lambda: follow.result.report(),
        )

        # Then it gets the whole log, and the stream does not end under it
        assert follow.lines == expected and not follow.ended, follow.result.report()
    assert follow.result.exit_code == 0, follow.result.report()


def test_wendy_reports_bob_errors_as_invalid_calls(wendy, unique):
    missing = wendy.run("pipelines", "status", "--run-id", f"r-{unique}")
    unknown = wendy.run(
        "pipelines", "start", "--group", "dev", "--name", unique, "--logger", "none"
    )

    assert missing.exit_code == 1 and "Status: 404" in (missing.error or ""), missing.report()
    assert unknown.exit_code == 1 and re.search(r"Status: 4\d\d", unknown.error or ""), (
        unknown.report()
    )
    assert json.loads(
        (missing.error or "").removeprefix("Invalid call: ").rsplit(" Status:", 1)[0]
    )["message"]
