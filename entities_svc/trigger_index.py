"""Which pipelines have a trigger on a repository: each trigger's repository, kept in its
own indexed table beside the definition, so that a delivery reads only the pipelines it
may start instead of every definition."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from bob_common import triggers
from entities_svc.models import Pipeline, PipelineTrigger


def index(row_id: int, definition: Mapping[str, Any]) -> None:
    """Rewrites the repositories of the pipeline's triggers; call it in the transaction
    that stores its definition. (Deleting the pipeline deletes them: ON DELETE CASCADE.)"""
    PipelineTrigger.delete().where(PipelineTrigger.pipeline == row_id).execute()
    repositories = {str(t.get("repository", "")).lower() for t in definition.get("triggers") or ()}
    if repositories:
        PipelineTrigger.insert_many(
            [{"pipeline": row_id, "repository": r} for r in sorted(repositories)]
        ).execute()


def on_repository(repository: str) -> list[tuple[Pipeline, Mapping[str, Any]]]:
    """(pipeline row, trigger) for each trigger of `repository`, by group, name and the
    trigger's place in its pipeline."""
    rows = (
        Pipeline.select()
        .join(PipelineTrigger, on=PipelineTrigger.pipeline == Pipeline.id)
        .where(PipelineTrigger.repository == repository.lower())
        .order_by(Pipeline.group, Pipeline.name)
    )
    found = []
    for row in rows:
        for trigger in json.loads(row.definition).get("triggers") or ():
            if triggers.same_repository(trigger, repository):
                found.append((row, trigger))
    return found
