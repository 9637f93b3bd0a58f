"""Runs: start (with or without a logger), stop (by run id or by pipeline), pause,
status, detail and the runs of a pipeline."""

from __future__ import annotations

import logging

from api_server import backends, convert, paging
from api_server.problems import ApiError
from bob_common.run_states import status_name
from bob_pb import entities_pb2, messages_pb2

log = logging.getLogger(__name__)

OK = {"message": "Ok"}


async def _start(group: str, name: str, logger: str, body: dict | None):
    runner_type = (body or {}).get("runner/type", "")
    # Entities records the run and queues its job; a full queue or an unreachable broker
    # comes back as 503 with nothing recorded, a missing plugin or logger as 422.
    b = backends.current()
    job = await b.call(
        b.entities.CreateRun(
            entities_pb2.CreateRunRequest(
                group=group, name=name, runner_type=runner_type, logger=logger
            )
        )
    )
    log.info("run %s: started %s/%s on %s", job.run_id, group, name, job.runner_type)
    return {"message": job.run_id}, 202


async def pipeline_start(group: str, name: str, logger: str, body: dict | None = None):
    return await _start(group, name, logger, body)


async def pipeline_start_at(group: str, name: str, body: dict | None = None):
    return await _start(group, name, "", body)


async def run_of(group: str, name: str, run_id: str) -> entities_pb2.Run:
    b = backends.current()
    run = await b.call(b.entities.GetRun(entities_pb2.RunRef(run_id=run_id)))
    if (run.group, run.name) != (group, name):
        raise ApiError(404, f"Run {run_id} is not a run of pipeline {group}/{name}")
    return run


async def _stop(run_id: str):
    b = backends.current()
    try:
        # Entities stops a pending run itself (it will never start).
        await b.call(b.entities.StopRun(entities_pb2.RunRef(run_id=run_id)))
    except ApiError as err:
        if err.status != 422:
            raise
        # The run has already ended: as in Bob, stopping it is accepted ("Ok") and
        # changes nothing.
        log.info("run %s: stop of an ended run: %s", run_id, err.message)
        return OK, 202
    # A pending run is stopped at once: its next status read asks entities, so that the
    # caller sees its own stop even before the journal brings it.
    b.statuses.forget(run_id)
    # Entities tells the runner executing it (control fanout, lease renewal).
    return OK, 202


async def pipeline_stop(run_id: str):
    return await _stop(run_id)


async def pipeline_stop_at(group: str, name: str, id_: str):
    await run_of(group, name, id_)
    return await _stop(id_)


async def run_pause(group: str, name: str, id_: str):
    return await _set_run_paused(group, name, id_, True)


async def run_unpause(group: str, name: str, id_: str):
    return await _set_run_paused(group, name, id_, False)


async def _set_run_paused(group: str, name: str, run_id: str, paused: bool):
    """Recorded in entities, which tells the runner: on the control fanout, and when the
    runner renews its lease, should the broadcast not reach it."""
    run = await run_of(group, name, run_id)
    needed, word = (messages_pb2.RUNNING, "running") if paused else (messages_pb2.PAUSED, "paused")
    if run.status != needed:
        raise ApiError(422, f"Run {run_id} is {status_name(run.status)}, not {word}")
    b = backends.current()
    await b.call(
        b.entities.SetRunPaused(entities_pb2.SetRunPausedRequest(run_id=run_id, paused=paused))
    )
    return OK, 202


async def run_get(group: str, name: str, id_: str):
    return {"message": convert.run_detail(await run_of(group, name, id_))}, 200


async def pipeline_status(run_id: str):
    b = backends.current()
    status = b.statuses.status(run_id)
    if status is None:
        asked = b.statuses.asking()
        run = await b.call(b.entities.GetRun(entities_pb2.RunRef(run_id=run_id)))
        b.statuses.remember(run, asked)
        status = run.status
    return {"message": status_name(status)}, 200


async def pipeline_runs(
    group: str,
    name: str,
    limit: int | None = None,
    cursor: str | None = None,
    order: str = "oldest",
):
    # ListRuns answers NOT_FOUND (404) for an unknown pipeline, not an empty list.
    after = paging.after_key(cursor, 1)
    request = entities_pb2.ListRunsRequest(
        group=group,
        name=name,
        limit=paging.limit_of(limit),
        after_run_id=after[0] if after else "",
        newest_first=order == "newest",
    )
    b = backends.current()
    reply = await b.call(b.entities.ListRunsPage(request))
    last = reply.runs[-1] if reply.more and reply.runs else None
    headers = paging.next_headers(last and [last.id])
    return {"message": [convert.run_summary(r) for r in reply.runs]}, 200, headers
