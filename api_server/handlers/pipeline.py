"""Pipeline definitions: create (both of Bob's paths), read, list, delete, pause."""

from __future__ import annotations

import json
import logging

from google.protobuf import json_format

from api_server import backends, convert, paging
from api_server.problems import ApiError
from bob_common.run_states import ACTIVE
from bob_pb import entities_pb2, messages_pb2

log = logging.getLogger(__name__)

OK = {"message": "Ok"}


async def _put(group: str, name: str, body: dict):
    try:
        pipeline = convert.pipeline_from_json(body)
    except json_format.ParseError as exc:
        raise ApiError(400, f"Invalid pipeline: {exc}") from exc
    # The document is kept as posted, so that a read answers exactly what was sent.
    document = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    b = backends.current()
    await b.call(
        b.entities.PutPipeline(
            entities_pb2.PutPipelineRequest(
                group=group, name=name, pipeline=pipeline, document=document
            )
        )
    )
    return OK, 202


async def pipeline_create(body: dict):
    """Bob's current API: group and name in the body."""
    return await _put(body["group"], body["name"], body)


async def pipeline_create_at(group: str, name: str, body: dict):
    """Bob's older API: group and name in the path; a body may repeat them."""
    for key, value in (("group", group), ("name", name)):
        if key in body and body[key] != value:
            raise ApiError(400, f"The body's {key} {body[key]!r} contradicts the path's {value!r}")
    return await _put(group, name, body)


async def pipeline_get(group: str, name: str):
    b = backends.current()
    stored = await b.call(b.entities.GetPipeline(entities_pb2.PipelineRef(group=group, name=name)))
    return {"message": convert.pipeline_to_json(stored)}, 200


async def pipeline_delete(group: str, name: str):
    b = backends.current()
    ref = entities_pb2.PipelineRef(group=group, name=name)
    try:
        await b.call(b.entities.DeletePipeline(ref))
    except ApiError as err:
        if err.status != 422:
            raise
        runs = await b.call(b.entities.ListRuns(ref))
        active = [r.id for r in runs.runs if r.status in ACTIVE]
        message = {
            "error": "Pipeline has active runs. Wait for them to finish or stop them.",
            "runs": active,
        }
        raise ApiError(422, message) from err
    b.statuses.forget_pipeline(group, name)
    return OK, 202


async def list_page(
    group: str = "",
    name: str = "",
    status: int = messages_pb2.RUN_STATUS_UNSPECIFIED,
    limit: int | None = None,
    cursor: str | None = None,
    summary: bool = False,
) -> tuple[list[entities_pb2.StoredPipeline], dict[str, str]]:
    """A page of pipelines (by group, then name), and the headers naming the next page;
    `summary`: without their definitions."""
    after = paging.after_key(cursor, 2)
    request = entities_pb2.ListPipelinesRequest(
        group=group,
        name=name,
        status=status,
        limit=paging.limit_of(limit),
        after_group=after[0] if after else "",
        after_name=after[1] if after else "",
        summary=summary,
    )
    b = backends.current()
    reply = await b.call(b.entities.ListPipelines(request))
    last = reply.pipelines[-1] if reply.more and reply.pipelines else None
    return list(reply.pipelines), paging.next_headers(last and [last.group, last.name])


async def pipeline_list(
    group: str | None = None,
    name: str | None = None,
    status=None,
    limit: int | None = None,
    cursor: str | None = None,
    last_run: bool = False,
):
    found, headers = await list_page(
        group or "",
        name or "",
        convert.status_value(status) if status else messages_pb2.RUN_STATUS_UNSPECIFIED,
        limit,
        cursor,
    )
    listed = [convert.pipeline_to_json(p) for p in found]
    if last_run:
        # Ours, asked for: Bob's clients read a pipeline back exactly as they posted it.
        for body, stored in zip(listed, found, strict=True):
            body["last-run"] = (
                convert.run_summary(stored.last_run) if stored.HasField("last_run") else None
            )
    return {"message": listed}, 200, headers


async def _set_paused(group: str, name: str, paused: bool):
    b = backends.current()
    await b.call(
        b.entities.SetPipelinePaused(
            entities_pb2.SetPipelinePausedRequest(group=group, name=name, paused=paused)
        )
    )
    return OK, 202


async def pipeline_pause(group: str, name: str):
    return await _set_paused(group, name, True)


async def pipeline_unpause(group: str, name: str):
    return await _set_paused(group, name, False)


# --- runner types (ours): which runner types a pipeline may run on -------------------


def _runner_types(allowed: entities_pb2.PipelineRunnerTypes) -> dict:
    return {"message": {"runner-types": list(allowed.runner_types), "default": allowed.is_default}}


async def pipeline_runner_types_get(group: str, name: str):
    b = backends.current()
    ref = entities_pb2.PipelineRef(group=group, name=name)
    return _runner_types(await b.call(b.entities.GetPipelineRunnerTypes(ref))), 200


async def _set_runner_types(group: str, name: str, types: list[str], use_default: bool):
    b = backends.current()
    request = entities_pb2.SetPipelineRunnerTypesRequest(
        group=group, name=name, runner_types=types, use_default=use_default
    )
    allowed = await b.call(b.entities.SetPipelineRunnerTypes(request))
    log.info("pipeline %s/%s may run on: %s", group, name, ", ".join(allowed.runner_types))
    return _runner_types(allowed), 200


async def pipeline_runner_types_set(group: str, name: str, body: list[str]):
    return await _set_runner_types(group, name, body, False)


async def pipeline_runner_types_reset(group: str, name: str):
    return await _set_runner_types(group, name, [], True)
