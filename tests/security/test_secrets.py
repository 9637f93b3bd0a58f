"""Secrets against a running cluster, as a user and as an attacker: a value stored through
/secrets is never answered by any read, is not in the database file nor in a queue's job,
reaches the step that references it, and shows as *** in the stored log, the followed log
and the logger's copy (split across output chunks and spread over lines too), as do
secret-looking plain vars. Only the runner holding a run's claim gets its secrets; a
missing secret refuses the start naming it; without a key, only secrets are refused; a key
is rotated by putting the new one first."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import aio_pika
import grpc
import httpx
import pytest
from cryptography.fernet import Fernet, InvalidToken

from bob_common import claim_proof, topology
from bob_pb import entities_pb2, entities_pb2_grpc, messages_pb2
from devcluster.cluster import STOP_GRACE_S
from tests.e2e.runner_cluster import Bob, run_detail, runner_cluster, runner_id
from tests.waiting import wait_until

pytestmark = pytest.mark.e2e
IMAGE = "bob-test/busybox:latest"
DOCKER = runner_id("docker")

# Made per module, so that finding one anywhere is never a coincidence.
TOKEN = f"tok-{uuid.uuid4().hex[:16]}"  # 20 characters
PASSWORD = f"pw-{uuid.uuid4().hex[:14]}"
KEY = (
    "-----BEGIN TEST KEY-----\n"
    f"{uuid.uuid4().hex}{uuid.uuid4().hex[:8]}\n"
    f"{uuid.uuid4().hex}{uuid.uuid4().hex[:8]}\n"
    "-----END TEST KEY-----"
)
KEY_LINES = KEY.splitlines()[1:3]
SECRET_VALUES = [TOKEN, *KEY_LINES]


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture(scope="module")
def bob(rabbitmq_available, docker_client, tmp_path_factory) -> Iterator[Bob]:
    tmp = tmp_path_factory.mktemp("secrets")
    with runner_cluster(tmp, [{"BOB_RUNNER_ID": DOCKER}], plugins=True) as bob:
        r = bob.http.post(
            "/loggers", json={"name": "copy", "url": bob.cluster.plugin_urls["logger-local"]}
        )
        assert r.status_code == 202, r.text
        for name, value in (("deploy-token", TOKEN), ("signing-key", KEY)):
            r = bob.http.put(f"/secrets/{name}", json={"value": value})
            assert r.status_code == 202, r.text
        yield bob


@pytest.fixture
def unique() -> str:
    return f"p-{uuid.uuid4().hex[:8]}"


def _db_files(bob: Bob) -> list[Path]:
    db = Path(bob.cluster.entities.env["BOB_DB_URL"].removeprefix("sqlite:///"))
    return [p for p in db.parent.iterdir() if p.name.startswith(db.name)]


def _entities_stub(bob: Bob, identity: str) -> tuple[grpc.Channel, entities_pb2_grpc.EntitiesStub]:
    """Entities over the cluster's mutual TLS, as `identity`."""
    channel = bob.cluster.entities_channel(identity)
    return channel, entities_pb2_grpc.EntitiesStub(channel)


SECOND_HALF = 'printf "%s!\\n" "${TOKEN#??????????}"'
USES = {
    "image": IMAGE,
    "vars": {
        "TOKEN": {"secret": "deploy-token"},
        "DB_PASSWORD": PASSWORD,
        "PIN_TOKEN": "1234",
        "PORT": 8080,
    },
    "steps": [
        # The value reaches the step (compared by its digest: the cmd is readable).
        {"cmd": f'test "$(printf %s "$TOKEN" | sha256sum | cut -d" " -f1)" = {sha256(TOKEN)}'},
        {"cmd": 'echo "token=$TOKEN"; echo "password=$DB_PASSWORD"; echo "pin=$PIN_TOKEN"'},
        # Half of it, a pause (so another chunk of output), the other half.
        {"cmd": 'printf "split=%s" "${TOKEN%??????????}"; sleep 1; ' + SECOND_HALF},
        {
            "cmd": 'echo "$SIGNING_KEY"; echo "$SIGNING_KEY" | sed -n 2p',
            "vars": {"SIGNING_KEY": {"secret": "signing-key"}},
        },
        {"cmd": "echo done"},
    ],
}
MASKED_OUTPUT = ["token=***", "password=***", "pin=1234", "split=***!", "***", "***", "done"]


def _assert_masked(text: str, what: str) -> None:
    for value in (*SECRET_VALUES, PASSWORD):
        assert value not in text, f"{what} shows a secret value"
    lines = text.splitlines()
    assert [line for line in lines if not line.startswith("[bob]")] == MASKED_OUTPUT, what
    assert "[bob] not masked in this log, shorter than 6 characters: PIN_TOKEN" in lines, what


# --- the store ----------------------------------------------------------------------


def test_the_store_answers_names_and_times_never_values(bob):
    r = bob.http.get("/secrets")
    assert r.status_code == 200, r.text
    names = [s["name"] for s in r.json()["message"]]
    assert {"deploy-token", "signing-key"} <= set(names)
    assert all(set(s) == {"name", "created-at", "updated-at"} for s in r.json()["message"])
    for value in SECRET_VALUES:
        assert value not in r.text


def test_bad_secret_requests_are_refused_naming_the_problem(bob):
    cases = [
        ("put", "/secrets/.hidden", {"value": "x"}, 400),
        ("put", "/secrets/bad%20name", {"value": "x"}, 400),
        ("put", "/secrets/ok-name", {}, 400),
        ("put", "/secrets/ok-name", {"value": ""}, 400),
        ("put", "/secrets/ok-name", {"value": "x", "extra": 1}, 400),
        ("put", "/secrets/ok-name", {"value": 42}, 400),
        ("put", "/secrets/ok-name", {"value": "nul\u0000inside"}, 400),
        ("delete", "/secrets/never-stored", None, 404),
    ]
    for method, path, body, status in cases:
        r = bob.http.request(method, path, json=body)
        assert r.status_code == status, (path, body, r.text)
        assert r.json()["message"], (path, body)
    assert "never-stored" in bob.http.delete("/secrets/never-stored").json()["message"]


def test_a_replaced_or_deleted_secret_is_so_for_the_next_run(bob, unique):
    r = bob.http.put(f"/secrets/{unique}", json={"value": "first-value"})
    assert r.status_code == 202, r.text
    r = bob.http.put(f"/secrets/{unique}", json={"value": "second-value"})
    assert r.status_code == 202, r.text
    [info] = [s for s in bob.http.get("/secrets").json()["message"] if s["name"] == unique]
    assert info["updated-at"] >= info["created-at"]
    assert bob.http.delete(f"/secrets/{unique}").status_code == 202
    assert unique not in [s["name"] for s in bob.http.get("/secrets").json()["message"]]


def test_the_database_file_holds_no_secret_in_clear_only_ciphertext_of_the_key(bob):
    files = _db_files(bob)
    assert files
    for path in files:
        data = path.read_bytes()
        for value in SECRET_VALUES:
            assert value.encode() not in data, f"{path.name} holds a secret in clear"
    key_file = bob.cluster.entities.env["BOB_SECRETS_KEY_FILE"]
    assert os.stat(key_file).st_mode & 0o077 == 0
    fernet = Fernet(Path(key_file).read_text().strip().encode())
    db = files[0].parent / "bob.db"
    with sqlite3.connect(db) as conn:
        (sealed,) = conn.execute(
            "SELECT ciphertext FROM secrets WHERE name = 'deploy-token'"
        ).fetchone()
    assert json.loads(fernet.decrypt(sealed.encode())) == {"name": "deploy-token", "value": TOKEN}


# --- pipelines reference secrets by name --------------------------------------------


def test_a_pipeline_reads_back_its_references_never_the_values(bob, unique):
    bob.create_pipeline("sec", unique, USES)

    one = bob.http.get(f"/pipelines/groups/sec/names/{unique}")
    every = bob.http.get("/pipelines", params={"group": "sec"})

    assert one.status_code == 200 and every.status_code == 200
    assert one.json()["message"]["vars"] == USES["vars"]
    assert one.json()["message"]["steps"][3]["vars"] == {"SIGNING_KEY": {"secret": "signing-key"}}
    for value in SECRET_VALUES:
        assert value not in one.text and value not in every.text


def test_bad_references_are_refused_at_the_put(bob, unique):
    for bad in ({"secret": "../x"}, {"secret": ""}, {"secrets": "a"}, {"secret": "a", "b": 1}):
        body = {"image": IMAGE, "steps": [{"cmd": "true"}], "vars": {"X": bad}}
        r = bob.http.post(f"/pipelines/groups/sec/names/{unique}", json=body)
        assert r.status_code == 400, (bad, r.text)


def test_a_run_needing_a_missing_secret_is_refused_naming_it(bob, unique):
    body = {
        "image": IMAGE,
        "steps": [{"cmd": "true", "vars": {"API_KEY": {"secret": f"{unique}-gone"}}}],
    }
    bob.create_pipeline("sec", unique, body)

    r = bob.http.post(f"/pipelines/start/groups/sec/names/{unique}")

    assert r.status_code == 422, r.text
    message = r.json()["message"]
    assert f"'{unique}-gone'" in message and "'API_KEY' of step 1" in message
    assert bob.http.get(f"/pipelines/groups/sec/names/{unique}/runs").json()["message"] == []


# --- never in a queue's job ---------------------------------------------------------


async def _job_copy(queue_url: str, start: Callable[[], str]) -> tuple[str, bytes]:
    """Starts a run while a queue of our own is bound to the docker jobs (a direct
    exchange gives each bound queue a copy) and answers the run id and its job's body."""
    connection = await aio_pika.connect_robust(queue_url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind(topology.JOBS_EXCHANGE, routing_key="docker")
        run_id = await asyncio.to_thread(start)
        for _ in range(100):
            message = await queue.get(no_ack=True, fail=False)
            if message is not None:
                return run_id, message.body
            await asyncio.sleep(0.1)
    raise AssertionError("no copy of the job arrived")


def test_the_job_on_the_queue_names_secrets_and_holds_no_value(bob, unique):
    bob.create_pipeline("sec", unique, USES)

    run_id, body = asyncio.run(_job_copy(bob.queue_url, lambda: bob.start("sec", unique)))

    job = messages_pb2.Job.FromString(body)
    assert job.run_id == run_id
    for value in SECRET_VALUES:
        assert value.encode() not in body
    assert dict(job.pipeline.secret_vars) == {"TOKEN": "deploy-token"}
    assert dict(job.pipeline.steps[3].secret_vars) == {"SIGNING_KEY": "signing-key"}
    assert bob.wait_terminal(run_id) == "passed"


# --- the step gets them; every log masks them ----------------------------------------


def _follow(bob: Bob, run_id: str, into: list[str]) -> threading.Thread:
    def follow() -> None:
        with httpx.stream(
            "GET",
            f"{bob.cluster.api_url}/pipelines/logs/runs/{run_id}",
            params={"follow": "true", "until-end": "true"},
            timeout=60,
        ) as r:
            into.extend(r.iter_lines())

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    return thread


def test_the_step_gets_the_values_and_every_log_shows_stars(bob, unique):
    bob.create_pipeline("sec", unique, USES)

    run_id = bob.start("sec", unique)
    r = bob.http.post(f"/pipelines/start/groups/sec/names/{unique}/loggers/copy")
    assert r.status_code == 202, r.text
    copied_run = r.json()["message"]
    followed: list[str] = []
    following = _follow(bob, copied_run, followed)

    # Then both pass: the first step compared the value it got with the one stored
    assert bob.wait_terminal(run_id) == "passed", bob.log_lines(run_id)
    assert bob.wait_terminal(copied_run) == "passed", bob.log_lines(copied_run)
    following.join(60)
    stored = bob.http.get(f"/pipelines/logs/runs/{copied_run}")
    copy_url = f"{bob.cluster.plugin_urls['logger-local']}/bob_logs/{copied_run}"
    copy = wait_until(
        lambda: (
            (c := httpx.get(copy_url)).status_code == 200
            and "[bob] run passed" in c.text
            and c.text
        ),
        timeout=30,
        what="the logger's copy",
    )

    # And the stored, the followed and the copied log all show *** for each value
    _assert_masked("\n".join(bob.log_lines(run_id)), "the stored log (lines)")
    _assert_masked(stored.text, "the stored log (text)")
    _assert_masked("\n".join(followed), "the followed log")
    _assert_masked(copy, "the logger's copy")
    # Nor did any service print one in its own log
    cluster_log = bob.log_path.read_text(errors="replace")
    for value in (*SECRET_VALUES, PASSWORD):
        assert value not in cluster_log


# --- only the claim's holder gets them -----------------------------------------------


def test_only_the_runner_holding_the_claim_gets_the_run_secrets(bob, unique):
    body = {
        "image": IMAGE,
        "vars": {"TOKEN": {"secret": "deploy-token"}},
        "steps": [{"cmd": "sleep 4"}],
    }
    bob.create_pipeline("sec", unique, body)
    run_id = bob.start("sec", unique)
    bob.wait_status(run_id, "running")
    holder = run_detail(bob, "sec", unique, run_id)["runner-id"]
    assert holder == DOCKER
    # As the strongest intruder: one holding the holder's own certificate (a runner may
    # only ask as itself), but not its claim's secret
    channel, entities = _entities_stub(bob, f"runner/{holder}")

    def ask(run: str, attempt: int, runner: str, proof: str = "") -> grpc.RpcError:
        request = entities_pb2.GetRunSecretsRequest(
            run_id=run, attempt=attempt, runner_id=runner, claim_proof=proof
        )
        with pytest.raises(grpc.RpcError) as caught:
            entities.GetRunSecrets(request, timeout=5)
        return caught.value

    with channel:
        # While it runs: another runner, another attempt, an unknown run, and the holder's
        # id (public in /cluster/info) without the proof of its claim's secret, or with a
        # proof under another key, are refused alike
        forged = claim_proof.secrets_proof(b"guessed" * 4, run_id, 1)
        for run, attempt, runner, proof in (
            (run_id, 1, "intruder", forged),
            (run_id, 1, "", ""),
            (run_id, 2, holder, ""),
            ("r-unknown", 1, holder, forged),
            (run_id, 1, holder, ""),
            (run_id, 1, holder, forged),
        ):
            refused = ask(run, attempt, runner, proof)
            assert refused.code() == grpc.StatusCode.PERMISSION_DENIED, (run, attempt, runner)
            assert TOKEN not in (refused.details() or "")
        # Once the run has ended, its holder is refused too
        assert bob.wait_terminal(run_id) == "passed"
        assert ask(run_id, 1, holder, forged).code() == grpc.StatusCode.PERMISSION_DENIED


# --- rotation of the key ------------------------------------------------------------


def _restart_entities(bob: Bob) -> None:
    entities = bob.cluster.entities
    entities.signal(signal.SIGTERM)
    entities.wait(STOP_GRACE_S)
    bob.cluster.start_service(entities)
    bob.cluster.wait_healthy(60)


def _sealed(bob: Bob, name: str) -> str:
    with sqlite3.connect(_db_files(bob)[0].parent / "bob.db") as conn:
        return conn.execute("SELECT ciphertext FROM secrets WHERE name = ?", (name,)).fetchone()[0]


def test_a_key_is_rotated_by_putting_the_new_one_first_then_dropping_the_old(bob, unique):
    key_file = Path(bob.cluster.entities.env["BOB_SECRETS_KEY_FILE"])
    old = key_file.read_text().strip()
    new = Fernet.generate_key().decode()
    body = {
        "image": IMAGE,
        "vars": {"TOKEN": {"secret": "deploy-token"}},
        "steps": [
            {"cmd": f'test "$(printf %s "$TOKEN" | sha256sum | cut -d" " -f1)" = {sha256(TOKEN)}'}
        ],
    }
    bob.create_pipeline("sec", unique, body)

    # When the new key goes first, the old one after it, and entities restarts
    key_file.write_text(f"{new}\n{old}\n")
    _restart_entities(bob)

    # Then every stored value is sealed with the new key, which alone opens it
    for name in ("deploy-token", "signing-key"):
        Fernet(new.encode()).decrypt(_sealed(bob, name).encode())
        with pytest.raises(InvalidToken):
            Fernet(old.encode()).decrypt(_sealed(bob, name).encode())

    # And once the old key is gone, runs still get their secrets
    key_file.write_text(f"{new}\n")
    _restart_entities(bob)
    run_id = bob.start("sec", unique)
    assert bob.wait_terminal(run_id) == "passed", bob.log_lines(run_id)


# --- without a key ------------------------------------------------------------------


def test_without_a_key_only_secrets_are_refused(rabbitmq_available, docker_client, tmp_path):
    runner = runner_id("docker")
    with runner_cluster(tmp_path, [{"BOB_RUNNER_ID": runner}], env={"BOB_SECRETS_KEY": ""}) as bob:
        # The service said so at start
        assert any("no secrets key" in line for line in bob.cluster.entities.lines)
        # Storing one is refused, clearly
        r = bob.http.put("/secrets/deploy-token", json={"value": TOKEN})
        assert r.status_code == 422, r.text
        assert "no key" in r.json()["message"] and "BOB_SECRETS_KEY_FILE" in r.json()["message"]
        assert bob.http.get("/secrets").json()["message"] == []
        # A pipeline that references one cannot start, saying why
        bob.create_pipeline("sec", "uses", {**USES, "steps": [{"cmd": "true"}]})
        r = bob.http.post("/pipelines/start/groups/sec/names/uses")
        assert r.status_code == 422 and "no key" in r.json()["message"], r.text
        # Everything else works
        bob.create_pipeline("sec", "plain", {"image": IMAGE, "steps": [{"cmd": "echo fine"}]})
        run_id = bob.start("sec", "plain")
        assert bob.wait_terminal(run_id) == "passed"
        assert "fine" in bob.log_lines(run_id)
