"""A pipeline's schedules (issue 11, ours): each with its next tick and its last one, a
view beside the pipeline, whose own read stays exactly as posted."""

from __future__ import annotations

from api_server import backends, convert
from bob_pb import entities_pb2


def _state(state: entities_pb2.ScheduleState) -> dict:
    return {
        "cron": state.cron,
        "timezone": state.timezone,
        "next": convert.timestamp(state.next_ms),
        "last-tick": convert.timestamp(state.last_tick_ms),
        "last-run-id": state.last_run_id,
        "last-outcome": state.last_outcome,
    }


async def pipeline_schedules(group: str, name: str):
    b = backends.current()
    ref = entities_pb2.PipelineRef(group=group, name=name)
    reply = await b.call(b.entities.ListSchedules(ref))
    return {"message": [_state(s) for s in reply.schedules]}, 200
