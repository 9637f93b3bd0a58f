"""The Engine API calls of every run, sent straight over the client's pool (DirectCalls),
against the real engine: each does what the SDK's call does, answers what it answers, and
raises what it raises (NotFound with the engine's message, ConnectionError when the
engine cannot be reached)."""

from __future__ import annotations

import gc
import uuid

import docker
import docker.errors
import pytest
import requests

from runner_svc.executors.docker.client import (
    MOUNT,
    DirectCalls,
    SdkCalls,
    _OnePoolAdapter,
    engine_client,
    run_calls,
)
from runner_svc.executors.docker.entry import ENTRY
from runner_svc.executors.docker.workspace import _hang_up
from tests.support.containers import remove_quietly


@pytest.fixture
def calls(docker_client) -> DirectCalls:
    client = engine_client(max_pool_size=2)
    found = run_calls(client)
    assert isinstance(found, DirectCalls)  # the machine's engine is on a Unix socket
    yield found
    client.close()


def test_a_container_made_started_waited_for_and_removed_directly_is_as_the_sdk_sees_it(
    calls, docker_client, test_image
):
    api = docker_client.api
    name = f"bob-direct-{uuid.uuid4().hex[:8]}"
    config = api.create_container_config(
        test_image,
        None,
        entrypoint=ENTRY,
        stdin_open=True,
        labels={"bob.test": "direct"},
        host_config=api.create_host_config(network_mode="none"),
        user=None,  # dropped, as the SDK drops top-level nulls
    )
    created = calls.create_container(config, name)
    made = [docker_client.containers.get(created["Id"])]
    try:
        # Then the SDK sees what was asked for, and inspecting either way agrees
        sdk = api.inspect_container(created["Id"])
        assert sdk["Name"] == f"/{name}"
        assert sdk["Config"]["Labels"]["bob.test"] == "direct"
        assert sdk["Config"]["Entrypoint"] == ENTRY
        calls.start(created["Id"])
        assert calls.inspect_container(created["Id"])["State"]["Running"]
        calls.rename(created["Id"], f"{name}-renamed")
        assert api.inspect_container(created["Id"])["Name"] == f"/{name}-renamed"

        # The entry exits 0 once its stdin is closed without a step
        _hang_up(api.attach_socket(created["Id"], params={"stdin": 1, "stream": 1}))
        assert calls.wait(created["Id"])["StatusCode"] == 0
        calls.remove(created["Id"], force=True, v=True)
        with pytest.raises(docker.errors.NotFound):
            api.inspect_container(created["Id"])
    finally:
        remove_quietly(made)


def test_errors_are_the_sdks_with_the_engines_message(calls, docker_client):
    missing = "bob-no-such-container-" + uuid.uuid4().hex[:8]
    with pytest.raises(docker.errors.NotFound) as direct:
        calls.inspect_container(missing)
    with pytest.raises(docker.errors.NotFound) as sdk:
        docker_client.api.inspect_container(missing)
    assert direct.value.explanation == sdk.value.explanation
    assert missing in direct.value.explanation
    for call in (
        lambda: calls.rename(missing, "x"),
        lambda: calls.start(missing),
        lambda: calls.remove(missing, force=True, v=True),
    ):
        with pytest.raises(docker.errors.NotFound):
            call()
    # An answer that is no 404 is an APIError all the same (a name the engine refuses)
    with pytest.raises(docker.errors.APIError) as refused:
        calls.create_container({"Image": "busybox"}, "/not a name/")
    assert refused.value.explanation


# The SDK's Unix connection leaves its socket to the collector when connect() fails
# (docker/transport/unixconn.py), whoever sends the request.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_an_engine_that_cannot_be_reached_is_a_connection_error(tmp_path):
    client = docker.DockerClient(base_url=f"unix://{tmp_path}/none.sock", version="1.41")
    adapter = _OnePoolAdapter(f"http+unix://{tmp_path}/none.sock", timeout=5)
    try:
        calls = DirectCalls(client.api, adapter.get_connection(MOUNT))
        with pytest.raises(requests.ConnectionError):
            calls.inspect_container("anything")
    finally:
        gc.collect()  # that socket's warning, here where it is filtered
        adapter.close()
        client.close()
    # And the SDK's calls are used for an engine that is not on a Unix socket
    tcp = docker.DockerClient(base_url="tcp://127.0.0.1:9", version="1.41")
    try:
        assert isinstance(run_calls(tcp), SdkCalls)
    finally:
        tcp.close()
