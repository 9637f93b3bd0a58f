"""Pipelines, keyed by (group, name), with their definition kept as JSON."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from bob_common import pipeline_rules
from bob_common.pipeline_rules import EXTERNAL
from bob_common.run_states import ACTIVE, RunStatus
from entities_svc import compiled, journal, plugins, run_status, schedules, trigger_index
from entities_svc.clock import now_ms
from entities_svc.errors import FailedPrecondition, Invalid, NotFound
from entities_svc.lifecycle import parse_status
from entities_svc.models import LogLine, Pipeline, Run, StepResult, database

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoredPipeline:
    group: str
    name: str
    # bob.v1.Pipeline in protobuf's JSON mapping with proto field names.
    definition: dict[str, Any]
    paused: bool
    # The JSON object as posted; empty for a pipeline stored before documents were kept.
    document: str = ""


def _to_domain(row: Pipeline) -> StoredPipeline:
    return StoredPipeline(row.group, row.name, json.loads(row.definition), row.paused, row.document)


def _check_ref(group: str, name: str) -> None:
    if not group or not name:
        raise Invalid("Pipeline group and name must not be empty")


def _by_name(m: list[int]) -> object:
    return Pipeline.select().where((Pipeline.group == m[0]) & (Pipeline.name == m[1]))


def find_row(group: str, name: str) -> Pipeline:
    # Read by every start: its SQL is built once (compiled.py).
    found = compiled.select_rows(Pipeline, "by name", (group, name), _by_name)
    if not found:
        raise NotFound(f"Pipeline {group}/{name} not found")
    return found[0]  # type: ignore[return-value]


def check_definition(definition: dict[str, Any]) -> None:
    """The rules a definition must follow beyond its shape (pipeline_rules.STORE): Invalid
    for one that contradicts itself. The plugins it names may be registered later
    (manifests are applied in any order, as in Bob): a start checks them (plugin_uses)."""
    if problem := pipeline_rules.problem(definition, pipeline_rules.STORE):
        raise Invalid(problem[:1].upper() + problem[1:])


def plugin_uses(definition: dict[str, Any]) -> list[tuple[plugins.Registry, str, str]]:
    """Each plugin the definition names, in order: (registry, plugin name, what names it)."""
    uses = []
    for resource in definition.get("resources", []):
        # An internal resource is an artifact of another run, served by an artifact store.
        registry = plugins.PROVIDERS if resource.get("type") == EXTERNAL else plugins.STORES
        what = f"resource {resource.get('name')!r}"
        uses.append((registry, resource.get("provider", ""), what))
    for step in definition.get("steps", []):
        artifact = step.get("produces_artifact") or {}
        if artifact.get("store"):
            uses.append((plugins.STORES, artifact["store"], f"artifact {artifact.get('name')!r}"))
    return uses


def _check_document(document: str) -> None:
    if not document:
        return
    try:
        parsed = json.loads(document)
    except ValueError:
        raise Invalid("Pipeline document is not valid JSON") from None
    if not isinstance(parsed, dict):
        raise Invalid("Pipeline document must be a JSON object")


def put_pipeline(group: str, name: str, definition: dict[str, Any], document: str = "") -> bool:
    """Creates the pipeline or replaces its definition and document (paused stays as it
    was); True when it was created. Runs already accepted keep their own snapshot. A
    definition that breaks a rule (check_definition) is refused and the stored one stays.
    `document` is the JSON object as the client posted it, kept for reads."""
    _check_ref(group, name)
    check_definition(definition)
    _check_document(document)
    text = json.dumps(definition, sort_keys=True)
    with database.atomic():
        updated = (
            Pipeline.update(definition=text, document=document)
            .where((Pipeline.group == group) & (Pipeline.name == name))
            .execute()
        )
        if not updated:
            Pipeline.create(group=group, name=name, definition=text, document=document)
        schedules.sync(group, name, definition, now_ms())  # issue 11: its schedules' rows
        # Triggers (issue 11): the repositories deliveries find the pipeline by.
        trigger_index.index(find_row(group, name).id, definition)
        what = "updated" if updated else "created"
        _journal(group, name, f"Pipeline{what.title()}", what)
    log.info("%s pipeline %s/%s", what, group, name)
    return not updated


def _journal(group: str, name: str, reason: str, what: str) -> None:
    message = f"Pipeline {group}/{name} {what}"
    journal.append(run_status.KIND, reason, message, group=group, name=name)


def get_pipeline(group: str, name: str) -> StoredPipeline:
    return _to_domain(find_row(group, name))


def list_pipelines(
    group: str = "",
    name: str = "",
    status: int = RunStatus.UNSPECIFIED,
    after: tuple[str, str] | None = None,
    limit: int | None = None,
) -> list[StoredPipeline]:
    """Pipelines matching every filter that is set, by group then name; `status` keeps those
    whose latest run has it. `after` (group, name): only those after it; `limit`: at most
    so many."""
    status = parse_status(status)
    query = Pipeline.select().order_by(Pipeline.group, Pipeline.name)
    if after is not None:
        after_group, after_name = after
        query = query.where(
            (Pipeline.group > after_group)
            | ((Pipeline.group == after_group) & (Pipeline.name > after_name))
        )
    if limit is not None:
        query = query.limit(limit)
    if group:
        query = query.where(Pipeline.group == group)
    if name:
        query = query.where(Pipeline.name == name)
    if status != RunStatus.UNSPECIFIED:
        latest_status = (
            Run.select(Run.status)
            .where((Run.group == Pipeline.group) & (Run.name == Pipeline.name))
            .order_by(Run.number.desc())
            .limit(1)
        )
        query = query.where(latest_status == int(status))
    return [_to_domain(row) for row in query]


def count_pipelines() -> int:
    return Pipeline.select().count()


def set_paused(group: str, name: str, paused: bool) -> None:
    """Pauses or unpauses the pipeline; journaled only when that changes something."""
    what = "paused" if paused else "unpaused"
    with database.atomic():
        row = find_row(group, name)
        if row.paused == paused:
            return
        Pipeline.update(paused=paused).where(Pipeline.id == row.id).execute()
        _journal(group, name, f"Pipeline{what.title()}", what)
    log.info("%s pipeline %s/%s", what, group, name)


def delete_pipeline(group: str, name: str) -> None:
    """Deletes the pipeline with its runs, their steps and log lines; refused while a run
    may still change, so that no runner reports into a run that is gone."""
    with database.atomic():
        row = find_row(group, name)
        of_pipeline = (Run.group == group) & (Run.name == name)
        active = [
            run.id
            for run in Run.select(Run.id)
            .where(of_pipeline & Run.status.in_([int(s) for s in ACTIVE]))
            .order_by(Run.number)
        ]
        if active:
            # The API server parses the ids after the colon: keep this format.
            raise FailedPrecondition(f"Pipeline has active runs: {', '.join(active)}")
        run_ids = Run.select(Run.id).where(of_pipeline)
        lines = LogLine.delete().where(LogLine.run.in_(run_ids)).execute()
        StepResult.delete().where(StepResult.run.in_(run_ids)).execute()
        runs = Run.delete().where(of_pipeline).execute()
        row.delete_instance()
        schedules.drop(group, name)  # issue 11: its schedules and claimed ticks
        _journal(group, name, "PipelineDeleted", "deleted")
    log.info("deleted pipeline %s/%s with %d runs and %d log lines", group, name, runs, lines)
