"""The Engine API calls of every run (EngineCalls), against the real engine: on its Unix
socket as coroutines over aiohttp (AsyncCalls), and through the SDK on a thread pool
(SdkCalls, for an engine elsewhere). Each does what the SDK's call does, answers what it
answers, and raises what it raises: NotFound (ImageNotFound) or APIError with the engine's
message, a ConnectionError that unreachable() recognises when the engine cannot be
reached, a timeout when it does not answer; and a call after the engine went away and
came back (as after its restart) works on a new connection."""

from __future__ import annotations

import asyncio
import functools
import socket
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import docker
import docker.errors
import pytest
import requests

from bob_common import event_loop
from runner_svc.executors.docker.client import (
    DOCKER_ERRORS,
    AsyncCalls,
    EngineCalls,
    SdkCalls,
    engine_client,
    hang_up,
    run_calls,
    unreachable,
)
from runner_svc.executors.docker.entry import ENTRY
from tests.support.containers import remove_quietly
from tests.support.engine_proxy import ENGINE_SOCKET, EngineProxy

KINDS = ["async", "sdk"]


def _calls_of(kind: str, client: docker.DockerClient, pool: ThreadPoolExecutor) -> EngineCalls:
    """What DockerExecutor.start() makes (on the running loop), or the SDK's calls."""

    async def call(fn, *args, **kwargs):
        return await asyncio.get_running_loop().run_in_executor(
            pool, functools.partial(fn, *args, **kwargs)
        )

    if kind == "sdk":
        return SdkCalls(client, call)
    calls = run_calls(client, call, max_pool_size=2)
    assert isinstance(calls, AsyncCalls)  # the machine's engine is on a Unix socket
    return calls


def _run(kind: str, scenario) -> None:
    """scenario(calls, client) on the runner's own loop (uvloop), then the calls closed."""
    client = engine_client(max_pool_size=2)
    pool = ThreadPoolExecutor(2)

    async def main() -> None:
        calls = _calls_of(kind, client, pool)
        try:
            await scenario(calls, client)
        finally:
            await calls.close()

    try:
        event_loop.run(main())
    finally:
        pool.shutdown()
        client.close()


@pytest.mark.parametrize("kind", KINDS)
def test_a_container_made_started_waited_for_and_removed_is_as_the_sdk_sees_it(
    kind, docker_client, test_image
):
    api = docker_client.api
    name = f"bob-direct-{uuid.uuid4().hex[:8]}"
    made = []

    async def scenario(calls: EngineCalls, _client) -> None:
        config = api.create_container_config(
            test_image,
            None,
            entrypoint=ENTRY,
            stdin_open=True,
            labels={"bob.test": "direct"},
            host_config=api.create_host_config(network_mode="none"),
            user=None,  # dropped, as the SDK drops top-level nulls
        )
        created = await calls.create_container(config, name)
        made.append(docker_client.containers.get(created["Id"]))
        # Then the SDK sees what was asked for, and inspecting either way agrees
        sdk = api.inspect_container(created["Id"])
        assert sdk["Name"] == f"/{name}"
        assert sdk["Config"]["Labels"]["bob.test"] == "direct"
        assert sdk["Config"]["Entrypoint"] == ENTRY
        assert sdk["Image"] == await calls.image_id(test_image)
        await calls.start(created["Id"])
        assert (await calls.inspect_container(created["Id"]))["State"]["Running"]
        await calls.rename(created["Id"], f"{name}-renamed")
        assert api.inspect_container(created["Id"])["Name"] == f"/{name}-renamed"

        # The entry exits 0 once its stdin is closed without a step
        hang_up(api.attach_socket(created["Id"], params={"stdin": 1, "stream": 1}))
        assert (await calls.wait(created["Id"]))["StatusCode"] == 0
        await calls.remove(created["Id"], force=True, v=True)
        with pytest.raises(docker.errors.NotFound):
            api.inspect_container(created["Id"])

    try:
        _run(kind, scenario)
    finally:
        remove_quietly(made)


@pytest.mark.parametrize("kind", KINDS)
def test_errors_are_the_sdks_with_the_engines_message(kind, docker_client, test_image):
    missing = "bob-no-such-container-" + uuid.uuid4().hex[:8]
    image = f"bob-no-such-image-{uuid.uuid4().hex[:8]}:none"

    async def scenario(calls: EngineCalls, _client) -> None:
        with pytest.raises(docker.errors.NotFound) as direct:
            await calls.inspect_container(missing)
        with pytest.raises(docker.errors.NotFound) as sdk:
            docker_client.api.inspect_container(missing)
        assert direct.value.explanation == sdk.value.explanation
        assert missing in direct.value.explanation
        assert not isinstance(direct.value, docker.errors.ImageNotFound)
        for call in (
            lambda: calls.rename(missing, "x"),
            lambda: calls.start(missing),
            lambda: calls.remove(missing, force=True, v=True),
            lambda: calls.wait(missing),
        ):
            with pytest.raises(docker.errors.NotFound):
                await call()
        # A missing image is the SDK's ImageNotFound, which _ensure_image pulls after
        with pytest.raises(docker.errors.ImageNotFound) as no_image:
            await calls.image_id(image)
        with pytest.raises(docker.errors.ImageNotFound) as sdk_image:
            docker_client.images.get(image)
        assert no_image.value.explanation == sdk_image.value.explanation
        # An answer that is no 404 is an APIError all the same (a name the engine refuses)
        with pytest.raises(docker.errors.APIError) as refused:
            await calls.create_container({"Image": test_image}, "/not a name/")
        assert not isinstance(refused.value, docker.errors.NotFound)
        assert "Invalid container name" in refused.value.explanation
        assert isinstance(refused.value, DOCKER_ERRORS)

    _run(kind, scenario)


def test_an_engine_that_cannot_be_reached_is_a_connection_error(tmp_path):
    async def scenario() -> None:
        calls = AsyncCalls(f"{tmp_path}/none.sock", "1.41", timeout=5, max_pool_size=2)
        try:
            for call in (lambda: calls.image_id("busybox"), lambda: calls.inspect_container("x")):
                with pytest.raises(requests.ConnectionError) as failed:
                    await call()
                # What the executor reads as "not the run's fault": back to the queue
                assert isinstance(failed.value, DOCKER_ERRORS) and unreachable(failed.value)
                assert "none.sock" in str(failed.value)
        finally:
            await calls.close()

    event_loop.run(scenario())
    # And the SDK's calls are used for an engine that is not on a Unix socket
    tcp = docker.DockerClient(base_url="tcp://127.0.0.1:9", version="1.41")
    try:
        assert isinstance(run_calls(tcp, None, max_pool_size=2), SdkCalls)
    finally:
        tcp.close()


def test_a_call_the_engine_does_not_answer_times_out_but_a_wait_does_not(tmp_path):
    """The client's timeout bounds every call but wait(), which lasts as long as a build
    and ends only when cancelled (or the container stops)."""
    path = tmp_path / "silent.sock"
    silent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    silent.bind(str(path))
    silent.listen(8)  # connections are queued, never answered

    async def scenario() -> None:
        calls = AsyncCalls(str(path), "1.41", timeout=0.5, max_pool_size=4)
        try:
            started = time.monotonic()
            with pytest.raises(requests.Timeout) as late:
                await calls.inspect_container("x")
            assert 0.4 < time.monotonic() - started < 30
            assert isinstance(late.value, DOCKER_ERRORS)

            waiting = asyncio.ensure_future(calls.wait("x"))
            await asyncio.sleep(2)  # four times the timeout
            assert not waiting.done()
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
        finally:
            await calls.close()

    try:
        event_loop.run(scenario())
    finally:
        silent.close()
    print("direct calls: a silent engine's call timed out after 0.5 s; its wait ran 2 s")


def test_calls_work_again_once_an_engine_that_went_away_is_back(tmp_path):
    """As after dockerd's restart: the kept connections are dead, the calls meanwhile
    fail as unreachable, and the first call after its return opens a new connection."""
    proxy = EngineProxy(tmp_path / "engine.sock")
    proxy.up()
    version = docker.APIClient(base_url=f"unix://{ENGINE_SOCKET}", version="auto")
    api_version = version.api_version
    version.close()
    missing = "bob-no-such-container-" + uuid.uuid4().hex[:8]

    async def scenario() -> None:
        calls = AsyncCalls(str(proxy.path), api_version, timeout=10, max_pool_size=2)
        try:
            # Given calls that kept their connections open
            await asyncio.gather(*(_missing(calls, missing) for _ in range(2)))
            # When the engine goes away, a call cannot reach it
            proxy.down()
            with pytest.raises(requests.ConnectionError) as away:
                await calls.inspect_container(missing)
            assert unreachable(away.value)
            # And once it is back, every call is answered again (POST too, never retried)
            proxy.up()
            await _missing(calls, missing)
            with pytest.raises(docker.errors.NotFound):
                await calls.start(missing)
        finally:
            await calls.close()

    try:
        event_loop.run(scenario())
    finally:
        proxy.down()


async def _missing(calls: EngineCalls, container: str) -> None:
    with pytest.raises(docker.errors.NotFound):
        await calls.inspect_container(container)
