"""The Docker executor: one container per run, each step an exec inside it but the last,
which the container's own entry runs (entry.py).

An exec costs ~50 ms where a container start costs ~250 ms, and the steps of a run share
the container's file system, which Bob's pipelines rely on. The calls every run makes
(its image, and inspect, rename, create, start, wait and remove of its container) are
awaited on the loop (client.EngineCalls). Every other docker SDK call blocks, so each runs
on one of two thread pools: short API calls on one, the step output streams and archive
transfers (which block as long as they last) on the other, so a STOP's kill never waits
behind the very streams it is meant to end. workspace.py has what is done in one run's
container.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import docker
import docker.errors
from docker.models.containers import Container
from docker.types import LogConfig
from docker.utils import parse_repository_tag

from bob_common.config import RunnerSettings
from runner_svc.errors import ExecutorUnavailable, PrepareFailed, StepFailed
from runner_svc.executors.docker import limits as docker_limits
from runner_svc.executors.docker.client import (
    DOCKER_ERRORS,
    EngineCalls,
    engine_client,
    explain,
    run_calls,
    unreachable,
)
from runner_svc.executors.docker.entry import ENTRY
from runner_svc.executors.docker.spares import STALE_S, SparePool, run_container_name
from runner_svc.executors.docker.workspace import DockerWorkspace
from runner_svc.reporting.runlog import run_logger
from runner_svc.spec import NO_LIMITS, Limits

log = logging.getLogger(__name__)
T = TypeVar("T")

# Labels that find a runner's containers again, e.g. the orphans of a crashed runner.
LABEL_RUN = "bob.run_id"
LABEL_RUNNER = "bob.runner_id"
LABEL_ATTEMPT = "bob.attempt"
# The entities address the runner works for: the orphan sweep asks that entities about a
# container only if the container was made for it, so two deployments (or two test
# clusters) sharing an engine never take each other's containers for orphans.
LABEL_ENTITIES = "bob.entities"
# On a spare container (spares.py): when it was made, in seconds since the epoch.
LABEL_SPARE = "bob.spare"
# A spare taken by a run is renamed after it (run_container_name): "/bob-<run>-a<attempt>".
_RUN_NAME = re.compile(r"^/?bob-(r-[0-9a-f-]+)-a(\d+)$")
# The longest the engine check waits for the engine's answer.
ENGINE_PING_TIMEOUT_S = 5.0


class DockerExecutor:
    def __init__(self, settings: RunnerSettings, client: docker.DockerClient | None = None):
        self._settings = settings
        # Made by start(): making it asks the engine its version, which may be down yet.
        self._docker = client
        # The engine's node's cores, which quotas are fractions of, and its memory, the
        # ceiling of a run's unless the runner sets one; asked by start().
        self._cores = os.cpu_count() or 1
        self._mem_total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        self._calls = ThreadPoolExecutor(settings.capacity + 4, thread_name_prefix="docker-call")
        self._streams = ThreadPoolExecutor(settings.capacity, thread_name_prefix="docker-exec")
        self._spares = (
            SparePool(self._make_spare, self.discard, per_image=2, max_images=settings.capacity)
            if settings.spare_containers
            else None
        )
        # What the last engine check found; "" while the engine answers.
        self._engine_problem = ""
        # The calls each run makes, on the event loop where they can be (client.py); made
        # by start(), on the loop the runner runs on, and closed by close().
        self._run_calls: EngineCalls | None = None

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
            # As many connections as calls can be made at once on the two pools (and, for
            # the run calls' own pool, more than the runs' waits, one each, can hold).
            pool_size = 2 * self._settings.capacity + 4
            if self._docker is None:
                self._docker = await self.call(engine_client, max_pool_size=pool_size)
            if self._run_calls is None:
                self._run_calls = run_calls(self._client, self.call, pool_size, self.stream)
            await self.call(self._client.ping)
            # The engine's count, not this host's: the runner may drive a remote engine.
            info = await self.call(self._client.info)
            self._cores = int(info.get("NCPU") or self._cores)
            self._mem_total = int(info.get("MemTotal") or self._mem_total)
            removed = await self.call(self._remove_own_containers)
        except DOCKER_ERRORS as exc:
            raise ExecutorUnavailable(f"Docker engine: {explain(exc)}") from exc
        if removed:
            log.warning("removed %d orphan container(s) of runner %s", removed, self._runner_id)

    @property
    def _calls_of_runs(self) -> EngineCalls:
        if self._run_calls is None:
            raise RuntimeError("DockerExecutor.start() has not succeeded")
        return self._run_calls

    @property
    def _runner_id(self) -> str:
        return self._settings.runner_id

    def _remove_own_containers(self) -> int:
        label = f"{LABEL_RUNNER}={self._runner_id}"
        # Sparse: the list alone, without inspecting each container, which an engine in
        # trouble with one of them may never answer.
        containers = self._client.containers.list(all=True, filters={"label": label}, sparse=True)
        for container in containers:
            log.info(
                "removing container %s of run %s",
                container.short_id,
                (container.attrs.get("Labels") or {}).get(LABEL_RUN, "?"),
            )
            try:
                container.remove(force=True, v=True)
            except docker.errors.NotFound:
                pass
        return len(containers)

    async def prepare(
        self,
        run_id: str,
        image: str,
        env: Mapping[str, str],
        say: Callable[[str], Awaitable[None]],
        *,
        attempt: int,
        limits: Limits = NO_LIMITS,
        user: str = "",
    ) -> DockerWorkspace:
        try:
            limits = self._limits_for(limits)
        except docker_limits.OverCeiling as exc:
            raise PrepareFailed(str(exc)) from None
        image_id = await self._ensure_image(image, say)
        rlog = run_logger(log, run_id)
        fields = docker_limits.host_config(limits, self._cores)
        kind = (image, user)
        container = await self._take_spare(run_id, attempt, kind, image_id, fields)
        if container is None:
            container = await self._start_new(run_id, attempt, kind, fields)
            rlog.info("container %s started from %s", container.short_id, image)
        else:
            rlog.info("container %s (a spare) taken for %s", container.short_id, image)
        if self._spares is not None:
            self._spares.replenish(kind, image_id)  # for the next run of the image
        workspace = DockerWorkspace(
            self,
            container,
            run_id,
            self._settings.workdir,
            env,
            memory=limits.mem_bytes,
            user=user,
            calls=self._calls_of_runs,
        )
        if user:
            try:
                await workspace.give_to_user()
            except StepFailed as exc:
                await workspace.remove()
                raise PrepareFailed(str(exc)) from None
        return workspace

    def _limits_for(self, limits: Limits) -> Limits:
        return docker_limits.runner_for(limits, self._settings, self._cores, self._mem_total)

    async def _take_spare(
        self,
        run_id: str,
        attempt: int,
        kind: tuple[str, str],
        image_id: str,
        limits: dict[str, int],
    ) -> Container | None:
        """A spare of the image and user renamed after the run and, when the run's quotas
        differ from the runner's defaults, held to them. A spare is made with the defaults
        and no process has been in it but its idle entry, so updating it is as good as
        creating the container with the run's limits, at ~10 ms of the engine's time where
        a start costs ~200 ms."""
        if self._spares is None:
            return None
        rlog = run_logger(log, run_id)
        while True:
            container = await self._spares.take(kind, image_id)
            if container is None:
                return None
            if await self._running(container):
                break
            # E.g. killed by the engine's restart: its last step would wait on it for ever.
            rlog.warning("spare %s is not running any more: dropped", container.short_id)
            await self.discard(container)
        try:
            await self._calls_of_runs.rename(container.id, run_container_name(run_id, attempt))
            if limits != self._spare_limits():
                for warning in await self.call(
                    docker_limits.update, self._client.api, container.id, limits
                ):
                    rlog.warning("limits of container %s: %s", container.short_id, warning)
        except DOCKER_ERRORS as exc:
            # E.g. swept meanwhile, or limits the engine refuses: the run starts one of its
            # own, whose creation says why if it fails too.
            rlog.warning("could not take spare %s: %s", container.short_id, explain(exc))
            await self.discard(container)
            return None
        return container

    def _spare_limits(self) -> dict[str, int]:
        """The HostConfig limits a spare is made with: the runner's defaults."""
        return docker_limits.host_config(self._limits_for(NO_LIMITS), self._cores)

    async def _running(self, container: Container) -> bool:
        try:
            state = (await self._calls_of_runs.inspect_container(container.id))["State"]
        except DOCKER_ERRORS:
            return False
        return bool(state.get("Running")) and not state.get("Paused")

    async def engine_problem(self) -> str:
        problem = ""
        try:
            await self.call(self._ping)
        except DOCKER_ERRORS as exc:
            problem = f"Docker engine unreachable: {explain(exc)}"
        if self._engine_problem and not problem:
            log.warning("the Docker engine answers again; taking jobs again")
            if self._spares is not None:
                # Started before the engine went away: stopped with it, or soon swept.
                await self._spares.close()
        elif problem and not self._engine_problem:
            log.error("%s; taking no jobs until it is back", problem)
        self._engine_problem = problem
        return problem

    def _ping(self) -> None:
        # Bounded: an engine that accepts connections but does not answer is as unusable
        # as one that refuses them, and the SDK's own timeout is a minute.
        api = self._client.api
        api.get(api.base_url + "/_ping", timeout=ENGINE_PING_TIMEOUT_S).raise_for_status()

    async def _start_new(
        self, run_id: str, attempt: int, kind: tuple[str, str], limits: dict[str, int]
    ) -> Container:
        image, user = kind
        labels = {LABEL_RUN: run_id, LABEL_ATTEMPT: str(attempt)}
        try:
            container = await self._create(
                image, labels, run_container_name(run_id, attempt), limits, user
            )
        except DOCKER_ERRORS as exc:
            raise PrepareFailed(
                f"could not create a container from {image}: {explain(exc)}"
            ) from exc
        try:
            await self._calls_of_runs.start(container.id)
        except DOCKER_ERRORS as exc:
            await self.discard(container)
            raise PrepareFailed(
                f"could not start a container from {image}: {explain(exc)}"
            ) from exc
        return container

    async def _make_spare(self, kind: tuple[str, str]) -> Container:
        image, user = kind
        name = f"bob-spare-{self._runner_id}-{uuid.uuid4().hex[:8]}"
        labels = {LABEL_SPARE: str(int(time.time()))}
        container = await self._create(image, labels, name, self._spare_limits(), user)
        try:
            await self._calls_of_runs.start(container.id)
        except BaseException:
            await self.discard(container)
            raise
        return container

    async def discard(self, container: Container) -> bool:
        """Removes the container, running or not; False (logged) when the engine refused.
        One already gone counts as removed, and so do its anonymous volumes (an image's
        VOLUME), which would otherwise stay behind."""
        try:
            await self._calls_of_runs.remove(container.id, force=True, v=True)
        except docker.errors.NotFound:
            pass
        except DOCKER_ERRORS as exc:
            log.error("could not remove container %s: %s", container.short_id, explain(exc))
            return False
        return True

    async def _ensure_image(self, image: str, say: Callable[[str], Awaitable[None]]) -> str:
        """The image's id, pulled first when missing."""
        try:
            return await self._calls_of_runs.image_id(image)
        except docker.errors.ImageNotFound:
            pass
        except DOCKER_ERRORS as exc:
            if unreachable(exc):
                # Not the run's fault: it goes back to the queue, for a runner whose engine
                # answers (jobs/consumer.py).
                raise ExecutorUnavailable(f"Docker engine unreachable: {explain(exc)}") from exc
            raise PrepareFailed(f"could not look up image {image}: {explain(exc)}") from exc
        await say(f"pulling image {image}")
        repository, tag = parse_repository_tag(image)
        try:
            pulled = await self.call(self._client.images.pull, repository, tag=tag or "latest")
        except DOCKER_ERRORS as exc:
            raise PrepareFailed(
                f"image {image} is not available locally and could not be pulled: {explain(exc)}"
            ) from exc
        # A tag's pull gives one image; pulling every tag of a repository gives a list.
        return (pulled[0] if isinstance(pulled, list) else pulled).id

    async def _create(
        self,
        image: str,
        labels: dict[str, str],
        name: str,
        limits: dict[str, int] | None = None,
        user: str = "",
    ) -> Container:
        # The low-level call: the SDK's containers.create() inspects the new container
        # afterwards, for attributes the runner never reads.
        api = self._client.api
        host_config = api.create_host_config(
            network_mode=self._settings.network,
            # Only the last step writes to the container's own output, which the
            # runner reads as it comes: an engine's copy would be work for nothing.
            log_config=LogConfig(type=LogConfig.types.NONE),
            # No process of a build gains privileges (setuid binaries, file capabilities),
            # and it keeps only the capabilities builds need (config.BUILD_CAPS).
            security_opt=["no-new-privileges"],
            cap_drop=["ALL"],
            cap_add=list(self._settings.container_caps),
        )
        host_config.update(limits or {})  # the Engine API's own field names
        config = api.create_container_config(
            image,
            None,
            entrypoint=ENTRY,
            stdin_open=True,  # the entry reads the last step from it
            # No variables: the pipeline's go with each step, so a spare suits any run
            # (but the proxies of the Docker client's config, as the SDK's create gives).
            environment=api._proxy_configs.inject_proxy_environment(None) or None,
            working_dir=self._settings.workdir,
            # The pipeline's user (pid 1, the last step and every exec), else the image's.
            user=user or None,
            labels={
                LABEL_RUNNER: self._runner_id,
                LABEL_ENTITIES: self._settings.common.entities_addr,
                **labels,
            },
            host_config=host_config,
        )
        created = await self._calls_of_runs.create_container(config, name)
        return self._client.containers.prepare_model({"Id": created["Id"]})

    async def sweep(self, orphaned: Callable[[str, int | None], Awaitable[bool]]) -> int:
        entities = f"{LABEL_ENTITIES}={self._settings.common.entities_addr}"
        try:
            # Sparse, as in _remove_own_containers; labels and names come with the list.
            containers = await self.call(
                self._client.containers.list,
                all=True,
                sparse=True,
                filters={"label": [entities]},
            )
        except DOCKER_ERRORS as exc:
            log.warning("could not list containers for the orphan sweep: %s", explain(exc))
            return 0
        removed = 0
        for container in containers:
            labels = container.attrs.get("Labels") or {}
            runner = labels.get(LABEL_RUNNER, "?")
            run_id, attempt = _run_of(container)
            if run_id:  # started for a run, or a spare a run took: the run decides
                if not await orphaned(run_id, attempt):
                    continue
                run_logger(log, run_id).warning(
                    "removing orphan container %s (attempt %s, runner %s)",
                    container.short_id,
                    attempt or "?",
                    runner,
                )
            else:
                # A spare nobody took: ours are in the pool, another's go once stale.
                made = labels.get(LABEL_SPARE, "")
                if runner == self._runner_id or not made.isdigit():
                    continue
                if time.time() - int(made) < STALE_S:
                    continue
                log.info(
                    "removing stale spare container %s of runner %s", container.short_id, runner
                )
            removed += await self.discard(container)
        return removed

    async def close(self) -> None:
        """Removes what is left (which also ends any stream still being read), then waits
        for the threads and closes the client."""
        if self._spares is not None and self._docker is not None:
            await self._spares.close()
        if self._docker is not None:
            try:
                await self.call(self._remove_own_containers)
            except DOCKER_ERRORS as exc:
                log.warning("could not remove containers at shutdown: %s", explain(exc))
        await asyncio.to_thread(self._streams.shutdown)
        await asyncio.to_thread(self._calls.shutdown)
        if self._run_calls is not None:
            await self._run_calls.close()
        if self._docker is not None:
            self._docker.close()


def _run_of(container: Container) -> tuple[str, int | None]:
    """(run id, attempt) of a run's container, from its labels or, for a spare it took,
    its name; ("", None) for neither."""
    labels = container.attrs.get("Labels") or {}
    if run_id := labels.get(LABEL_RUN):
        attempt = labels.get(LABEL_ATTEMPT, "")
        return run_id, int(attempt) if attempt.isdigit() else None
    for name in container.attrs.get("Names") or []:
        if found := _RUN_NAME.match(name):
            return found.group(1), int(found.group(2))
    return "", None
