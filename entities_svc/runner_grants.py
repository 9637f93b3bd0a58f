"""Which runner types a pipeline may run on: the list an admin set for it, or else the
cluster's default (BOB_RUNNER_TYPES_ALLOWED, which never holds "shell"). A start on any
other type is refused before anything is recorded or queued."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from bob_common import runner_types
from entities_svc import journal, run_status
from entities_svc.errors import FailedPrecondition, Invalid
from entities_svc.models import Pipeline, database
from entities_svc.pipelines import find_row

log = logging.getLogger(__name__)


class RunnerTypeNotAllowed(FailedPrecondition):
    """Raised by create_run for a runner type the pipeline may not run on; the API answers
    422 with this message, which says how an admin allows it."""


@dataclass(frozen=True)
class Allowed:
    runner_types: tuple[str, ...]
    # True when the pipeline has no list of its own and the cluster's default applies.
    is_default: bool


def allowed_for(row: Pipeline, default: tuple[str, ...]) -> Allowed:
    if not row.runner_types:
        return Allowed(default, True)
    return Allowed(tuple(json.loads(row.runner_types)), False)


def check(row: Pipeline, runner_type: str, default: tuple[str, ...]) -> None:
    """RunnerTypeNotAllowed unless the pipeline of `row` may run on `runner_type`
    (canonical)."""
    allowed = allowed_for(row, default)
    if runner_type in allowed.runner_types:
        return
    where = "the cluster's default, BOB_RUNNER_TYPES_ALLOWED" if allowed.is_default else "its own"
    listed = ", ".join(allowed.runner_types) or "none"
    raise RunnerTypeNotAllowed(
        f"Runner type {runner_type!r} is not allowed for pipeline {row.group}/{row.name} "
        f"(allowed: {listed}; {where}). An admin allows it with "
        f"PUT /pipelines/groups/{row.group}/names/{row.name}/runner-types"
    )


def get(group: str, name: str, default: tuple[str, ...]) -> Allowed:
    return allowed_for(find_row(group, name), default)


def put(group: str, name: str, types: Iterable[str] | None, default: tuple[str, ...]) -> Allowed:
    """Sets the pipeline's own list, or with None drops it (the default applies again).
    Journaled: who may run builds where is worth a trace."""
    stored = ""
    if types is not None:
        try:
            stored = json.dumps(list(runner_types.normalized(types)))
        except ValueError as exc:
            raise Invalid(str(exc)) from None
    with database.atomic():
        row = find_row(group, name)
        Pipeline.update(runner_types=stored).where(Pipeline.id == row.id).execute()
        row.runner_types = stored
        allowed = allowed_for(row, default)
        shown = ", ".join(allowed.runner_types) or "none"
        what = f"runner types set to {shown}" + (" (the default)" if allowed.is_default else "")
        journal.append(
            run_status.KIND,
            "PipelineRunnerTypes",
            f"Pipeline {group}/{name} {what}",
            group=group,
            name=name,
        )
    log.info("pipeline %s/%s: %s", group, name, what)
    return allowed
