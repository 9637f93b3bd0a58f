"""Our GET /api.yaml read the way climate reads it gives wendy every command of Bob's
latest spec (bob-cd/bob apiserver/resources/bob/api.yaml, the version with loggers and
`x-cli-*` extensions), with Bob's groups, names, aliases, flags and body flags.

The expected table is written out by hand from that spec. Our own additions may add
optional flags and commands, as long as they take nothing away and shadow nothing."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import pytest

from tests.clients import climate

pytestmark = pytest.mark.e2e

S, B = "string", "boolean"


def _path(*names: str) -> dict[str, tuple[str, str, bool]]:
    return {n: (S, "path", True) for n in names}


def _query(**types: str) -> dict[str, tuple[str, str, bool]]:
    return {n: (t, "query", False) for n, t in types.items()}


@dataclass(frozen=True)
class Expected:
    operation_id: str
    method: str
    path: str
    flags: dict[str, tuple[str, str, bool]] = field(default_factory=dict)  # type, in, required
    body: tuple[str, bool] | None = None  # body flag name, required
    aliases: tuple[str, ...] = ()
    hidden: bool = False


PLUGIN_KINDS = {
    "resource-providers": "ResourceProvider",
    "artifact-stores": "ArtifactStore",
    "loggers": "Logger",
}

BOB_LATEST: dict[tuple[str | None, str], Expected] = {
    (None, "GetApiSpec"): Expected("GetApiSpec", "get", "/api.yaml", hidden=True),
    ("cluster", "ping"): Expected("HealthCheck", "get", "/can-we-build-it"),
    ("cluster", "info"): Expected("ClusterInfo", "get", "/cluster/info"),
    ("pipelines", "list"): Expected(
        "PipelineList", "get", "/pipelines", _query(group=S, name=S), aliases=("ls", "get")
    ),
    ("pipelines", "create"): Expected("PipelineCreate", "post", "/pipelines", body=("spec", True)),
    ("pipelines", "delete"): Expected(
        "PipelineDelete", "delete", "/pipelines/groups/{group}/names/{name}", _path("group", "name")
    ),
    ("pipelines", "start"): Expected(
        "PipelineStart",
        "post",
        "/pipelines/start/groups/{group}/names/{name}/loggers/{logger}",
        _path("group", "name", "logger"),
        body=("pipeline-start-meta", False),
    ),
    ("pipelines", "stop"): Expected(
        "PipelineStop", "post", "/pipelines/stop/runs/{run-id}", _path("run-id")
    ),
    ("pipelines", "pause"): Expected(
        "PipelinePause",
        "post",
        "/pipelines/pause/groups/{group}/names/{name}",
        _path("group", "name"),
    ),
    ("pipelines", "unpause"): Expected(
        "PipelineUnpause",
        "post",
        "/pipelines/unpause/groups/{group}/names/{name}",
        _path("group", "name"),
    ),
    ("pipelines", "logs"): Expected(
        "PipelineLogs", "get", "/pipelines/logs/runs/{id}", {**_path("id"), **_query(follow=B)}
    ),
    ("pipelines", "status"): Expected(
        "PipelineStatus", "get", "/pipelines/status/runs/{run-id}", _path("run-id")
    ),
    ("pipelines", "fetch-artifact"): Expected(
        "PipelineArtifactFetch",
        "get",
        "/pipelines/groups/{group}/names/{name}/runs/{id}/artifact-stores/{store-name}"
        "/artifact/{artifact-name}",
        _path("group", "name", "id", "store-name", "artifact-name"),
    ),
    ("pipelines", "runs"): Expected(
        "PipelineRuns",
        "get",
        "/pipelines/groups/{group}/names/{name}/runs",
        _path("group", "name"),
        aliases=("ls", "get"),
    ),
    **{
        (group, "list"): Expected(
            f"{kind}List", "get", f"/{group}", _query(name=S), aliases=("ls", "get")
        )
        for group, kind in PLUGIN_KINDS.items()
    },
    **{
        (group, "create"): Expected(f"{kind}Create", "post", f"/{group}", body=("spec", True))
        for group, kind in PLUGIN_KINDS.items()
    },
    **{
        (group, "delete"): Expected(f"{kind}Delete", "delete", f"/{group}/{{name}}", _path("name"))
        for group, kind in PLUGIN_KINDS.items()
    },
    ("events", "stream"): Expected("GetEvents", "get", "/events"),
}

# In Bob's spec `pipelines list` comes before `pipelines runs`, which has the same aliases:
# cobra runs the first match, so `ls` and `get` mean list.
ALIAS_WINNERS = {("pipelines", "ls"): "PipelineList", ("pipelines", "get"): "PipelineList"}


def _mismatches(table: climate.CommandTable) -> list[str]:
    found: list[str] = []
    for (group, name), want in BOB_LATEST.items():
        where = f"{group or '(root)'} {name}"
        got = table.by_key.get((group, name))
        if got is None:
            same_id = [c for c in table.commands if c.operation_id == want.operation_id]
            hint = (
                (f"; {want.operation_id} is there as {[(c.group, c.name) for c in same_id]}")
                if same_id
                else ""
            )
            found.append(f"{where}: missing{hint}")
            continue
        if got.operation_id != want.operation_id:
            found.append(f"{where}: runs {got.operation_id}, Bob's runs {want.operation_id}")
        if (got.method, got.path) != (want.method, want.path):
            found.append(
                f"{where}: {got.method.upper()} {got.path}, "
                f"Bob's is {want.method.upper()} {want.path}"
            )
        if not set(want.aliases) <= set(got.aliases):
            found.append(f"{where}: aliases {got.aliases}, Bob's {want.aliases}")
        if got.hidden != want.hidden:
            found.append(f"{where}: hidden={got.hidden}, Bob's hidden={want.hidden}")
        flags = {f.name: (f.type, f.location, f.required) for f in got.flags}
        for flag, spec in want.flags.items():
            if flags.get(flag) != spec:
                found.append(
                    f"{where}: --{flag} is {flags.get(flag)}, Bob's is {spec} (type, in, required)"
                )
        for flag, (_t, location, required) in flags.items():
            if flag not in want.flags and required:
                found.append(f"{where}: extra required flag --{flag} ({location})")
        body = (got.body_flag.name, got.body_flag.required) if got.body_flag else None
        if body != want.body:
            found.append(f"{where}: body flag {body}, Bob's {want.body}")
        if got.unhandled:
            found.append(f"{where}: parameters climate cannot make flags of: {got.unhandled}")
    for (group, word), operation_id in ALIAS_WINNERS.items():
        command, _, _ = table.find([group, word])
        if command is None or command.operation_id != operation_id:
            found.append(
                f"{group} {word}: runs {command and command.operation_id}, "
                f"Bob's runs {operation_id}"
            )
    return found


def test_our_api_yaml_gives_wendy_every_command_of_bobs_latest_spec(wendy):
    # Given wendy bootstrapped from our GET /api.yaml (climate over wendy's handler map)
    table = wendy.table

    # When its command table is compared with the one Bob's latest spec gives
    mismatches = _mismatches(table)

    # Then every command is there, reached by Bob's words, with Bob's flags
    listing = "\n".join(
        f"  {c.group or '(root)'} {c.name} {c.operation_id} "
        f"{c.method.upper()} {c.path} flags={[f.name for f in c.flags]} "
        f"body={c.body_flag and c.body_flag.name}"
        for c in table.commands
    )
    assert not mismatches, (
        "\n".join(mismatches) + f"\n\nwendy's commands from our /api.yaml:\n{listing}"
    )


def test_every_path_parameter_of_ours_is_a_flag_wendy_can_fill(wendy):
    # Given every operation of our /api.yaml that wendy has a handler for
    table = wendy.table

    # When the path templates are compared with the commands' flags
    unfillable = [
        f"{c.group} {c.name} ({c.operation_id}) {c.path}: {{{p}}} has no operation-level parameter"
        for c in table.commands
        for p in re.findall(r"{([^}]+)}", c.path)
        if p not in {f.name for f in c.path_params}
    ]

    # Then none would go out as a literal {template}
    assert not unfillable, "\n".join(unfillable)
