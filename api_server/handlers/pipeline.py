"""Pipelines and their runs."""

from __future__ import annotations

import logging

from google.protobuf import json_format

from api_server import backends, convert
from api_server.problems import ApiError, unavailable
from bob_common.broker_link import QueueFull, QueueUnavailable
from bob_pb import entities_pb2, messages_pb2

log = logging.getLogger(__name__)

OK = {"message": "Ok"}
DEFAULT_RUNNER_TYPE = "docker"


async def pipeline_create(group: str, name: str, body: dict):
    try:
        pipeline = convert.pipeline_from_json(body)
    except json_format.ParseError as exc:
        raise ApiError(400, f"Invalid pipeline: {exc}") from exc
    await backends.current().rpc(
        "PutPipeline", entities_pb2.PutPipelineRequest(group=group, name=name, pipeline=pipeline)
    )
    return OK, 202


async def pipeline_get(group: str, name: str):
    stored = await backends.current().rpc(
        "GetPipeline", entities_pb2.PipelineRef(group=group, name=name)
    )
    return {"message": convert.pipeline_to_json(stored)}, 200


async def pipeline_delete(group: str, name: str):
    b = backends.current()
    ref = entities_pb2.PipelineRef(group=group, name=name)
    try:
        await b.rpc("DeletePipeline", ref)
    except ApiError as err:
        if err.status != 422:
            raise
        runs = await b.rpc("ListRuns", ref)
        active = [r.id for r in runs.runs if r.status in convert.ACTIVE]
        message = {
            "error": "Pipeline has active runs. Wait for them to finish or stop them.",
            "runs": active,
        }
        raise ApiError(422, message) from err
    b.ended.forget_pipeline(group, name)
    return OK, 202


async def pipeline_list(group: str | None = None, name: str | None = None, status=None):
    request = entities_pb2.ListPipelinesRequest(
        group=group or "",
        name=name or "",
        status=convert.status_value(status) if status else messages_pb2.RUN_STATUS_UNSPECIFIED,
    )
    reply = await backends.current().rpc("ListPipelines", request)
    return {"message": [convert.pipeline_to_json(p) for p in reply.pipelines]}, 200


async def _set_paused(group: str, name: str, paused: bool):
    await backends.current().rpc(
        "SetPipelinePaused",
        entities_pb2.SetPipelinePausedRequest(group=group, name=name, paused=paused),
    )
    return OK, 202


async def pipeline_pause(group: str, name: str):
    return await _set_paused(group, name, True)


async def pipeline_unpause(group: str, name: str):
    return await _set_paused(group, name, False)


async def pipeline_start(group: str, name: str, body: dict | None = None):
    runner_type = (body or {}).get("runner/type") or DEFAULT_RUNNER_TYPE
    # Entities records the run and queues its job; a full queue or an unreachable broker
    # comes back as 503 with nothing recorded.
    job = await backends.current().rpc(
        "CreateRun",
        entities_pb2.CreateRunRequest(group=group, name=name, runner_type=runner_type),
    )
    log.info("run %s: started %s/%s on %s", job.run_id, group, name, runner_type)
    return {"message": job.run_id}, 202


async def run_of(group: str, name: str, run_id: str) -> entities_pb2.Run:
    run = await backends.current().rpc("GetRun", entities_pb2.RunRef(run_id=run_id))
    if (run.group, run.name) != (group, name):
        raise ApiError(404, f"Run {run_id} is not a run of pipeline {group}/{name}")
    return run


async def pipeline_stop(group: str, name: str, id_: str):
    b = backends.current()
    await run_of(group, name, id_)
    # Entities stops a pending run itself (it will never start) and refuses an ended one.
    reply = await b.rpc("StopRun", entities_pb2.RunRef(run_id=id_))
    if reply.broadcast:
        await _control(id_, messages_pb2.STOP)
    return OK, 202


async def _control(run_id: str, action: int) -> None:
    try:
        await backends.current().publisher.publish_control(
            messages_pb2.Control(run_id=run_id, action=action)
        )
    except (QueueFull, QueueUnavailable) as exc:
        what = messages_pb2.ControlAction.Name(action).lower()
        raise unavailable(f"Queue unavailable, the {what} was not sent: {exc}") from exc


async def run_pause(group: str, name: str, id_: str):
    run = await run_of(group, name, id_)
    if run.status != messages_pb2.RUNNING:
        raise ApiError(422, f"Run {id_} is {convert.status_name(run.status)}, not running")
    await _set_run_paused(id_, True)
    return OK, 202


async def run_unpause(group: str, name: str, id_: str):
    run = await run_of(group, name, id_)
    if run.status != messages_pb2.PAUSED:
        raise ApiError(422, f"Run {id_} is {convert.status_name(run.status)}, not paused")
    await _set_run_paused(id_, False)
    return OK, 202


async def _set_run_paused(run_id: str, paused: bool) -> None:
    """Recorded in entities first, so the runner learns it when it renews its lease even
    if the broadcast does not reach it."""
    await backends.current().rpc(
        "SetRunPaused", entities_pb2.SetRunPausedRequest(run_id=run_id, paused=paused)
    )
    await _control(run_id, messages_pb2.PAUSE if paused else messages_pb2.RESUME)


async def run_get(group: str, name: str, id_: str):
    return {"message": convert.run_detail(await run_of(group, name, id_))}, 200


async def pipeline_status(id_: str):
    b = backends.current()
    status = b.ended.status(id_)
    if status is None:
        run = await b.rpc("GetRun", entities_pb2.RunRef(run_id=id_))
        b.ended.remember(run)
        status = run.status
    return {"message": convert.status_name(status)}, 200


async def pipeline_logs(id_: str, offset: int, lines: int):
    reply = await backends.current().rpc(
        "GetLogs", entities_pb2.GetLogsRequest(run_id=id_, offset=offset, limit=lines)
    )
    return {"message": list(reply.lines)}, 200


async def pipeline_runs(group: str, name: str):
    # ListRuns answers NOT_FOUND (404) for an unknown pipeline, not an empty list.
    reply = await backends.current().rpc(
        "ListRuns", entities_pb2.PipelineRef(group=group, name=name)
    )
    return {"message": [convert.run_summary(r) for r in reply.runs]}, 200
