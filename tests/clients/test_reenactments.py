"""The re-enactments themselves, against a fake Bob: the behaviour of climate, wendy and
the Terraform provider that the cluster tests rely on, each fact stated once, with where
it comes from. No cluster is started here."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.clients import climate, golang, terraform
from tests.clients.wendy import HANDLERS, Wendy

BOB = "http://bob.test:7777"

# A document shaped like ours before issue 13: path parameters on the path item.
PATH_ITEM_PARAMETERS = """
openapi: 3.0.3
info: {title: t, version: "1"}
paths:
  /pipelines/groups/{group}/names/{name}:
    parameters:
      - {name: group, in: path, required: true, schema: {type: string}}
      - {name: name, in: path, required: true, schema: {type: string}}
    delete:
      operationId: PipelineDelete
      x-cli-name: delete
      x-cli-group: pipelines
      responses: {"202": {description: ok}}
"""

# The same operation shaped like Bob's: parameters on the operation.
OPERATION_PARAMETERS = """
openapi: 3.1.1
info: {title: t, version: "1"}
paths:
  /pipelines:
    get:
      operationId: PipelineList
      x-cli-name: list
      x-cli-group: pipelines
      x-cli-aliases: [ls, get]
      parameters:
        - {name: group, in: query, schema: {type: string}}
        - {name: name, in: query, schema: {type: string}}
      responses: {"200": {description: ok}}
    post:
      operationId: PipelineCreate
      x-cli-name: create
      x-cli-group: pipelines
      requestBody:
        required: true
        x-cli-name: spec
        content: {application/json: {schema: {type: object}}}
      responses: {"202": {description: ok}}
  /pipelines/groups/{group}/names/{name}:
    delete:
      operationId: PipelineDelete
      x-cli-name: delete
      x-cli-group: pipelines
      parameters:
        - $ref: "#/components/parameters/Group"
        - {name: name, in: path, required: true, schema: {type: string}}
      responses: {"202": {description: ok}}
  /pipelines/groups/{group}/names/{name}/runs:
    get:
      operationId: PipelineRuns
      x-cli-name: runs
      x-cli-group: pipelines
      x-cli-aliases: [ls, get]
      parameters:
        - $ref: "#/components/parameters/Group"
        - {name: name, in: path, required: true, schema: {type: string}}
      responses: {"200": {description: ok}}
  /pipelines/logs/runs/{id}:
    get:
      operationId: PipelineLogs
      x-cli-name: logs
      x-cli-group: pipelines
      parameters:
        - {name: id, in: path, required: true, schema: {type: string}}
        - {name: follow, in: query, schema: {type: boolean}}
      responses: {"200": {description: ok}}
  /metrics:
    get:
      operationId: GetMetrics
      x-cli-ignored: true
      responses: {"200": {description: ok}}
  /error:
    get:
      operationId: GetError
      responses: {"200": {description: ok}}
  /events:
    get:
      operationId: GetEvents
      x-cli-name: stream
      x-cli-group: events
      responses: {"200": {description: ok}}
components:
  parameters:
    Group: {name: group, in: path, required: true, schema: {type: string}}
"""


class FakeBob:
    """A fake Bob behind httpx.MockTransport: answers from `routes`, remembers requests."""

    def __init__(self, spec: str, routes: dict[tuple[str, str], httpx.Response]) -> None:
        self.routes = {("GET", "/api.yaml"): httpx.Response(200, text=spec), **routes}
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        request.read()
        answer = self.routes.get(
            (request.method, request.url.raw_path.decode().split("?")[0]),
            httpx.Response(404, json={"message": "no such route"}),
        )
        # A fresh, unread copy: the client streams it
        return httpx.Response(
            answer.status_code, headers=answer.headers, stream=httpx.ByteStream(answer.content)
        )

    def wendy(self, tmp_path) -> Wendy:
        client = Wendy(BOB, cwd=tmp_path, transport=httpx.MockTransport(self))
        assert client.bootstrap().exit_code == 0
        return client


def _table(text: str) -> climate.CommandTable:
    return climate.commands(golang.yaml_decode_first(text), frozenset(HANDLERS))


# climate


def test_climate_makes_no_flags_for_path_item_parameters_so_the_template_goes_out(tmp_path):
    # Given a spec whose path parameters are declared on the path item
    bob = FakeBob(PATH_ITEM_PARAMETERS, {})
    wendy = bob.wendy(tmp_path)

    # When wendy is asked to delete a pipeline by group and name
    with_flags = wendy.run("pipelines", "delete", "--group", "dev", "--name", "p")
    without = wendy.run("pipelines", "delete")

    # Then the command has no such flags, and without them the literal template is sent
    assert wendy.table.by_key[("pipelines", "delete")].flags == ()
    assert (with_flags.exit_code, with_flags.error) == (1, "unknown flag: --group")
    assert bob.requests[-1].url.raw_path == b"/pipelines/groups/%7Bgroup%7D/names/%7Bname%7D"
    assert without.exit_code == 1 and "Status: 404" in without.error


def test_climate_names_commands_flags_and_the_body_flag_from_the_x_cli_extensions():
    table = _table(OPERATION_PARAMETERS)

    listing = table.by_key[("pipelines", "list")]
    create = table.by_key[("pipelines", "create")]
    delete = table.by_key[("pipelines", "delete")]
    logs = table.by_key[("pipelines", "logs")]

    assert listing.aliases == ("ls", "get")
    assert [(f.name, f.type, f.location, f.required) for f in listing.flags] == [
        ("group", "string", "query", False),
        ("name", "string", "query", False),
    ]
    assert create.flags == () and create.body_flag == climate.Flag("spec", "string", "body", True)
    assert [f.name for f in delete.flags] == ["group", "name"]  # a $ref is resolved first
    assert logs.flag("follow") == climate.Flag("follow", "boolean", "query", False)
    assert table.by_key[("events", "stream")].flags == ()


def test_climate_skips_ignored_and_unbound_operations_and_runs_the_first_of_a_name():
    table = _table(OPERATION_PARAMETERS)

    ids = {c.operation_id for c in table.commands}

    # x-cli-ignored, and no wendy handler for GetError
    assert "GetMetrics" not in ids and "GetError" not in ids
    # `pipelines ls` is an alias of both list and runs: cobra runs the first, list
    assert table.find(["pipelines", "ls"])[0].operation_id == "PipelineList"


def test_climate_default_body_flag_is_climate_data_and_duplicates_and_untyped_panic():
    spec = golang.yaml_decode_first(OPERATION_PARAMETERS)
    del spec["paths"]["/pipelines"]["post"]["requestBody"]["x-cli-name"]
    assert climate.commands(spec).by_key[("pipelines", "create")].body_flag.name == "climate-data"

    untyped = golang.yaml_decode_first(OPERATION_PARAMETERS)
    untyped["paths"]["/pipelines"]["get"]["parameters"][0]["schema"] = {"enum": ["a"]}
    with pytest.raises(climate.ClimatePanic, match="index out of range"):
        climate.commands(untyped)

    twice = golang.yaml_decode_first(OPERATION_PARAMETERS)
    twice["paths"]["/pipelines"]["get"]["parameters"].append(
        {"name": "name", "in": "header", "schema": {"type": "string"}}
    )
    with pytest.raises(climate.ClimatePanic, match="flag redefined: name"):
        climate.commands(twice)


def test_climate_fills_path_parameters_as_go_regexp_does():
    delete = _table(OPERATION_PARAMETERS).by_key[("pipelines", "delete")]

    values, _ = climate.parse_flags(delete, ["--group", "dev", "--name", "a b"])
    braced, _ = climate.parse_flags(delete, ["--group", "x${1}y", "--name", "n"])
    bare, _ = climate.parse_flags(delete, ["--group", "x$1y", "--name", "n"])

    assert climate.invoke(delete, values) == "/pipelines/groups/dev/names/a b"
    # ReplaceAllString expands templates in the value: ${1} is the match, $1y a group
    # named "1y" (none: empty)
    assert climate.invoke(delete, braced) == "/pipelines/groups/x{group}y/names/n"
    assert climate.invoke(delete, bare) == "/pipelines/groups/x/names/n"
    with pytest.raises(climate.ClimateError, match='required flag\\(s\\) "group", "name"'):
        climate.parse_flags(delete, [])


# wendy


def test_wendy_events_skip_blank_lines_warn_on_id_lines_and_crash_on_short_ones(tmp_path):
    event = {
        "at": 1700000000000,
        "type": "Normal",
        "reason": "R",
        "kind": "Pipeline",
        "message": "m",
    }
    stream = (
        b"data: " + json.dumps(event).encode() + b"\n\nid: 7\n\n"
        b"data: " + json.dumps({**event, "at": 1.5}).encode() + b"\n\n:\n"
    )
    bob = FakeBob(OPERATION_PARAMETERS, {("GET", "/events"): httpx.Response(200, content=stream)})

    result = bob.wendy(tmp_path).run("events", "stream")

    assert result.stdout == "{At:1700000000000 Kind:Pipeline Type:Normal Reason:R Message:m}\n"
    assert [m for _, m, _ in result.console.logs] == ["Unexpected event format"] * 2
    assert result.exit_code == 2 and "slice bounds out of range [6:2]" in result.panic


def test_wendy_events_crash_on_crlf_line_endings(tmp_path):
    stream = b'data: {"at": 1, "type": "Normal"}\r\n\r\n'
    bob = FakeBob(OPERATION_PARAMETERS, {("GET", "/events"): httpx.Response(200, content=stream)})

    result = bob.wendy(tmp_path).run("events", "stream")

    assert result.stdout.startswith("{At:1 ")
    assert result.exit_code == 2 and "[6:2]" in result.panic


def test_wendy_follow_reports_the_end_of_the_stream_as_an_error(tmp_path):
    bob = FakeBob(
        OPERATION_PARAMETERS,
        {("GET", "/pipelines/logs/runs/r-1"): httpx.Response(200, content=b"a\n\n  b \nlast")},
    )

    result = bob.wendy(tmp_path).run("pipelines", "logs", "--id", "r-1", "--follow")

    assert bob.requests[-1].url.query == b"follow=true"
    assert result.stdout == "a\nb\n"  # trimmed, blank lines skipped, the partial line lost
    assert (result.exit_code, result.error) == (1, "EOF")


def test_wendy_apply_compares_yaml_integers_with_json_numbers_and_never_converges(tmp_path):
    # Given a store that reads back exactly what was posted, numbers and all
    stored = {
        "name": "p",
        "group": "dev",
        "image": "i",
        "steps": [{"cmd": "c"}],
        "vars": {"PORT": 8080},
    }
    listing = httpx.Response(200, json={"message": [stored]})
    bob = FakeBob(
        OPERATION_PARAMETERS,
        {("GET", "/pipelines"): listing, ("POST", "/pipelines"): httpx.Response(202, json={})},
    )
    wendy = bob.wendy(tmp_path)
    manifest = (
        "kind: Pipeline\nidentifiedBy: [group, name]\nspec:\n  group: dev\n  name: p\n"
        "  image: i\n  steps: [{cmd: c}]\n  vars: {PORT: %s}\n"
    )
    (tmp_path / "int.yaml").write_text(manifest % "8080")
    (tmp_path / "str.yaml").write_text(manifest % '"8080"')
    stored_str = {**stored, "vars": {"PORT": "8080"}}

    # When the same manifest is applied: with an integer, and with a string
    with_int = wendy.run("apply", "-m", "int.yaml")
    bob.routes[("GET", "/pipelines")] = httpx.Response(200, json={"message": [stored_str]})
    with_str = wendy.run("apply", "-m", "str.yaml")

    # Then the integer (int from YAML, float64 from JSON) is always "different"
    assert with_int.console.logs[-1][:2] == ("INFO", "Updated")
    assert with_int.exchanges[0].url == f"{BOB}/pipelines?group=dev&name=p"
    assert with_int.exchanges[-1].body == (
        b'{"group":"dev","image":"i","name":"p","steps":[{"cmd":"c"}],"vars":{"PORT":8080}}\n'
    )
    assert with_str.console.logs[-1][:2] == ("INFO", "Unchanged")


# the Terraform provider


def test_terraform_pipeline_body_has_every_schema_field_with_its_zero_value():
    config = terraform.Pipeline(
        group="dev",
        name="test",
        image="docker.io/library/golang:alpine",
        vars={"GOOS": "linux", "GOARCH": "amd64"},
        resources=(
            terraform.Resource(
                "source",
                "external",
                "resource-git",
                {"repo": "https://github.com/lispyclouds/bob-example", "branch": "main"},
            ),
        ),
        steps=(
            terraform.Step("echo start"),
            terraform.Step("go test", "source"),
            terraform.Step(
                "go build -o app", "source", terraform.Artifact("app", "app", "artifact-local")
            ),
        ),
    )

    assert terraform.pipeline_body(config) == (
        b'{"image":"docker.io/library/golang:alpine",'
        b'"resources":[{"name":"source","params":{"branch":"main",'
        b'"repo":"https://github.com/lispyclouds/bob-example"},'
        b'"provider":"resource-git","type":"external"}],'
        b'"steps":[{"cmd":"echo start","needs_resource":""},'
        b'{"cmd":"go test","needs_resource":"source"},'
        b'{"cmd":"go build -o app","needs_resource":"source",'
        b'"produces_artifact":{"name":"app","path":"app","store":"artifact-local"}}],'
        b'"vars":{"GOARCH":"amd64","GOOS":"linux"}}'
    )
    bare = terraform.Pipeline("dev", "t", "img", (terraform.Step("true"),))
    assert terraform.pipeline_body(bare) == (
        b'{"image":"img","resources":[],"steps":[{"cmd":"true","needs_resource":""}],"vars":{}}'
    )


def test_terraform_reconcile_fails_on_any_non_string_value_in_a_listed_plugin():
    plugin = terraform.Plugin("git", "http://git")
    answers = iter([{"message": [{"name": "git", "url": "http://git", "healthy": True}]}])

    def bob(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(202, json={"message": "Ok"})
        return httpx.Response(200, json=next(answers, {"message": []}))

    provider = terraform.Provider(
        BOB, reconcile_retries=2, sleep=lambda _s: None, transport=httpx.MockTransport(bob)
    )

    with pytest.raises(terraform.TerraformError, match="timeout"):
        provider.create_plugin(terraform.RESOURCE_PROVIDER, plugin)
    assert provider.exchanges[0].body == b'{"url":"http://git"}'
    assert provider.exchanges[0].url == f"{BOB}/resource-providers/git"


def test_terraform_sends_url_user_info_as_basic_credentials():
    seen: list[httpx.Request] = []

    def bob(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"message": []})

    provider = terraform.Provider(
        "http://ops:s3cret@bob.test:7777",
        reconcile_retries=1,
        sleep=lambda _s: None,
        transport=httpx.MockTransport(bob),
    )
    provider.read_plugin(terraform.ARTIFACT_STORE, {"id": "x", "name": "x", "url": "u"})

    assert seen[0].headers["Authorization"] == "Basic b3BzOnMzY3JldA=="
    assert seen[0].url.userinfo == b""
