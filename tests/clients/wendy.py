"""wendy, Bob's CLI (bob-cd/wendy, the Go version built on climate), re-enacted over HTTP.

`Wendy(endpoint).bootstrap()` does what `wendy bootstrap` and start-up do: GET
`<endpoint>/api.yaml` (main.go: option `api-path`, default "/api.yaml"; pkg.Download),
and climate builds the commands from it with wendy's handler map (cmd/bootstrap.go
`Handlers`). `run(*argv)` runs one command line and reports what wendy would print and
its exit status; `stream(*argv)` runs the endless ones (`pipelines logs --follow`,
`events stream`) in the background until the caller leaves, as Ctrl-C would.

What the handlers do (cmd/handlers/common.go, cmd/handlers/pipelines/ops.go,
cmd/handlers/cluster/ops.go, cmd/handlers/events/ops.go, cmd/apply.go, pkg/fns.go):

- every URL is `pkg.FullUrl(HandlerData.Path)`: url.JoinPath(endpoint, path), so an
  unfilled `{name}` goes out as `%7Bname%7D`;
- pkg.Get / Post / Delete fail on any status >= 400 with
  `Invalid call: <body> Status: <code>`; Post sends `Content-Type: application/json`;
- most commands print `pkg.ShowMessage`: the body decoded as a JSON object, and its
  `message` re-encoded with json.MarshalIndent(v, "", "  ");
- list commands add their query themselves: `?name=` (providers, stores, loggers) or
  `?group=&name=&status=` (pipelines), each only when given (else a bare `?`);
- create commands POST the body flag: `@file` sends the file's bytes (a stream of unknown
  length, so chunked), anything else the string itself;
- start, stop, pause and unpause POST no body at all (the start body flag is ignored);
- `pipelines logs` copies the body to stdout as it is; with `--follow` it GETs
  `?follow=true` and prints every line longer than one byte, trimmed, until the stream
  ends, which it reports as an error (`EOF`);
- `events stream` reads lines; skips those of at most one byte; decodes the rest from
  their 7th byte (`bytes[6:]`, dropping "data: ") into a reused Event struct, printing it
  with %+v or warning "Unexpected event format"; a line of 2 to 5 bytes panics;
- `pipelines fetch-artifact` downloads to `<artifact-name>.tar` in the working directory;
- `apply -m file` (cmd/apply.go) is described at `_apply`.

Errors from a command end as cobra's `Error: <err>` and exit status 1; Go panics exit 2.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.clients import climate, golang
from tests.clients.golang import GoError

DEFAULT_ENDPOINT = "http://localhost:7777"
GO_HEADERS = {"User-Agent": "Go-http-client/1.1", "Accept-Encoding": "gzip"}

# cmd/bootstrap.go, `Handlers`: operationId -> handler.
HANDLERS: dict[str, str] = {
    "ArtifactStoreCreate": "create",
    "ArtifactStoreDelete": "delete",
    "ArtifactStoreList": "list",
    "ClusterInfo": "show",
    "GetEvents": "events",
    "HealthCheck": "show",
    "PipelineArtifactFetch": "artifact_fetch",
    "PipelineCreate": "create",
    "PipelineDelete": "delete",
    "PipelineList": "pipeline_list",
    "PipelineLogs": "logs",
    "PipelinePause": "post_nothing",
    "PipelineRuns": "show",
    "PipelineStart": "post_nothing",
    "PipelineStatus": "show",
    "PipelineStop": "post_nothing",
    "PipelineUnpause": "post_nothing",
    "ResourceProviderCreate": "create",
    "ResourceProviderDelete": "delete",
    "ResourceProviderList": "list",
    "LoggerCreate": "create",
    "LoggerDelete": "delete",
    "LoggerList": "list",
    "GetApiSpec": "place",
    "Query": "place",
}

# cmd/apply.go, `conf`: manifest kind -> the operations it lists and creates with.
APPLY_KINDS: dict[str, tuple[str, str]] = {
    "Pipeline": ("PipelineList", "PipelineCreate"),
    "ResourceProvider": ("ResourceProviderList", "ResourceProviderCreate"),
    "ArtifactStore": ("ArtifactStoreList", "ArtifactStoreCreate"),
    "Logger": ("LoggerList", "LoggerCreate"),
}

# pkg/consts.go, `Event`: Go field -> (json key, type).
EVENT_FIELDS = {
    "At": ("at", golang.INT64),
    "Kind": ("kind", golang.STRING),
    "Type": ("type", golang.STRING),
    "Reason": ("reason", golang.STRING),
    "Message": ("message", golang.STRING),
}


class GoPanic(Exception):
    """The Go runtime panicked: wendy dies with exit status 2."""


class Interrupted(Exception):
    """The user pressed Ctrl-C: wendy's signal handler closes the stream and exits 0."""


@dataclass
class Exchange:
    """One HTTP request wendy sent and what came back, for reports."""

    method: str
    url: str
    body: bytes | None
    chunked: bool
    status: int | None = None
    response: bytes = b""

    def __str__(self) -> str:
        sent = "" if self.body is None else f" body={self.body[:600]!r}"
        framing = " (chunked)" if self.chunked else ""
        got = f" -> {self.status} {self.response[:600]!r}" if self.status is not None else ""
        return f"{self.method} {self.url}{framing}{sent}{got}"


@dataclass
class Console:
    """What wendy wrote: stdout as text, and its slog records (stderr)."""

    out: list[str] = field(default_factory=list)
    logs: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)

    def print(self, text: str) -> None:
        self.out.append(text + "\n")

    def write(self, text: str) -> None:
        self.out.append(text)

    def log(self, level: str, message: str, **attrs: str) -> None:
        self.logs.append((level, message, attrs))

    @property
    def stdout(self) -> str:
        return "".join(self.out)


@dataclass
class Result:
    """One wendy command line: exit status, output, and the HTTP exchanges behind it."""

    argv: tuple[str, ...]
    exit_code: int = 0
    console: Console = field(default_factory=Console)
    error: str | None = None  # cobra's "Error: ..." line, without the prefix
    panic: str | None = None
    exchanges: list[Exchange] = field(default_factory=list)
    # For reports only (wendy does not print it): what `apply` compared.
    compared: tuple[Any, Any] | None = None

    @property
    def stdout(self) -> str:
        return self.console.stdout

    @property
    def stderr(self) -> str:
        lines = [
            f"{level} {msg}" + "".join(f" {k}={_slog_value(v)}" for k, v in attrs.items())
            for level, msg, attrs in self.console.logs
        ]
        if self.error is not None:
            lines.append(f"Error: {self.error}")
        if self.panic is not None:
            lines.append(f"panic: {self.panic}")
        return "\n".join(lines)

    @property
    def printed(self) -> Any:
        """The printed `message` (ShowMessage's output), decoded back."""
        return golang.decode_first(self.stdout.encode())

    def report(self) -> str:
        """The whole story, for assertion messages."""
        parts = [f"wendy {' '.join(self.argv)} -> exit {self.exit_code}"]
        if self.stdout:
            parts.append(f"stdout: {self.stdout[:2000]!r}")
        if self.stderr:
            parts.append(f"stderr: {self.stderr[:2000]}")
        parts.extend(f"  {exchange}" for exchange in self.exchanges)
        if self.compared is not None:
            listed, manifest = self.compared
            parts.append(f"  first listed item: {listed!r}")
            parts.append(f"  manifest spec:     {manifest!r}")
            parts.extend(f"  differs at {d}" for d in golang.differences(listed, manifest))
        return "\n".join(parts)


def _slog_value(value: str) -> str:
    return f'"{value}"' if any(c in value for c in ' ="') or not value else value


class _Interrupt:
    """Ctrl-C for a background wendy: sets the flag and closes the open response, so a
    read blocked on the stream returns at once."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.responses: list[httpx.Response] = []

    def is_set(self) -> bool:
        return self.event.is_set()

    def fire(self) -> None:
        self.event.set()
        for response in list(self.responses):
            try:
                response.close()
            except Exception:  # noqa: BLE001 - closing under a reader may complain
                pass


class _Http:
    """Go's net/http client as wendy uses it: no Accept header, redirects followed, and
    pkg.checkStatus on every answer. Go's default client never times out; here a plain
    command gives up after READ_TIMEOUT_S of silence (reported as such, not as wendy),
    and a streaming one waits until it is interrupted."""

    READ_TIMEOUT_S = 60.0

    def __init__(
        self,
        result: Result,
        interrupt: _Interrupt,
        *,
        streaming: bool,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.result = result
        self.interrupt = interrupt
        read = None if streaming else self.READ_TIMEOUT_S
        self.client = httpx.Client(
            follow_redirects=True, transport=transport, timeout=httpx.Timeout(30, read=read)
        )
        self.client.headers.clear()
        self.client.headers.update(GO_HEADERS)

    def close(self) -> None:
        self.client.close()

    def _send(
        self, method: str, url: str, body: bytes | Iterator[bytes] | None, content_type: str | None
    ) -> httpx.Response:
        headers = {"Content-Type": content_type} if content_type else {}
        chunked = body is not None and not isinstance(body, bytes)
        sent = bytes(b"".join(body)) if chunked else body  # type: ignore[arg-type]
        exchange = Exchange(method, url, sent, chunked)
        self.result.exchanges.append(exchange)
        if method == "POST" and body is None:
            body = b""  # Go sends "Content-Length: 0" for a POST without a body
        content = iter([sent]) if chunked else body  # chunked framing, as Go's client
        request = self.client.build_request(method, url, content=content, headers=headers)
        try:
            response = self.client.send(request, stream=True)
        except httpx.TimeoutException:
            raise GoError(
                f"(re-enactment) no answer to {method} {url} within "
                f"{self.READ_TIMEOUT_S}s; wendy would still be waiting"
            ) from None
        except httpx.HTTPError as exc:
            raise GoError(f'{method.title()} "{url}": {exc}') from None
        self.interrupt.responses.append(response)
        exchange.status = response.status_code
        if response.status_code >= 400:
            exchange.response = response.read()
            response.close()
            text = exchange.response.decode("utf-8", "replace")
            raise GoError(f"Invalid call: {text} Status: {response.status_code}")
        return response

    def read(self, response: httpx.Response) -> bytes:
        try:
            body = response.read()
        except httpx.TimeoutException:
            raise GoError(
                f"(re-enactment) the answer to {response.request.url} stalled for "
                f"{self.READ_TIMEOUT_S}s; wendy would still be waiting"
            ) from None
        except httpx.HTTPError as exc:
            raise GoError(f"reading the answer: {exc}") from None
        response.close()
        self.result.exchanges[-1].response = body
        return body

    def get(self, url: str) -> httpx.Response:
        return self._send("GET", url, None, None)

    def post(self, url: str, body: bytes | Iterator[bytes] | None) -> httpx.Response:
        return self._send("POST", url, body, "application/json")

    def delete(self, url: str) -> httpx.Response:
        return self._send("DELETE", url, None, None)

    def lines(self, response: httpx.Response) -> Iterator[bytes]:
        """bufio.Reader.ReadBytes('\\n') until an error: each line with its newline; at the
        end of the stream the partial last line is dropped and EOF is the error."""
        exchange = self.result.exchanges[-1]
        pending = b""
        try:
            for chunk in response.iter_bytes():  # gzip undone, as Go's transport does
                if self.interrupt.is_set():
                    raise Interrupted()
                exchange.response = (exchange.response + chunk)[-4000:]
                pending += chunk
                while b"\n" in pending:
                    line, pending = pending.split(b"\n", 1)
                    yield line + b"\n"
                    if self.interrupt.is_set():
                        raise Interrupted()
        except Interrupted:
            raise
        except Exception as exc:  # noqa: BLE001 - a read cut by close() or by the server
            if self.interrupt.is_set():
                raise Interrupted() from None
            raise GoError(f"unexpected EOF ({type(exc).__name__}: {exc})") from None
        finally:
            response.close()
        if self.interrupt.is_set():
            raise Interrupted()
        raise GoError("EOF")


class Wendy:
    """wendy configured with `endpoint`, working in `cwd` (where fetch-artifact writes)."""

    def __init__(
        self,
        endpoint: str = DEFAULT_ENDPOINT,
        *,
        cwd: Path | None = None,
        api_path: str = "/api.yaml",
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.transport = transport  # tests of the re-enactment itself put a fake Bob here
        self.endpoint = endpoint
        self.api_path = api_path
        self.cwd = cwd or Path.cwd()
        self.spec: dict | None = None
        self.table: climate.CommandTable | None = None

    def full_url(self, path: str) -> str:
        return golang.join_path(self.endpoint, path)

    # ------------------------------------------------------------ start-up

    def bootstrap(self) -> Result:
        """`wendy bootstrap`, then start-up: the spec downloaded, loaded, and climate's
        commands built from it. A failure here means no command works."""
        result = Result(("bootstrap",))
        http = _Http(result, _Interrupt(), streaming=False, transport=self.transport)
        try:
            response = http.get(self.full_url(self.api_path))
            text = http.read(response).decode("utf-8", "replace")
            spec = climate.check_document(golang.yaml_decode_first(text))
            self.table = climate.commands(spec, frozenset(HANDLERS))
            self.spec = spec
        except GoError as exc:
            result.exit_code, result.error = 1, str(exc)
        except climate.ClimatePanic as exc:
            result.exit_code, result.panic = 2, str(exc)
        except Exception as exc:  # noqa: BLE001 - a malformed document: libopenapi fails
            result.exit_code, result.error = 1, f"Cannot create v3 model: {exc}"
        finally:
            http.close()
        return result

    # ------------------------------------------------------------ running commands

    def run(self, *argv: str) -> Result:
        """Runs one command line to its end."""
        result = Result(tuple(argv))
        self._execute(list(argv), result, _Interrupt(), streaming=False)
        return result

    def stream(self, *argv: str) -> Stream:
        """Runs an endless command line in the background; leave it with `close()`."""
        return Stream(self, tuple(argv))

    def _execute(
        self, argv: list[str], result: Result, interrupt: _Interrupt, *, streaming: bool
    ) -> None:
        http = _Http(result, interrupt, streaming=streaming, transport=self.transport)
        try:
            self._dispatch(argv, result, http)
        except Interrupted:
            result.exit_code = 0
        except GoError as exc:
            result.exit_code, result.error = 1, str(exc)
        except GoPanic as exc:
            result.exit_code, result.panic = 2, str(exc)
        finally:
            http.close()

    def _dispatch(self, argv: list[str], result: Result, http: _Http) -> None:
        if argv[:1] == ["apply"]:
            return self._apply(argv[1:], result, http)
        if self.table is None:
            raise GoError("Wendy is not bootstrapped, please run the bootstrap command")
        words = [a for a in argv if not a.startswith("-")]
        command, group, _rest = self.table.find(words[:2])
        if command is None and group is not None and len(words) == 1:
            result.console.print(f"Operations on {group}")  # a group alone shows its help
            return None
            where = f"wendy {group}" if group else "wendy"
            missing = words[1] if group and len(words) > 1 else (words[0] if words else "")
            raise GoError(f'unknown command "{missing}" for "{where}"')
        depth = 1 if command.group is None else 2
        flags_argv = argv[argv.index(words[depth - 1]) + 1 :]
        values, _given = climate.parse_flags(command, flags_argv)
        path = climate.invoke(command, values)
        handler = getattr(self, f"_h_{HANDLERS[command.operation_id]}")
        handler(command, values, path, result, http)

    # ------------------------------------------------------------ handlers

    def _show_message(self, body: bytes, result: Result) -> None:
        """pkg.ShowMessage."""
        decoded = golang.decode_into(
            golang.decode_first(body), golang.Map(golang.ANY, "map[string]interface {}")
        )
        message = None if decoded is None else decoded.get("message")
        result.console.print(golang.marshal(message, indent="  "))

    def _h_show(self, command, values, path, result, http) -> None:
        self._show_message(http.read(http.get(self.full_url(path))), result)

    def _h_list(self, command, values, path, result, http) -> None:
        query = {"name": values["name"]} if values.get("name") else {}
        url = self.full_url(path) + "?" + golang.values_encode(query)
        self._show_message(http.read(http.get(url)), result)

    def _h_pipeline_list(self, command, values, path, result, http) -> None:
        query = {k: values[k] for k in ("group", "name", "status") if values.get(k)}
        url = self.full_url(path) + "?" + golang.values_encode(query)
        self._show_message(http.read(http.get(url)), result)

    def _h_create(self, command, values, path, result, http) -> None:
        if command.body_flag is None:
            raise GoPanic(
                "runtime error: invalid memory address or nil pointer dereference "
                f"({command.operation_id} has no request body)"
            )
        payload = values[command.body_flag.name]
        body: bytes | Iterator[bytes]
        if payload.startswith("@"):
            name = payload[1:]
            target = self.cwd / name
            try:
                content = target.read_bytes()
            except OSError:
                raise GoError(f"open {name}: no such file or directory") from None
            body = iter([content])  # an *os.File: length unknown, sent chunked
        else:
            body = payload.encode()
        self._show_message(http.read(http.post(self.full_url(path), body)), result)

    def _h_delete(self, command, values, path, result, http) -> None:
        self._show_message(http.read(http.delete(self.full_url(path))), result)

    def _h_post_nothing(self, command, values, path, result, http) -> None:
        self._show_message(http.read(http.post(self.full_url(path), None)), result)

    def _h_logs(self, command, values, path, result, http) -> None:
        follow = bool(values.get("follow"))
        url = self.full_url(path) + ("?follow=true" if follow else "")
        response = http.get(url)
        if not follow:
            result.console.write(http.read(response).decode("utf-8", "surrogateescape"))
            return
        for line in http.lines(response):
            if len(line) <= 1:
                continue
            result.console.print(golang.trim_space(line.decode("utf-8", "surrogateescape")))

    def _h_events(self, command, values, path, result, http) -> None:
        response = http.get(self.full_url(path))
        event = golang.Struct(EVENT_FIELDS)
        for line in http.lines(response):
            if len(line) <= 1:
                continue
            if len(line) < 6:
                raise GoPanic(
                    f"runtime error: slice bounds out of range [6:{len(line)}] (line {line!r})"
                )
            try:
                event.unmarshal(line[6:])
            except GoError:
                result.console.log(
                    "WARN", "Unexpected event format", event=line.decode("utf-8", "replace")
                )
                continue
            v = event.values
            result.console.print(
                f"{{At:{v['At']} Kind:{v['Kind']} Type:{v['Type']} "
                f"Reason:{v['Reason']} Message:{v['Message']}}}"
            )

    def _h_artifact_fetch(self, command, values, path, result, http) -> None:
        target = f"{values.get('artifact-name', '')}.tar"
        result.console.log("INFO", "Downloading", fileName=target)
        body = http.read(http.get(self.full_url(path)))
        (self.cwd / target).write_bytes(body)
        result.console.log("INFO", "Complete")

    def _h_place(self, command, values, path, result, http) -> None:
        result.console.log("INFO", "Oooh, you stumbled on a hidden one! I don't do much though!")

    # ------------------------------------------------------------ apply

    def _op_path(self, operation_id: str) -> str:
        """getOpInfo: the path (template, unfilled) of the first operation with that id."""
        assert self.spec is not None
        for path, _method, op in climate.operations(self.spec):
            if op.get("operationId") == operation_id:
                return path
        raise GoError(f"Cannot find path for {operation_id}")

    def _apply(self, argv: list[str], result: Result, http: _Http) -> None:
        """cmd/apply.go: decode the manifest (yaml.v3, first document) into
        {apiVersion, kind, identifiedBy, spec}; list the kind with `?<id>=<spec[id]>` for
        each identifiedBy key; decode the answer as map[string][]Object and take the first
        item of `message`; reflect.DeepEqual it with spec; when different, POST spec
        (json.Encoder) to the create operation's path and log "Updated", else log
        "Unchanged". The POST's answer is not read beyond its status."""
        manifest_file = None
        for i, arg in enumerate(argv):
            if arg in ("-m", "--manifest") and i + 1 < len(argv):
                manifest_file = argv[i + 1]
            elif arg.startswith("--manifest="):
                manifest_file = arg.split("=", 1)[1]
        if manifest_file is None:
            raise GoError('required flag(s) "manifest" not set')
        if self.spec is None:
            raise GoPanic(
                "runtime error: invalid memory address or nil pointer dereference "
                "(wendy is not bootstrapped)"
            )
        try:
            text = (self.cwd / manifest_file).read_text()
        except OSError:
            raise GoError(f"open {manifest_file}: no such file or directory") from None
        manifest = golang.yaml_decode_first(text)
        if not isinstance(manifest, dict):
            raise GoError("yaml: unmarshal errors: the manifest is not a mapping")
        kind = manifest.get("kind")
        spec = manifest.get("spec")
        if kind not in APPLY_KINDS:
            raise GoError(f"Unsupported kind: {kind if kind is not None else ''}")
        ids: dict[str, str] = {}
        for key in manifest.get("identifiedBy") or []:
            value = spec.get(key) if isinstance(spec, dict) else None
            if not isinstance(value, str):
                raise GoPanic(
                    f"interface conversion: interface {{}} is "
                    f"{golang._go_type(value)}, not string (identifiedBy {key})"
                )
            ids[key] = value
        list_op, create_op = APPLY_KINDS[kind]
        url = self.full_url(self._op_path(list_op)) + "?" + golang.values_encode(ids)
        listed = golang.decode_into(
            golang.decode_first(http.read(http.get(url))),
            golang.Map(golang.Slice(golang.Map(golang.ANY, "cmd.Object"))),
        )
        objects = (listed or {}).get("message") or []
        current = objects[0] if objects else None
        result.compared = (current, spec)
        if golang.deep_equal(current, spec):
            result.console.log("INFO", "Unchanged")
            return
        body = golang.encode(spec).encode()
        http.read(http.post(self.full_url(self._op_path(create_op)), body))
        result.console.log("INFO", "Updated", kind=kind, ids=golang.sprint_map(ids))


class Stream:
    """An endless wendy command running in the background. `lines` grows as wendy prints;
    `result` is final once `ended`. Leave it with `close()` (Ctrl-C: exit 0)."""

    def __init__(self, wendy: Wendy, argv: tuple[str, ...]) -> None:
        self.result = Result(argv)
        self._interrupt = _Interrupt()
        self._thread = threading.Thread(
            target=wendy._execute,
            args=(list(argv), self.result, self._interrupt),
            kwargs={"streaming": True},
            daemon=True,
        )
        self._thread.start()

    @property
    def lines(self) -> list[str]:
        return self.result.stdout.splitlines()

    @property
    def ended(self) -> bool:
        return not self._thread.is_alive()

    def until(self, condition: Callable[[list[str]], bool]) -> Callable[[], bool]:
        """A probe for wait_until: true once `condition(lines)` holds or wendy has ended."""
        return lambda: self.ended or condition(self.lines)

    def close(self) -> Result:
        self._interrupt.fire()
        self._thread.join(10)
        return self.result

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
