"""Bob's Terraform provider (bob-cd/terraform-provider), re-enacted over HTTP: what it sends
for create, read, update and delete of `bob_pipeline`, `bob_resource_provider` and
`bob_artifact_store`, and how it decides that Bob has converged.

From provider.go, common/ops.go, common/crud.go, pipeline/resource.go, pipeline/schema.go:

- The provider is configured with `url` (BOB_URL, default http://localhost:7777),
  `timeout` ms (10000), `reconcile_retries` (10) and `reconcile_interval` ms (1000).
  It sends no token: the only credentials it can carry are in the URL's user-info, which
  Go's client turns into `Authorization: Basic ...`.
- Every write ignores the HTTP status it gets back; success is decided only by the
  reconcile loop (`WaitForCondition`: up to `retries` checks, `interval` apart, then
  "timeout").
- Resource providers and artifact stores: `POST {url}/{entity}s/{name}` with exactly
  `{"url":"<url>"}`; reconciled by `GET {url}/{entity}s` (no filter) decoded as
  `map[string][]map[string]string` (any non-string value in any item, or any top-level
  key that is not a list of objects, fails the decoding, hence the check) until an item
  has that name and url. Read sets name and url from the item whose name is the id
  (nothing when there is none). Delete: `DELETE {url}/{entity}s/{name}`, then waits for
  the pair to be gone.
- Pipelines: `write` takes `data.Get` of image, step, vars and resource: every field of
  the schema present, unset ones with their zero value (`needs_resource: ""`,
  `produces_artifact: []`, `params: {}`, `vars: {}`, `resources: []`); each step's
  produces_artifact list is unwrapped to its one object or removed when empty; the map
  is json.Marshal'ed (keys sorted, compact) and POSTed to
  `{url}/pipelines/groups/{group}/names/{name}`. The reconcile loop then GETs
  `{url}/pipelines?group=&name=`, decodes `map[string][]map[string]any`, and needs the
  first item to be reflect.DeepEqual to what was sent plus group and name: nothing more,
  nothing less. Read wraps produces_artifact back into a list and `data.Set`s group,
  name, image, vars, resource and step from that item; a value the schema cannot hold
  (an unknown key in a step, a non-string var) makes that Set fail, and read ignores the
  failure, leaving the old state. Delete: `DELETE .../groups/{group}/names/{name}`, then
  waits until the list is empty ("no such pipeline").
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from tests.clients import golang
from tests.clients.golang import GoError

GO_HEADERS = {"User-Agent": "Go-http-client/1.1", "Accept-Encoding": "gzip"}


class TerraformError(Exception):
    """A diagnostic: `terraform apply` (or plan) stops with it."""


# ---------------------------------------------------------------- configuration (HCL)


@dataclass(frozen=True)
class Artifact:
    name: str
    path: str
    store: str


@dataclass(frozen=True)
class Step:
    cmd: str
    needs_resource: str | None = None
    produces_artifact: Artifact | None = None


@dataclass(frozen=True)
class Resource:
    name: str
    type: str
    provider: str
    params: dict[str, str] | None = None


@dataclass(frozen=True)
class Pipeline:
    """A `resource "bob_pipeline"` block."""

    group: str
    name: str
    image: str
    steps: tuple[Step, ...]
    vars: dict[str, str] | None = None
    resources: tuple[Resource, ...] = ()


@dataclass(frozen=True)
class Plugin:
    """A `resource "bob_resource_provider"` or `"bob_artifact_store"` block."""

    name: str
    url: str


RESOURCE_PROVIDER = "resource-provider"
ARTIFACT_STORE = "artifact-store"


# ---------------------------------------------------------------- data.Get and the body


def data_get(pipeline: Pipeline) -> dict[str, Any]:
    """What `data.Get` yields for each attribute: every schema field, zero when unset."""
    return {
        "group": pipeline.group,
        "name": pipeline.name,
        "image": pipeline.image,
        "vars": dict(pipeline.vars or {}),
        "resource": [
            {"name": r.name, "type": r.type, "provider": r.provider, "params": dict(r.params or {})}
            for r in pipeline.resources
        ],
        "step": [
            {
                "cmd": s.cmd,
                "needs_resource": s.needs_resource or "",
                "produces_artifact": (
                    [
                        {
                            "name": s.produces_artifact.name,
                            "path": s.produces_artifact.path,
                            "store": s.produces_artifact.store,
                        }
                    ]
                    if s.produces_artifact
                    else []
                ),
            }
            for s in pipeline.steps
        ],
    }


def _unwrap(attrs: dict[str, Any]) -> dict[str, Any]:
    for step in attrs["steps"]:
        produced = step["produces_artifact"]
        if produced:
            step["produces_artifact"] = produced[0]
        else:
            del step["produces_artifact"]
    return attrs


def pipeline_attrs(pipeline: Pipeline) -> dict[str, Any]:
    """pipeline/resource.go `write`: the map that is POSTed."""
    got = data_get(pipeline)
    return _unwrap(
        {
            "image": got["image"],
            "steps": got["step"],
            "vars": got["vars"],
            "resources": got["resource"],
        }
    )


def pipeline_body(pipeline: Pipeline) -> bytes:
    """The exact bytes of the pipeline POST (json.Marshal: sorted keys, compact)."""
    return golang.marshal(pipeline_attrs(pipeline)).encode()


def plugin_body(plugin: Plugin) -> bytes:
    return golang.marshal({"url": plugin.url}).encode()


# ---------------------------------------------------------------- the provider


@dataclass
class Exchange:
    method: str
    url: str
    body: bytes | None
    status: int | None = None
    response: bytes = b""
    error: str | None = None

    def __str__(self) -> str:
        sent = "" if self.body is None else f" body={self.body[:800]!r}"
        got = (
            f" -> {self.status} {self.response[:800]!r}"
            if self.status is not None
            else f" -> {self.error}"
        )
        return f"{self.method} {self.url}{sent}{got}"


@dataclass
class ReadResult:
    """The state after a read, and the `data.Set` failures read ignored."""

    state: dict[str, Any]
    set_errors: list[str] = field(default_factory=list)


class Provider:
    """The configured provider: `url` may carry user-info (Basic credentials)."""

    def __init__(
        self,
        url: str = "http://localhost:7777",
        *,
        timeout_ms: int = 10000,
        reconcile_retries: int = 10,
        reconcile_interval_ms: int = 1000,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url
        self.retries = reconcile_retries
        self.interval_s = reconcile_interval_ms / 1000
        self.sleep = sleep
        self.exchanges: list[Exchange] = []
        parts = urlsplit(url)
        self._auth: dict[str, str] = {}
        if parts.username is not None:
            token = f"{parts.username}:{parts.password or ''}".encode()
            self._auth = {"Authorization": "Basic " + base64.b64encode(token).decode()}
        host = parts.hostname or ""
        netloc = host + (f":{parts.port}" if parts.port else "")
        self._base = urlunsplit((parts.scheme, netloc, parts.path, "", ""))
        self.client = httpx.Client(
            timeout=timeout_ms / 1000, follow_redirects=True, transport=transport
        )
        self.client.headers.clear()
        self.client.headers.update(GO_HEADERS)

    def close(self) -> None:
        self.client.close()

    def report(self, last: int = 12) -> str:
        return "\n".join(f"  {e}" for e in self.exchanges[-last:])

    # ------------------------------------------------------------ HTTP

    def _do(self, method: str, path: str, body: bytes | None = None) -> Exchange:
        url = f"{self._base}{path}"
        exchange = Exchange(method, f"{self.url}{path}", body)
        self.exchanges.append(exchange)
        headers = dict(self._auth)
        if body is not None:
            headers["Content-Type"] = "application/json"
        try:
            response = self.client.request(method, url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            exchange.error = f"{type(exc).__name__}: {exc}"
            raise GoError(f'{method.title()} "{exchange.url}": {exc}') from None
        exchange.status, exchange.response = response.status_code, response.content
        return exchange

    def _wait(self, condition: Callable[[], bool]) -> None:
        """WaitForCondition."""
        for _ in range(self.retries):
            if condition():
                return
            self.sleep(self.interval_s)
        raise TerraformError("timeout")

    # ------------------------------------------------------------ plugins

    def _fetch_all(self, entity: str) -> list[dict[str, str]]:
        exchange = self._do("GET", f"/{entity}s")
        decoded = golang.decode_into(
            golang.decode_first(exchange.response),
            golang.Map(golang.Slice(golang.Map(golang.STRING))),
        )
        return list((decoded or {}).get("message") or [])

    def _present(self, entity: str, plugin: Plugin) -> bool:
        try:
            items = self._fetch_all(entity)
        except GoError:
            return False
        return any(
            (i or {}).get("name") == plugin.name and (i or {}).get("url") == plugin.url
            for i in items
        )

    def create_plugin(self, entity: str, plugin: Plugin) -> dict[str, Any]:
        """CreateResource: POST, reconcile, SetId(name), read. Returns the state."""
        try:
            self._do("POST", f"/{entity}s/{plugin.name}", plugin_body(plugin))
        except GoError as exc:
            raise TerraformError(str(exc)) from None
        self._wait(lambda: self._present(entity, plugin))
        state = {"id": plugin.name, "name": plugin.name, "url": plugin.url}
        return self.read_plugin(entity, state)

    def read_plugin(self, entity: str, state: dict[str, Any]) -> dict[str, Any]:
        """ReadResource: name and url of the listed item whose name is the id."""
        try:
            items = self._fetch_all(entity)
        except GoError as exc:
            raise TerraformError(str(exc)) from None
        state = dict(state)
        for item in items:
            if (item or {}).get("name") == state["id"]:
                state["url"], state["name"] = item.get("url", ""), item.get("name", "")
        return state

    def delete_plugin(self, entity: str, state: dict[str, Any]) -> None:
        plugin = Plugin(state["name"], state["url"])
        try:
            self._do("DELETE", f"/{entity}s/{plugin.name}")
        except GoError as exc:
            raise TerraformError(str(exc)) from None
        self._wait(lambda: not self._present(entity, plugin))

    # ------------------------------------------------------------ pipelines

    def _fetch_pipeline(self, group: str, name: str) -> dict[str, Any]:
        query = golang.values_encode({"group": group, "name": name})
        exchange = self._do("GET", f"/pipelines?{query}")
        decoded = golang.decode_into(
            golang.decode_first(exchange.response), golang.Map(golang.Slice(golang.Map(golang.ANY)))
        )
        pipelines = (decoded or {}).get("message") or []
        if not pipelines:
            raise GoError("no such pipeline")
        return pipelines[0]

    def converged(self, expected: dict[str, Any]) -> bool:
        """ReconcilePipeline's condition."""
        try:
            found = self._fetch_pipeline(expected["group"], expected["name"])
        except GoError:
            return False
        return golang.deep_equal(found, expected)

    def write_pipeline(self, pipeline: Pipeline) -> dict[str, Any]:
        """`write`: POST, then reconcile until the first listed item is what was sent
        plus group and name. Returns that expected item."""
        attrs = pipeline_attrs(pipeline)
        body = golang.marshal(attrs).encode()
        try:
            self._do("POST", f"/pipelines/groups/{pipeline.group}/names/{pipeline.name}", body)
        except GoError as exc:
            raise TerraformError(str(exc)) from None
        expected = {**attrs, "group": pipeline.group, "name": pipeline.name}
        try:
            self._wait(lambda: self.converged(expected))
        except TerraformError:
            raise TerraformError(self._pipeline_drift(expected)) from None
        return expected

    def _pipeline_drift(self, expected: dict[str, Any]) -> str:
        try:
            found = self._fetch_pipeline(expected["group"], expected["name"])
        except GoError as exc:
            return f"timeout (the pipeline list: {exc})"
        where = "; ".join(golang.differences(found, expected)) or "no difference"
        return f"timeout: the first listed item never equalled what was sent: {where}"

    def create_pipeline(self, pipeline: Pipeline) -> ReadResult:
        """create: write, SetId("group:name"), read (the read's error is ignored)."""
        self.write_pipeline(pipeline)
        state = {"id": f"{pipeline.group}:{pipeline.name}", **data_get(pipeline)}
        return self.read_pipeline(state)

    def update_pipeline(self, pipeline: Pipeline, state: dict[str, Any]) -> ReadResult:
        self.write_pipeline(pipeline)
        return self.read_pipeline({**state, **data_get(pipeline)})

    def read_pipeline(self, state: dict[str, Any]) -> ReadResult:
        """read: fetch, wrap produces_artifact, data.Set each attribute."""
        try:
            found = self._fetch_pipeline(state["group"], state["name"])
        except GoError as exc:
            if str(exc) == "no such pipeline":
                return ReadResult(dict(state))
            raise TerraformError(str(exc)) from None
        for step in found.get("steps") or []:
            if isinstance(step, dict):
                step["produces_artifact"] = (
                    [step["produces_artifact"]] if "produces_artifact" in step else []
                )
        result = ReadResult(dict(state))
        attributes = {
            "group": found.get("group"),
            "name": found.get("name"),
            "image": found.get("image"),
            "vars": found.get("vars", {}),
            "resource": found.get("resources", []),
            "step": found.get("steps"),
        }
        for key, value in attributes.items():
            try:
                result.state[key] = _set(PIPELINE_SCHEMA[key], value, [key])
            except GoError as exc:
                result.set_errors.append(f"data.Set({key!r}): {exc}")
        return result

    def delete_pipeline(self, state: dict[str, Any]) -> None:
        group, name = state["group"], state["name"]
        try:
            self._do("DELETE", f"/pipelines/groups/{group}/names/{name}")
        except GoError as exc:
            raise TerraformError(str(exc)) from None

        def gone() -> bool:
            try:
                self._fetch_pipeline(group, name)
            except GoError as exc:
                return str(exc) == "no such pipeline"
            return False

        self._wait(gone)


# ---------------------------------------------------------------- the schema, for data.Set


STRING, MAP_OF_STRING = "string", "map"
ARTIFACT_SCHEMA = {"name": STRING, "path": STRING, "store": STRING}
STEP_SCHEMA = {"cmd": STRING, "needs_resource": STRING, "produces_artifact": [ARTIFACT_SCHEMA]}
RESOURCE_SCHEMA = {"name": STRING, "type": STRING, "provider": STRING, "params": MAP_OF_STRING}
PIPELINE_SCHEMA: dict[str, Any] = {
    "group": STRING,
    "name": STRING,
    "image": STRING,
    "vars": MAP_OF_STRING,
    "resource": [RESOURCE_SCHEMA],
    "step": [STEP_SCHEMA],
}


def _set(schema: Any, value: Any, where: list[str]) -> Any:
    """The SDK's field writer: the value as the state holds it, or an error."""
    if schema == STRING:
        if value is None:
            return ""
        if not isinstance(value, str):
            raise GoError(
                f"{'.'.join(where)}: expected type 'string', got unconvertible "
                f"type '{golang._go_type(value)}', value: '{value!r}'"
            )
        return value
    if schema == MAP_OF_STRING:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise GoError(f"{'.'.join(where)}: expected a map, got {value!r}")
        return {k: _set(STRING, v, [*where, k]) for k, v in value.items()}
    if isinstance(schema, list):
        if value is None:
            return []
        if not isinstance(value, list):
            raise GoError(f"{'.'.join(where)}: expected a list, got {value!r}")
        return [_set(schema[0], item, [*where, str(i)]) for i, item in enumerate(value)]
    if isinstance(schema, dict):
        if not isinstance(value, dict):
            raise GoError(f"{'.'.join(where)}: expected a block, got {value!r}")
        unknown = sorted(set(value) - set(schema))
        if unknown:
            raise GoError(f"Invalid address to set: {[*where, unknown[0]]!r}")
        return {k: _set(s, value.get(k), [*where, k]) for k, s in schema.items()}
    raise TypeError(schema)


def plan(config: dict[str, Any], state: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    """The differences `terraform plan` would show between config and state. In the SDK an
    unset optional attribute and its zero value are the same ("" for a string, no map
    entries, no blocks), so both sides are compared in their zero-filled form."""
    drift = []
    for key, sub in schema.items():
        want = _set(sub, config.get(key), [key])
        have = _set(sub, state.get(key), [key])
        if want != have:
            drift.append(f"{key}: {have!r} -> {want!r}")
    return drift


PLUGIN_SCHEMA = {"name": STRING, "url": STRING}
