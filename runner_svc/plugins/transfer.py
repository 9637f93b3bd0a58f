"""A run's resources in and artifacts out: the plugin looked up, the HTTP, the tar checks.

The HTTP is synchronous on purpose: each transfer runs on the worker thread that also
feeds or drains the workspace (the docker SDK blocks), so the bytes flow from socket to
socket one bounded chunk at a time and are never held whole. A run's `abort` event (set
by a stop or a timeout) ends a transfer at the next chunk.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping

import httpx

from bob_common import pipeline_rules, plugin_http
from bob_common.plugin_policy import AddressPolicy
from bob_common.plugin_urls import artifact_url, without_credentials
from runner_svc.errors import TransferFailed
from runner_svc.executors import Workspace, tarsafe
from runner_svc.plugins.directory import PluginDirectory
from runner_svc.reporting.runlog import run_logger
from runner_svc.spec import ArtifactSpec, RunSpec

log = logging.getLogger(__name__)

CHUNK = 64 * 1024
# How much of a plugin's error answer goes into the runner's log (never the run's reason).
ERROR_BODY_CHARS = 200


class Aborted(TransferFailed):
    """The run was stopped or timed out while the transfer was going on."""


def _refused(plugin: str, method: str, shown: str, response: httpx.Response) -> TransferFailed:
    """The run's reason says who answered what; the answer's body, which an internal
    service could fill with anything, goes to the runner's log only."""
    body = response.read()[:ERROR_BODY_CHARS].decode("utf-8", "replace").strip()
    log.warning("%s %s answered %d: %s", method, shown, response.status_code, body)
    return TransferFailed(f"{plugin} answered {response.status_code} {response.reason_phrase}")


def _unreachable(plugin: str, method: str, shown: str, exc: Exception) -> TransferFailed:
    """The run's reason is generic: the connection's details would tell a pipeline's
    author which internal addresses and ports answer (a port scanner)."""
    log.warning("%s %s failed: %s", method, shown, _why(exc))
    return TransferFailed(f"could not reach {plugin}")


def _why(exc: Exception) -> str:
    return str(exc) or type(exc).__name__


def _checked(chunks: Iterable[bytes], abort: threading.Event) -> Iterator[bytes]:
    for chunk in chunks:
        if abort.is_set():
            raise Aborted("aborted")
        yield chunk


def _capped(chunks: Iterable[bytes], max_bytes: int, name: str) -> Iterator[bytes]:
    """The artifact's tar stream, broken off once over `max_bytes`: the upload then ends
    without its last chunk, and the store (which keeps only complete uploads) drops it."""
    total = 0
    for chunk in chunks:
        total += len(chunk)
        if total > max_bytes:
            raise TransferFailed(
                f"artifact {name} is larger than {max_bytes} bytes, headers included "
                "(BOB_RUNNER_ARTIFACT_MAX_BYTES)"
            )
        yield chunk


class PluginHttp:
    def __init__(self, timeout_s: float, policy: AddressPolicy | None = None) -> None:
        # No overall deadline: a large archive may take long; a silent plugin may not.
        self._timeout = httpx.Timeout(timeout_s)
        self._policy = policy or AddressPolicy(allow_private=True)

    def _client(self) -> httpx.Client:
        """A client per transfer, as httpx.stream() made: it connects only where the
        policy allows (bob_common.plugin_http)."""
        return plugin_http.client(self._policy, self._timeout)

    def fetch(
        self,
        url: str,
        params: Mapping[str, str],
        abort: threading.Event,
        plugin: str = "the plugin",
    ) -> Iterator[bytes]:
        """The body of `GET url?params`, chunk by chunk; TransferFailed when the plugin
        (`plugin` names it in the reason, e.g. "resource provider 'git'") cannot be
        reached or does not answer 200."""
        shown = without_credentials(url)
        try:
            with self._client() as client, client.stream("GET", url, params=dict(params)) as r:
                if r.status_code != 200:
                    raise _refused(plugin, "GET", shown, r)
                yield from _checked(r.iter_bytes(CHUNK), abort)
        except httpx.HTTPError as exc:
            raise _unreachable(plugin, "GET", shown, exc) from exc

    def upload(
        self,
        url: str,
        chunks: Iterable[bytes],
        abort: threading.Event,
        plugin: str = "the plugin",
    ) -> None:
        """POSTs `chunks` as the body (chunked transfer encoding); TransferFailed unless
        the plugin answers 2xx."""
        shown = without_credentials(url)
        try:
            with self._client() as client:
                response = client.post(
                    url,
                    content=_checked(chunks, abort),
                    headers={"Content-Type": "application/x-tar"},
                )
        except httpx.HTTPError as exc:
            raise _unreachable(plugin, "POST", shown, exc) from exc
        if not response.is_success:
            raise _refused(plugin, "POST", shown, response)


class Transfers:
    """The transfers of one run. Raise TransferFailed with the reason."""

    def __init__(
        self,
        spec: RunSpec,
        *,
        plugins: PluginDirectory,
        http: PluginHttp,
        abort: threading.Event,
        caps: tarsafe.Caps,
        artifact_max_bytes: int,
        say: Callable[[str], Awaitable[None]],
    ) -> None:
        self._spec = spec
        self._plugins = plugins
        self._http = http
        self._abort = abort
        self._caps = caps
        self._artifact_max_bytes = artifact_max_bytes
        self._say = say
        self._placed: set[str] = set()
        self._log = run_logger(log, spec.run_id)

    async def place(self, workspace: Workspace, name: str) -> None:
        """Puts resource `name` in the workspace as <name>/, unless it is there already:
        a resource is fetched once per run."""
        if name in self._placed:
            return
        resource = self._spec.resource(name)
        assert resource is not None  # spec.problem() has checked
        source = await self._plugins.source(resource)
        await self._say(f"fetching resource {name} from {source.described}")
        http, abort, caps = self._http, self._abort, self._caps
        owner = pipeline_rules.owner(self._spec.user)  # the pipeline's user may change it

        def archive() -> Iterator[bytes]:
            fetched = http.fetch(source.url, source.params, abort, source.plugin)
            return tarsafe.rewrite(fetched, name, caps, owner=owner)

        await workspace.put_archive(archive)
        self._placed.add(name)
        self._log.info("resource %s placed", name)

    async def upload(self, workspace: Workspace, artifact: ArtifactSpec, path: str) -> None:
        """Uploads a tar of `path` (relative to the workspace, so that the workspace's
        checks keep it inside) as the artifact."""
        spec = self._spec
        store_url = await self._plugins.artifact_store(artifact.store)
        url = artifact_url(store_url, spec.group, spec.name, spec.run_id, artifact.name)
        await self._say(f"uploading artifact {artifact.name} ({path}) to store {artifact.store}")
        http, abort, limit = self._http, self._abort, self._artifact_max_bytes

        def upload(chunks: Iterator[bytes]) -> None:
            store = f"artifact store {artifact.store!r}"
            http.upload(url, _capped(chunks, limit, artifact.name), abort, store)

        await workspace.get_archive(path, upload)
        self._log.info("artifact %s uploaded", artifact.name)
