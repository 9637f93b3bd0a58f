"""The Docker executor: one container per run, each step an exec inside it.

An exec costs ~50 ms where a container start costs ~250 ms, and the steps of a run share
the container's file system, which Bob's pipelines rely on. Every docker SDK call blocks,
so each runs on one of two thread pools: short API calls on one, the step output streams
(which block as long as the step runs) on the other, so a STOP's kill never waits behind
the very streams it is meant to end.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import posixpath
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import docker
import docker.errors
import requests
from docker.models.containers import Container
from docker.utils import parse_repository_tag

from bob_common.config import RunnerSettings
from bob_pb import messages_pb2
from runner_svc.errors import (
    ExecutorUnavailable,
    PrepareFailed,
    RunnerError,
    StepFailed,
    TransferFailed,
)
from runner_svc.logsink import LogSink
from runner_svc.runlog import run_logger

log = logging.getLogger(__name__)
T = TypeVar("T")

# pid 1 of every build container: idles until it is killed, in any image with a /bin/sh.
# `sleep & wait` (not a bare sleep) lets the TERM trap run at once.
KEEP_ALIVE = ["/bin/sh", "-c", "trap 'exit 0' TERM; while :; do sleep 3600 & wait $!; done"]
# Labels that find a runner's containers again, e.g. the orphans of a crashed runner.
LABEL_RUN = "bob.run_id"
LABEL_RUNNER = "bob.runner_id"
# How long an exec may still report Running after its output has ended.
EXIT_CODE_WAIT_S = 2.0
# SIGTERM to every process of the container but pid 1 (KEEP_ALIVE) and the kill itself:
# in a PID namespace, that is exactly the steps' processes. `kill` is a builtin of every
# /bin/sh.
TERMINATE = ["/bin/sh", "-c", "kill -TERM -1"]
ARCHIVE_CHUNK = 64 * 1024

# Everything the docker SDK raises when the engine refuses or cannot be reached.
DOCKER_ERRORS = (docker.errors.DockerException, requests.RequestException, OSError)


def _explain(exc: BaseException) -> str:
    explanation = getattr(exc, "explanation", None)
    return str(explanation or exc)


class DockerExecutor:
    def __init__(self, settings: RunnerSettings, client: docker.DockerClient | None = None):
        self._settings = settings
        # Made by start(): making it asks the engine its version, which may be down yet.
        self._docker = client
        self._calls = ThreadPoolExecutor(settings.capacity + 4, thread_name_prefix="docker-call")
        self._streams = ThreadPoolExecutor(settings.capacity, thread_name_prefix="docker-exec")

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._calls, functools.partial(fn, *args, **kwargs))

    async def stream(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._streams, functools.partial(fn, *args))

    @property
    def _client(self) -> docker.DockerClient:
        if self._docker is None:
            raise RuntimeError("DockerExecutor.start() has not succeeded")
        return self._docker

    async def start(self) -> None:
        try:
            if self._docker is None:
                self._docker = await self.call(
                    docker.from_env, max_pool_size=2 * self._settings.capacity + 4
                )
            await self.call(self._client.ping)
            removed = await self.call(self._remove_own_containers)
        except DOCKER_ERRORS as exc:
            raise ExecutorUnavailable(f"Docker engine: {_explain(exc)}") from exc
        if removed:
            log.warning("removed %d orphan container(s) of runner %s", removed, self._runner_id)

    @property
    def _runner_id(self) -> str:
        return self._settings.runner_id

    def _remove_own_containers(self) -> int:
        label = f"{LABEL_RUNNER}={self._runner_id}"
        containers = self._client.containers.list(all=True, filters={"label": label})
        for container in containers:
            log.info(
                "removing container %s of run %s",
                container.short_id,
                container.labels.get(LABEL_RUN, "?"),
            )
            try:
                container.remove(force=True)
            except docker.errors.NotFound:
                pass
        return len(containers)

    async def prepare(
        self, run_id: str, image: str, env: Mapping[str, str], say: Callable[[str], Awaitable[None]]
    ) -> DockerWorkspace:
        await self._ensure_image(image, say)
        try:
            container = await self.call(self._create, run_id, image, env)
        except DOCKER_ERRORS as exc:
            raise PrepareFailed(
                f"could not create a container from {image}: {_explain(exc)}"
            ) from exc
        workspace = DockerWorkspace(self, container, run_id, self._settings.workdir)
        try:
            await self.call(container.start)
        except DOCKER_ERRORS as exc:
            await workspace.remove()
            raise PrepareFailed(
                f"could not start a container from {image}: {_explain(exc)}"
            ) from exc
        run_logger(log, run_id).info("container %s started from %s", container.short_id, image)
        return workspace

    async def _ensure_image(self, image: str, say: Callable[[str], Awaitable[None]]) -> None:
        try:
            await self.call(self._client.images.get, image)
            return
        except docker.errors.ImageNotFound:
            pass
        except DOCKER_ERRORS as exc:
            raise PrepareFailed(f"could not look up image {image}: {_explain(exc)}") from exc
        await say(f"pulling image {image}")
        repository, tag = parse_repository_tag(image)
        try:
            await self.call(self._client.images.pull, repository, tag=tag or "latest")
        except DOCKER_ERRORS as exc:
            raise PrepareFailed(
                f"image {image} is not available locally and could not be pulled: "
                f"{_explain(exc)}"
            ) from exc

    def _create(self, run_id: str, image: str, env: Mapping[str, str]) -> Container:
        return self._client.containers.create(
            image,
            entrypoint=KEEP_ALIVE,
            working_dir=self._settings.workdir,
            network_mode=self._settings.network,
            environment=dict(env),
            labels={LABEL_RUN: run_id, LABEL_RUNNER: self._runner_id},
            detach=True,
        )

    async def close(self) -> None:
        """Removes what is left (which also ends any stream still being read), then waits
        for the threads and closes the client."""
        if self._docker is not None:
            try:
                await self.call(self._remove_own_containers)
            except DOCKER_ERRORS as exc:
                log.warning("could not remove containers at shutdown: %s", _explain(exc))
        await asyncio.to_thread(self._streams.shutdown)
        await asyncio.to_thread(self._calls.shutdown)
        if self._docker is not None:
            self._docker.close()


class DockerWorkspace:
    """One run's container."""

    def __init__(
        self, executor: DockerExecutor, container: Container, run_id: str, workdir: str
    ) -> None:
        self._executor = executor
        self._container = container
        self._api = container.client.api
        self._workdir = workdir
        self._log = run_logger(log, run_id)
        self._frozen = False

    async def exec(self, cmd: str, env: Mapping[str, str], output: LogSink) -> int:
        return await self._executor.stream(self._exec, cmd, env, output)

    def _exec(self, cmd: str, env: Mapping[str, str], output: LogSink) -> int:
        try:
            exec_id = self._api.exec_create(
                self._container.id,
                ["/bin/sh", "-c", cmd],
                environment=dict(env) or None,
                workdir=self._workdir,
            )["Id"]
            chunks = self._api.exec_start(exec_id, stream=True, demux=True)
            try:
                for stdout, stderr in chunks:
                    if stdout:
                        output.write(messages_pb2.STDOUT, stdout)
                    if stderr:
                        output.write(messages_pb2.STDERR, stderr)
            finally:
                # The SDK leaves the exec's socket open; closing the response closes it.
                chunks._response.close()
            return self._exit_code(exec_id)
        except DOCKER_ERRORS as exc:
            raise StepFailed(_explain(exc)) from exc
        finally:
            output.close()

    def _exit_code(self, exec_id: str) -> int:
        # The engine may still report the exec as running for a moment after its output
        # has ended.
        deadline = time.monotonic() + EXIT_CODE_WAIT_S
        while True:
            info = self._api.exec_inspect(exec_id)
            if not info.get("Running") or time.monotonic() > deadline:
                code = info.get("ExitCode")
                return -1 if code is None else int(code)
            time.sleep(0.01)

    async def kill(self) -> None:
        try:
            await self._executor.call(self._container.kill)
            self._log.info("container %s killed", self._container.short_id)
        except DOCKER_ERRORS as exc:  # already gone or stopped: the goal is reached
            self._log.debug("kill: %s", _explain(exc))

    async def terminate(self) -> None:
        try:
            if self._frozen:
                await self.resume()
            await self._executor.call(self._signal_steps)
            self._log.info("SIGTERM sent to the processes in container %s",
                           self._container.short_id)
        except (RunnerError, *DOCKER_ERRORS) as exc:  # kill() follows anyway
            self._log.warning("could not send SIGTERM: %s", _explain(exc))

    def _signal_steps(self) -> None:
        exec_id = self._api.exec_create(self._container.id, TERMINATE)["Id"]
        self._api.exec_start(exec_id)

    async def pause(self) -> None:
        try:
            await self._executor.call(self._container.pause)
        except DOCKER_ERRORS as exc:
            raise RunnerError(f"could not pause: {_explain(exc)}") from exc
        self._frozen = True

    async def resume(self) -> None:
        try:
            await self._executor.call(self._container.unpause)
        except DOCKER_ERRORS as exc:
            raise RunnerError(f"could not resume: {_explain(exc)}") from exc
        self._frozen = False

    # Transfers block as long as the bytes flow, so they run on the streams pool, like
    # the steps they alternate with: a run never does both at once.

    async def put_archive(self, archive: Callable[[], Iterator[bytes]]) -> None:
        await self._executor.stream(self._put, archive)

    def _put(self, archive: Callable[[], Iterator[bytes]]) -> None:
        failure: list[Exception] = []

        def stream() -> Iterator[bytes]:
            # The stream's own error (an unsafe entry, a plugin that failed) is the reason
            # the copy broke off, whatever the engine or HTTP library make of it.
            try:
                yield from archive()
            except Exception as exc:
                failure.append(exc)
                raise

        try:
            self._api.put_archive(self._container.id, self._workdir, stream())
        except Exception as exc:
            if failure:
                raise failure[0] from None
            if isinstance(exc, DOCKER_ERRORS):
                raise TransferFailed(
                    f"could not copy into the container: {_explain(exc)}"
                ) from exc
            raise
        if failure:
            raise failure[0]

    async def get_archive(self, path: str, consume: Callable[[Iterator[bytes]], None]) -> None:
        await self._executor.stream(self._get, path, consume)

    def _get(self, path: str, consume: Callable[[Iterator[bytes]], None]) -> None:
        full = posixpath.join(self._workdir, path)
        try:
            chunks, _ = self._api.get_archive(self._container.id, full, ARCHIVE_CHUNK)
        except docker.errors.NotFound as exc:
            raise TransferFailed(f"{path} does not exist in the working directory") from exc
        except DOCKER_ERRORS as exc:
            raise TransferFailed(f"could not read {path}: {_explain(exc)}") from exc

        def read() -> Iterator[bytes]:
            try:
                yield from chunks
            except DOCKER_ERRORS as exc:
                raise TransferFailed(f"reading {path} broke off: {_explain(exc)}") from exc

        consume(read())

    async def remove(self) -> None:
        try:
            await self._executor.call(self._container.remove, force=True)
            self._log.info("container %s removed", self._container.short_id)
        except docker.errors.NotFound:
            pass
        except DOCKER_ERRORS as exc:
            self._log.error("could not remove container %s: %s", self._container.short_id,
                            _explain(exc))
