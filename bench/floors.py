"""The raw floors: the same work done directly through the docker SDK or peewee."""

from __future__ import annotations

import contextlib
import time
from concurrent.futures import ThreadPoolExecutor

import docker
import docker.errors

from bob_common.config import RunnerSettings

IMAGE = "bob-test/busybox:latest"
# The floors' containers get the network the runner gives builds by default (Docker's
# bridge, as in Bob): a floor without one would skip work that ours does.
NETWORK = RunnerSettings.from_env({}).network
# pid 1 of a container that only hosts execs: idles until it is killed.
KEEP_ALIVE = ["/bin/sh", "-c", "trap 'exit 0' TERM; while :; do sleep 3600 & wait $!; done"]


def _exec(client: docker.DockerClient, container_id: str, cmd: str) -> int:
    exec_id = client.api.exec_create(container_id, ["/bin/sh", "-c", cmd], workdir="/workspace")
    for _ in client.api.exec_start(exec_id, stream=True, demux=True):
        pass
    return client.api.exec_inspect(exec_id)["ExitCode"]


def one_container_execs(client: docker.DockerClient, cmds: list[str]) -> float:
    """One container start plus one exec per command: what the runner does, without it."""
    began = time.perf_counter()
    container = client.containers.create(
        IMAGE, entrypoint=KEEP_ALIVE, network_mode=NETWORK, working_dir="/workspace"
    )
    try:
        container.start()
        for cmd in cmds:
            _exec(client, container.id, cmd)
    finally:
        container.remove(force=True)
    return time.perf_counter() - began


def container_per_step_with_commit(client: docker.DockerClient, cmds: list[str]) -> float:
    """The other model: a container per step, committed so the next step sees its files."""
    began = time.perf_counter()
    image, made = IMAGE, []
    try:
        for cmd in cmds:
            container = client.containers.run(
                image,
                ["/bin/sh", "-c", cmd],
                detach=True,
                network_mode=NETWORK,
                working_dir="/workspace",
            )
            container.wait()
            committed = container.commit()
            container.remove(force=True)
            made.append(committed.id)
            image = committed.id
    finally:
        took = time.perf_counter() - began
        # Removing the last image prunes its untagged parents, the earlier steps' images.
        for image_id in reversed(made):
            with contextlib.suppress(docker.errors.ImageNotFound):
                client.images.remove(image_id, force=True)
    return took


def docker_run(client: docker.DockerClient, cmd: str) -> float:
    began = time.perf_counter()
    client.containers.run(IMAGE, ["/bin/sh", "-c", cmd], remove=True, network_mode=NETWORK)
    return time.perf_counter() - began


def docker_runs_per_s(client: docker.DockerClient, count: int, concurrency: int) -> float:
    began = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(lambda _: docker_run(client, "true"), range(count)))
    return count / (time.perf_counter() - began)
