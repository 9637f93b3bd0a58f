"""Pure pieces of the API server: no network, no services."""

from __future__ import annotations

import json

import grpc
import pytest
from connexion.exceptions import ResolverError

from api_server import convert, handlers
from api_server.problems import GRPC_TO_HTTP, from_grpc
from api_server.resolver import HandlerResolver, snake_case
from api_server.run_statuses import RunStatuses as EndedRuns
from bob_pb import entities_pb2, messages_pb2


class _Operation:
    def __init__(self, operation_id: str) -> None:
        self.operation_id = operation_id


class _RpcError(grpc.aio.AioRpcError):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details)


def test_operation_ids_become_snake_case_handler_names():
    assert snake_case("PipelineCreate") == "pipeline_create"
    assert snake_case("CCTray") == "cc_tray"
    assert snake_case("GetApiSpec") == "get_api_spec"
    assert snake_case("GetApiSpec") == "get_api_spec"


def test_resolver_finds_the_one_handler_of_an_operation():
    resolution = HandlerResolver(handlers.MODULES).resolve(_Operation("PipelineStart"))
    assert resolution.function.__name__ == "pipeline_start"


def test_resolver_refuses_an_operation_without_a_handler():
    with pytest.raises(ResolverError, match="NoSuchThing"):
        HandlerResolver(handlers.MODULES).resolve(_Operation("NoSuchThing"))


@pytest.mark.parametrize(
    ("code", "status"),
    [
        (grpc.StatusCode.NOT_FOUND, 404),
        (grpc.StatusCode.FAILED_PRECONDITION, 422),
        (grpc.StatusCode.INVALID_ARGUMENT, 400),
        (grpc.StatusCode.UNAVAILABLE, 503),
        (grpc.StatusCode.DEADLINE_EXCEEDED, 503),
        (grpc.StatusCode.INTERNAL, 500),
        (grpc.StatusCode.PERMISSION_DENIED, 502),
        (grpc.StatusCode.UNAUTHENTICATED, 502),
    ],
)
def test_grpc_codes_map_to_http_statuses(code, status):
    err = from_grpc(_RpcError(code, "Pipeline dev/x not found"))
    assert err.status == status
    assert GRPC_TO_HTTP.get(code, 500) == status


def test_unavailable_backend_answers_with_retry_after():
    err = from_grpc(_RpcError(grpc.StatusCode.UNAVAILABLE, "connection refused"))
    assert err.headers["Retry-After"].isdigit()
    assert "unavailable" in err.message


def test_a_refused_api_identity_is_a_bad_gateway_naming_it():
    err = from_grpc(_RpcError(grpc.StatusCode.PERMISSION_DENIED, "api may not call ClaimRun"))
    assert err.status == 502
    assert "refused the API server's identity: api may not call ClaimRun" in err.message


def test_domain_messages_pass_through_to_the_client():
    err = from_grpc(_RpcError(grpc.StatusCode.NOT_FOUND, "Pipeline dev/x not found"))
    assert err.message == "Pipeline dev/x not found"


def test_pipeline_json_round_trips_through_protobuf_with_bobs_field_names():
    body = {
        "image": "busybox:musl",
        "vars": {"A": "1"},
        "steps": [
            {"cmd": "echo hi", "vars": {"B": "2"}},
            {
                "cmd": "make",
                "needs_resource": "src",
                "produces_artifact": {"name": "bin", "path": "out", "store": "local"},
            },
        ],
        "resources": [
            {"name": "src", "type": "external", "provider": "git", "params": {"ref": "main"}}
        ],
    }
    # A pipeline stored before documents were kept reads back from its definition.
    stored = entities_pb2.StoredPipeline(
        group="dev", name="x", pipeline=convert.pipeline_from_json(body)
    )
    assert convert.pipeline_to_json(stored) == {"group": "dev", "name": "x", **body}


def test_a_pipeline_reads_back_exactly_as_posted_and_paused_only_when_it_is():
    # Given the body the Terraform provider sends: every field present, empty ones too
    body = {
        "image": "busybox:musl",
        "vars": {},
        "resources": [],
        "steps": [{"cmd": "echo hi", "needs_resource": "", "vars": {}}],
    }
    document = json.dumps(body)
    stored = entities_pb2.StoredPipeline(
        group="dev", name="x", pipeline=convert.pipeline_from_json(body), document=document
    )
    # Then it reads back with its group and name and nothing else added or dropped
    assert convert.pipeline_to_json(stored) == {"group": "dev", "name": "x", **body}
    stored.paused = True
    assert convert.pipeline_to_json(stored)["paused"] is True


def test_yaml_scalars_run_as_their_string_form_and_an_empty_resource_means_none():
    body = {
        "group": "dev",
        "name": "x",
        "image": "busybox:musl",
        "vars": {"PORT": 8080, "DEBUG": True, "RATIO": 0.5, "NAME": "bob"},
        "steps": [{"cmd": "env", "needs_resource": "", "vars": {"OFF": False}}],
        "resources": [{"name": "s", "type": "external", "provider": "git", "params": {"n": 1}}],
    }
    pipeline = convert.pipeline_from_json(body)
    assert dict(pipeline.vars) == {"PORT": "8080", "DEBUG": "true", "RATIO": "0.5", "NAME": "bob"}
    assert dict(pipeline.steps[0].vars) == {"OFF": "false"}
    assert pipeline.steps[0].needs_resource == ""
    assert dict(pipeline.resources[0].params) == {"n": "1"}


def test_run_summary_carries_both_of_bobs_generations_of_keys_and_ours():
    run = entities_pb2.Run(
        id="r-1",
        status=messages_pb2.PASSED,
        created_at_ms=1_700_000_000_000,
        initiated_at_ms=1_700_000_001_000,
        started_at_ms=0,
    )
    assert convert.run_summary(run) == {
        "run-id": "r-1",
        "run_id": "r-1",
        "status": "passed",
        "created-at": "2023-11-14T22:13:20.000+00:00",
        "scheduled-at": "2023-11-14T22:13:20.000+00:00",
        "initiated-at": "2023-11-14T22:13:21.000+00:00",
        "initialized-at": None,
        "started-at": None,
        "completed-at": None,
        "started": None,
        "completed": None,
    }


def test_ended_runs_remembers_terminal_statuses_only_and_forgets_the_oldest_first():
    ended = EndedRuns(capacity=2)

    def run(run_id: str, status: int, name: str = "app") -> entities_pb2.Run:
        return entities_pb2.Run(id=run_id, group="dev", name=name, status=status)

    ended.remember(run("r-running", messages_pb2.RUNNING), ended.asking())
    ended.remember(run("r-1", messages_pb2.PASSED), ended.asking())
    ended.remember(run("r-2", messages_pb2.FAILED, name="other"), ended.asking())
    ended.remember(run("r-3", messages_pb2.STOPPED), ended.asking())

    assert ended.status("r-running") is None  # may still change: always asked
    assert ended.status("r-1") is None  # the oldest, forgotten at capacity
    assert (ended.status("r-2"), ended.status("r-3")) == (messages_pb2.FAILED, messages_pb2.STOPPED)
    ended.forget_pipeline("dev", "app")
    assert (ended.status("r-2"), ended.status("r-3"), len(ended)) == (messages_pb2.FAILED, None, 1)
