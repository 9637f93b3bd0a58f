"""Service identities on entities' gRPC, tried from outside against real processes: the
cluster devcluster starts serves mutual TLS; a caller without a certificate of the
cluster's CA gets nowhere; each identity may call only its rpcs; a runner speaks only
for itself."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from google.protobuf import message_factory
from google.protobuf.empty_pb2 import Empty
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bob_common import pki
from bob_pb import entities_pb2, entities_pb2_grpc, messages_pb2, pipeline_pb2
from devcluster.cluster import Cluster, free_port
from entities_svc import access
from tests.conftest import fresh_vhost
from tests.waiting import wait_until

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
IMAGE = "bob-test/busybox:latest"
PIPELINE = {"image": IMAGE, "steps": [{"cmd": "echo hello"}]}


@pytest.fixture(scope="module")
def cluster(rabbitmq_available, tmp_path_factory) -> Iterator[Cluster]:
    """Entities and the API as devcluster starts them (their own CA and certificates),
    no runner: the tests call entities as runners themselves."""
    tmp = tmp_path_factory.mktemp("identity")
    with fresh_vhost() as queue_url, (tmp / "cluster.log").open("w") as sink:
        env = {
            "BOB_QUEUE_URL": queue_url,
            "BOB_DB_URL": f"sqlite:///{tmp / 'bob.db'}",
            "BOB_API_PORT": str(free_port()),
            "BOB_ENTITIES_ADDR": f"127.0.0.1:{free_port()}",
        }
        c = Cluster(env, runners=0, sink=sink)
        try:
            c.start()
            yield c
        finally:
            c.stop()


def _addr(cluster: Cluster) -> str:
    return cluster.entities.env["BOB_ENTITIES_ADDR"]


def _credentials(files: pki.CertFiles) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        files.ca.read_bytes(), files.key.read_bytes(), files.cert.read_bytes()
    )


@pytest.fixture
def as_identity(cluster) -> Iterator:
    """as_identity("tool/read") → a stub of entities over TLS, as that identity."""
    channels: list[grpc.Channel] = []

    def stub(identity: str) -> entities_pb2_grpc.EntitiesStub:
        channel = cluster.entities_channel(identity)
        channels.append(channel)
        return entities_pb2_grpc.EntitiesStub(channel)

    yield stub
    for channel in channels:
        channel.close()


@pytest.fixture
def pending_run(cluster) -> tuple[str, str]:
    """(pipeline name, id) of a run started through the API (which calls entities as
    `api`), pending: no runner takes it."""
    name = f"p-{uuid.uuid4().hex[:8]}"
    with httpx.Client(base_url=cluster.api_url, timeout=10) as http:
        assert http.post(f"/pipelines/groups/sec/names/{name}", json=PIPELINE).status_code == 202
        r = http.post(f"/pipelines/start/groups/sec/names/{name}")
    assert r.status_code == 202, r.text
    return name, r.json()["message"]


def _refused(call, *args) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call(*args, timeout=5)
    return caught.value


def _runner_id() -> str:
    return f"sec-{uuid.uuid4().hex[:8]}"


def test_a_plaintext_client_cannot_reach_tls_entities(cluster):
    with grpc.insecure_channel(_addr(cluster)) as channel:
        err = _refused(entities_pb2_grpc.EntitiesStub(channel).ListPipelines, _list())
    assert err.code() == grpc.StatusCode.UNAVAILABLE


def test_a_client_without_a_certificate_is_refused(cluster):
    ca = cluster.tls_files("tool/read").ca.read_bytes()
    with grpc.secure_channel(_addr(cluster), grpc.ssl_channel_credentials(ca)) as channel:
        err = _refused(entities_pb2_grpc.EntitiesStub(channel).ListPipelines, _list())
    assert err.code() == grpc.StatusCode.UNAVAILABLE


def test_a_certificate_from_another_ca_is_refused(cluster, tmp_path):
    # Given an attacker's own CA, and an `api` certificate it issued itself
    pki.init(tmp_path / "evil")
    forged = pki.issue(tmp_path / "evil", pki.Identity(pki.API))
    own_ca = cluster.tls_files("api").ca.read_bytes()
    creds = grpc.ssl_channel_credentials(own_ca, forged.key.read_bytes(), forged.cert.read_bytes())
    with grpc.secure_channel(_addr(cluster), creds) as channel:
        err = _refused(entities_pb2_grpc.EntitiesStub(channel).PutPipeline, _put("evil"))
    assert err.code() == grpc.StatusCode.UNAVAILABLE


def test_the_read_tool_lists_pipelines_but_cannot_write_or_claim(as_identity, pending_run):
    name, run_id = pending_run
    tool = as_identity("tool/read")

    listed = tool.ListPipelines(_list(), timeout=5).pipelines
    assert name in {p.name for p in listed}
    assert tool.GetRun(entities_pb2.RunRef(run_id=run_id), timeout=5).id == run_id

    put = _refused(tool.PutPipeline, _put(name))
    claim = _refused(tool.ClaimRun, _claim(run_id, "tool-read"))
    stop = _refused(tool.StopRun, entities_pb2.RunRef(run_id=run_id))

    for err, rpc in ((put, "PutPipeline"), (claim, "ClaimRun"), (stop, "StopRun")):
        assert err.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "tool/read" in err.details() and rpc in err.details()
    assert tool.GetRun(entities_pb2.RunRef(run_id=run_id), timeout=5).status == (
        messages_pb2.PENDING
    )


def test_the_api_identity_cannot_claim_a_run(as_identity, pending_run):
    _, run_id = pending_run
    err = _refused(as_identity("api").ClaimRun, _claim(run_id, "api"))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "api may not call ClaimRun" in err.details()


def test_a_runner_cannot_call_the_apis_writes(as_identity, pending_run):
    name, run_id = pending_run
    runner = as_identity(f"runner/{_runner_id()}")
    for call, request in (
        (runner.PutPipeline, _put(name)),
        (runner.StopRun, entities_pb2.RunRef(run_id=run_id)),
        (runner.DeletePipeline, entities_pb2.PipelineRef(group="sec", name=name)),
        (runner.ListPipelines, _list()),
    ):
        err = _refused(call, request)
        assert err.code() == grpc.StatusCode.PERMISSION_DENIED, err.details()
        assert "runner/" in err.details()


def test_a_runner_cannot_claim_as_another_runner(as_identity, pending_run):
    _, run_id = pending_run
    a, b = _runner_id(), _runner_id()
    runner_a = as_identity(f"runner/{a}")

    err = _refused(runner_a.ClaimRun, _claim(run_id, b))

    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    assert f"runner/{a}" in err.details() and repr(b) in err.details()
    # The run is still there to be claimed, by its rightful claimer
    assert runner_a.ClaimRun(_claim(run_id, a), timeout=5).claimed


def test_a_runner_cannot_renew_or_release_a_run_another_runner_holds(as_identity, pending_run):
    # Given runner B holding the run's claim
    _, run_id = pending_run
    a, b = _runner_id(), _runner_id()
    runner_a, runner_b = as_identity(f"runner/{a}"), as_identity(f"runner/{b}")
    assert runner_b.ClaimRun(_claim(run_id, b), timeout=5).claimed
    held = [entities_pb2.RunAttempt(run_id=run_id, attempt=1)]

    # When runner A renews or releases it, in B's name or in its own
    renew_as_b = _refused(
        runner_a.RenewLeases, entities_pb2.RenewLeasesRequest(runner_id=b, runs=held)
    )
    release_as_b = _refused(runner_a.ReleaseRun, _release(run_id, b))
    renew_as_a = runner_a.RenewLeases(
        entities_pb2.RenewLeasesRequest(runner_id=a, runs=held), timeout=5
    )
    release_as_a = _refused(runner_a.ReleaseRun, _release(run_id, a))

    # Then it is refused every time, and the run stays B's
    for err in (renew_as_b, release_as_b):
        assert err.code() == grpc.StatusCode.PERMISSION_DENIED
        assert f"runner/{a}" in err.details() and "only for its own" in err.details()
    assert [i.order for i in renew_as_a.instructions] == [entities_pb2.ORDER_ABANDON]
    assert release_as_a.code() == grpc.StatusCode.FAILED_PRECONDITION
    run = runner_b.GetRun(entities_pb2.RunRef(run_id=run_id), timeout=5)
    assert run.runner_id == b and run.status == messages_pb2.INITIALIZING
    assert runner_b.RenewLeases(
        entities_pb2.RenewLeasesRequest(runner_id=b, runs=held), timeout=5
    ).instructions[0].order == (entities_pb2.ORDER_RUN)


CALLERS = {
    "api": access.API,
    "tool/read": access.READ,
    "tool/admin": access.ADMIN,
    "runner/sec-matrix": access.RUNNER,
}


def test_every_identity_is_held_to_the_table_on_every_rpc(as_identity):
    # Each identity calls each rpc of bob.v1.Entities with an empty request (its own
    # runner_id where one is asked): allowed ones get past the check, whatever the
    # answer to the empty request; the others get PERMISSION_DENIED naming them.
    methods = entities_pb2.DESCRIPTOR.services_by_name["Entities"].methods
    counts = {"allowed": 0, "denied": 0}
    for identity, role in CALLERS.items():
        stub = as_identity(identity)
        for method in methods:
            request = message_factory.GetMessageClass(method.input_type)()
            if "runner_id" in method.input_type.fields_by_name:
                request.runner_id = identity.partition("/")[2]
            allowed = role in access.RULES[method.name].callers
            try:
                reply = getattr(stub, method.name)(request, timeout=5)
                if method.server_streaming:
                    next(reply)  # a stream is checked before its first message
                    reply.cancel()
                code, details = grpc.StatusCode.OK, ""
            except grpc.RpcError as err:
                code, details = err.code(), err.details()
            if allowed:
                # (The rpc itself may refuse the empty request, GetRunSecrets for one.)
                assert "may not call" not in details, (identity, method.name, details)
            else:
                assert code == grpc.StatusCode.PERMISSION_DENIED, (identity, method.name, code)
                assert f"{identity} may not call {method.name}" in details
            counts["allowed" if allowed else "denied"] += 1
    print(f"\nidentity matrix: {len(CALLERS)} identities x {len(methods)} rpcs: {counts}")
    assert counts["allowed"] and counts["denied"]


def test_only_the_api_may_watch_the_journal(as_identity, pending_run):
    # Issue 15: the journal stream holds entities' resources while it lasts: the API's
    # alone; the others are refused before any event is sent.
    request = entities_pb2.WatchEventsRequest(after_id=0)
    for identity in ("tool/read", "tool/admin", "runner/sec-watch"):
        stream = as_identity(identity).WatchEvents(request, timeout=10)
        with pytest.raises(grpc.RpcError) as refused:
            next(stream)
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert f"{identity} may not call WatchEvents (only api)" in refused.value.details()
    stream = as_identity("api").WatchEvents(request, timeout=10)
    first = next(stream)
    stream.cancel()
    assert pending_run[1] in {event.run_id for event in first.events}
    assert first.newest_id == first.events[-1].id


def test_health_checks_answer_any_caller_of_the_cluster(cluster):
    creds = _credentials(cluster.tls_files("tool/read"))
    with grpc.secure_channel(_addr(cluster), creds) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="bob.v1.Entities"), timeout=5
        )
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def _entities_process(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "entities_svc"],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_entities_refuses_plaintext_beyond_loopback(tmp_path):
    result = _entities_process(
        {
            "BOB_ENTITIES_LISTEN": f"0.0.0.0:{free_port()}",
            "BOB_DB_URL": f"sqlite:///{tmp_path / 'bob.db'}",
        }
    )
    assert result.returncode == 2
    assert "refusing to serve plaintext gRPC on 0.0.0.0:" in result.stderr
    assert "BOB_ENTITIES_ALLOW_PLAINTEXT" in result.stderr


def test_entities_serves_plaintext_beyond_loopback_only_when_told_and_says_so(tmp_path, rabbit_url):
    port = free_port()
    env = {
        **os.environ,
        "BOB_ENTITIES_LISTEN": f"0.0.0.0:{port}",
        "BOB_ENTITIES_ADDR": f"127.0.0.1:{port}",
        "BOB_ENTITIES_ALLOW_PLAINTEXT": "true",
        "BOB_DB_URL": f"sqlite:///{tmp_path / 'bob.db'}",
        "BOB_QUEUE_URL": rabbit_url,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "entities_svc"],
        cwd=ROOT,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = entities_pb2_grpc.EntitiesStub(channel)
            wait_until(lambda: _answers(stub), timeout=30, what="plaintext entities serving")
    finally:
        process.terminate()
        _, err = process.communicate(timeout=30)
    assert "PLAINTEXT gRPC on 0.0.0.0:" in err and "WARNING" in err


def _answers(stub: entities_pb2_grpc.EntitiesStub) -> bool:
    try:
        stub.GetStats(Empty(), timeout=1)
    except grpc.RpcError:
        return False
    return True


def test_a_runner_whose_id_disagrees_with_its_certificate_refuses_to_start(cluster):
    own = _runner_id()
    files = cluster.tls_files(f"runner/{own}")
    env = {
        **os.environ,
        "BOB_TLS_CA": str(files.ca),
        "BOB_TLS_CERT": str(files.cert),
        "BOB_TLS_KEY": str(files.key),
        "BOB_RUNNER_ID": "someone-else",
    }
    result = subprocess.run(
        [sys.executable, "-m", "runner_svc"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "'someone-else'" in result.stderr and f"runner/{own}" in result.stderr


def test_a_whole_run_passes_over_tls_as_the_runner_its_certificate_names(
    rabbitmq_available, docker_client, test_image, tmp_path
):
    # Given a devcluster with one runner given no BOB_RUNNER_ID: it takes its certificate's
    with fresh_vhost() as queue_url, (tmp_path / "cluster.log").open("w") as sink:
        env = {
            "BOB_QUEUE_URL": queue_url,
            "BOB_DB_URL": f"sqlite:///{tmp_path / 'bob.db'}",
            "BOB_API_PORT": str(free_port()),
            "BOB_ENTITIES_ADDR": f"127.0.0.1:{free_port()}",
            "BOB_RUNNER_ID": "",
        }
        c = Cluster(env, runners=1, sink=sink)
        expected = pki.identity_of(Path(c.runners[0].env["BOB_TLS_CERT"]).read_bytes())
        try:
            c.start()
            with httpx.Client(base_url=c.api_url, timeout=10) as http:
                # When a pipeline runs
                assert http.post("/pipelines/groups/sec/names/tls", json=PIPELINE).is_success
                run_id = http.post("/pipelines/start/groups/sec/names/tls").json()["message"]
                status = wait_until(
                    lambda: _ended(http, run_id),
                    timeout=90,
                    what="the run to end",
                    describe=lambda: (tmp_path / "cluster.log").read_text()[-3000:],
                )
                run = http.get(f"/pipelines/groups/sec/names/tls/runs/{run_id}").json()
                logs = http.get(f"/pipelines/logs/runs/{run_id}/offset/0/lines/100")
        finally:
            c.stop()
    # Then it passes, executed by the runner its certificate names, over TLS only
    assert status == "passed"
    assert "hello" in logs.json()["message"]
    assert expected.kind == pki.RUNNER
    assert run["message"]["runner-id"] == expected.name
    log = (tmp_path / "cluster.log").read_text()
    assert "mutual TLS, callers checked" in log
    assert f"runner {expected.name} " in log


def _ended(http: httpx.Client, run_id: str) -> str | None:
    status = http.get(f"/pipelines/status/runs/{run_id}").json()["message"]
    return status if status in {"passed", "failed", "stopped"} else None


def _list() -> entities_pb2.ListPipelinesRequest:
    return entities_pb2.ListPipelinesRequest()


def _put(name: str) -> entities_pb2.PutPipelineRequest:
    return entities_pb2.PutPipelineRequest(
        group="sec",
        name=name,
        pipeline=pipeline_pb2.Pipeline(image=IMAGE, steps=[pipeline_pb2.Step(cmd="id")]),
    )


def _claim(run_id: str, runner_id: str) -> entities_pb2.ClaimRunRequest:
    return entities_pb2.ClaimRunRequest(run_id=run_id, attempt=1, runner_id=runner_id)


def _release(run_id: str, runner_id: str) -> entities_pb2.ReleaseRunRequest:
    return entities_pb2.ReleaseRunRequest(run_id=run_id, attempt=1, runner_id=runner_id)
