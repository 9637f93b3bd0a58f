"""The gRPC adapter: converts protobuf to domain values and back, runs the domain on the
database thread, and maps domain errors to status codes in one table."""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn, TypeVar

import grpc
import peewee
from google.protobuf import empty_pb2, json_format

from bob_common import pages, runner_types, triggers
from bob_pb import entities_pb2, entities_pb2_grpc, messages_pb2, pipeline_pb2
from entities_svc import (
    access,
    journal,
    leases,
    pipelines,
    plugins,
    run_commands,
    run_queries,
    run_start,
    runner_grants,
    runners,
    schedules,
    secrets,
    tokens,
    watch,
    webhooks,
)
from entities_svc.clock import now_ms
from entities_svc.db import DatabaseThread
from entities_svc.errors import (
    AlreadyExists,
    FailedPrecondition,
    Forbidden,
    Invalid,
    NotFound,
    NotQueued,
    Unauthenticated,
)
from entities_svc.feed import EventFeed
from entities_svc.job_queue import JobQueue, pipeline_from_dict
from entities_svc.notifier import NotificationSender
from entities_svc.scheduler import Scheduler
from entities_svc.secret_box import SecretBox

T = TypeVar("T")

# Looked up along the exception's MRO, so a subclass inherits its base's code.
STATUS_CODES: dict[type[Exception], grpc.StatusCode] = {
    NotFound: grpc.StatusCode.NOT_FOUND,
    FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    Invalid: grpc.StatusCode.INVALID_ARGUMENT,
    NotQueued: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Forbidden: grpc.StatusCode.PERMISSION_DENIED,
    AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    # "database is locked", a lost PostgreSQL connection and the like: the caller may retry.
    peewee.OperationalError: grpc.StatusCode.UNAVAILABLE,
    # A value the database's column cannot hold (PostgreSQL checks each type's range).
    peewee.DataError: grpc.StatusCode.INVALID_ARGUMENT,
}

_EMPTY = empty_pb2.Empty()


def status_code(exc: Exception) -> grpc.StatusCode | None:
    for cls in type(exc).__mro__:
        if cls in STATUS_CODES:
            return STATUS_CODES[cls]
    return None


def pipeline_to_dict(pipeline: pipeline_pb2.Pipeline) -> dict[str, Any]:
    return json_format.MessageToDict(pipeline, preserving_proto_field_name=True)


def _stored_pipeline(
    stored: pipelines.StoredPipeline,
    last_run: run_queries.RunInfo | None = None,
    listed: bool = False,
) -> entities_pb2.StoredPipeline:
    """`listed`: without the definition when the document is kept (which says the same),
    so that a pipeline counts once against a page's bytes; and so does one read alone
    whose two copies would outgrow gRPC's message limit."""
    definition = None if stored.document and listed else pipeline_from_dict(stored.definition)
    if definition and stored.document:
        if definition.ByteSize() + len(stored.document) > pages.LIST_MAX_BYTES:
            definition = None
    return entities_pb2.StoredPipeline(
        group=stored.group,
        name=stored.name,
        pipeline=definition,
        document=stored.document,
        paused=stored.paused,
        last_run=_run(last_run) if last_run else None,
    )


def _summary(
    stored: pipelines.StoredPipeline, last_run: run_queries.RunInfo | None
) -> entities_pb2.StoredPipeline:
    return entities_pb2.StoredPipeline(
        group=stored.group,
        name=stored.name,
        paused=stored.paused,
        last_run=_run(last_run) if last_run else None,
    )


def _run(info: run_queries.RunInfo) -> entities_pb2.Run:
    return entities_pb2.Run(
        id=info.id,
        group=info.group,
        name=info.name,
        status=int(info.status),
        reason=info.reason,
        runner_type=info.runner_type,
        runner_id=info.runner_id,
        attempt=info.attempt,
        created_at_ms=info.created_at_ms,
        started_at_ms=info.started_at_ms,
        completed_at_ms=info.completed_at_ms,
        logger=info.logger,
        initiated_at_ms=info.initiated_at_ms,
        initialized_at_ms=info.initialized_at_ms,
        status_event_id=info.status_event_id,
        trigger=_run_trigger(info.trigger),
        steps=[
            entities_pb2.StepResult(
                index=step.index, exit_code=step.exit_code, duration_ms=step.duration_ms
            )
            for step in info.steps
        ],
        scheduled_by=_scheduled_by(info.scheduled_by),
    )


def _scheduled_by(by: tuple[str, str, int] | None) -> entities_pb2.ScheduledBy | None:
    if by is None:
        return None
    cron, timezone, tick_ms = by
    return entities_pb2.ScheduledBy(cron=cron, timezone=timezone, tick_ms=tick_ms)


def _run_trigger(text: str) -> entities_pb2.RunTrigger | None:
    if not text:
        return None
    return json_format.ParseDict(json.loads(text), entities_pb2.RunTrigger())


def _plugins(found: list[plugins.Plugin]) -> entities_pb2.ListPluginsResponse:
    return entities_pb2.ListPluginsResponse(
        plugins=[entities_pb2.Plugin(name=p.name, url=p.url) for p in found]
    )


def _runner(beat: runners.Heartbeat) -> entities_pb2.RunnerInfo:
    node = beat.node
    return entities_pb2.RunnerInfo(
        runner_id=beat.runner_id,
        runner_type=beat.runner_type,
        capacity=beat.capacity,
        run_ids=beat.run_ids,
        last_seen_ms=beat.at_ms,
        node=messages_pb2.NodeInfo(**vars(node)) if node else None,
        engine_problem=beat.engine_problem,
    )


MAX_INT64 = 2**63 - 1
# uint32 on the wire, signed 32-bit columns on PostgreSQL (SQLite's hold 64 bits): a
# runner's capacity or CPU count beyond it is held at it, the same on both databases.
MAX_INT32 = 2**31 - 1
ENGINE_PROBLEM_MAX = 1000


def _seen(request: entities_pb2.RenewLeasesRequest) -> runners.Heartbeat | None:
    """What a renewing runner says of itself; None when it says nothing (no type)."""
    if not request.runner_type:
        return None
    node = None
    if request.HasField("node"):
        n = request.node
        # uint64 on the wire, signed 64-bit in the database; and SQLite stores a NaN as
        # NULL, which the column refuses.
        node = runners.Node(
            n.hostname,
            min(n.cpu_count, MAX_INT32),
            n.cpu_load if math.isfinite(n.cpu_load) else 0.0,
            min(n.memory_free_bytes, MAX_INT64),
            min(n.memory_total_bytes, MAX_INT64),
        )
    return runners.Heartbeat(
        request.runner_id,
        request.runner_type,
        min(request.capacity, MAX_INT32),
        tuple(run.run_id for run in request.runs),
        now_ms(),
        node,
        # Bounded: it is the runner's own text, shown as is by /cluster/info.
        request.engine_problem[:ENGINE_PROBLEM_MAX],
    )


def _plugin_rpcs(registry: plugins.Registry) -> tuple[Callable[..., Any], ...]:
    """The Put, Delete and List rpcs of one plugin registry."""

    async def put(self: EntitiesServicer, request, context):
        await self._call(context, plugins.put, registry, plugins.Plugin(request.name, request.url))
        return _EMPTY

    async def delete(self: EntitiesServicer, request, context):
        await self._call(context, plugins.delete, registry, request.name)
        return _EMPTY

    async def list_all(self: EntitiesServicer, request, context):
        return _plugins(await self._call(context, plugins.list_all, registry))

    return put, delete, list_all


class EntitiesServicer(entities_pb2_grpc.EntitiesServicer):
    def __init__(
        self,
        db: DatabaseThread,
        jobs: JobQueue,
        *,
        lease_ms: int,
        events_applied: Callable[[], int] = lambda: 0,
        job_due: Callable[[], None] = lambda: None,
        control_owed: Callable[[], None] = lambda: None,
        box: SecretBox | None = None,
        events_refused: Callable[[], int] = lambda: 0,
        runner_types_allowed: tuple[str, ...] = (runner_types.DEFAULT,),
        scheduler: Scheduler | None = None,
        notifier: NotificationSender | None = None,
        webhook_delivery_keep_ms: int = 7 * 24 * 3600 * 1000,
    ) -> None:
        self._db = db
        # Seals and opens stored secrets; without keys, only secrets fail.
        self._box = box or SecretBox(())
        self._jobs = jobs
        self._lease_ms = lease_ms
        self._events_applied = events_applied
        # Tells the sweep a run's job is due now (a run was handed back).
        self._job_due = job_due
        # Sends the controls owed now (a stop or pause was recorded); never waited for.
        self._control_owed = control_owed
        self._events_refused = events_refused
        self._feed = EventFeed(db)
        # WatchEvents' streams; service.py ends them before the server stops.
        self.watchers = watch.Watchers(self._feed, lambda: db.call(journal.newest_id))
        # The runner types of pipelines without a list of their own (BOB_RUNNER_TYPES_ALLOWED).
        self._allowed_by_default = runner_types_allowed
        # Issue 11: their counts, for GetStats.
        self._scheduler = scheduler
        self._notifier = notifier
        # How long a webhook delivery id is remembered (BOB_WEBHOOK_DELIVERY_KEEP_S).
        self._webhook_delivery_keep_ms = webhook_delivery_keep_ms

    async def _call(self, context: grpc.aio.ServicerContext, fn: Callable[..., T], *args: Any) -> T:
        return await self._mapped(context, self._db.call(fn, *args))

    async def _mapped(self, context: grpc.aio.ServicerContext, pending: Awaitable[T]) -> T:
        """The result, or the call aborted with the status code of the domain error."""
        try:
            return await pending
        except Exception as exc:
            code = status_code(exc)
            if code is None:
                raise
            await _abort(context, code, str(exc))

    async def PutPipeline(self, request, context):
        created = await self._call(
            context,
            pipelines.put_pipeline,
            request.group,
            request.name,
            pipeline_to_dict(request.pipeline),
            request.document,
        )
        return entities_pb2.PutPipelineResponse(created=created)

    async def GetPipeline(self, request, context):
        stored = await self._call(context, pipelines.get_pipeline, request.group, request.name)
        return _stored_pipeline(stored)

    async def DeletePipeline(self, request, context):
        await self._call(context, pipelines.delete_pipeline, request.group, request.name)
        return _EMPTY

    async def ListPipelines(self, request, context):
        limit = min(request.limit or pages.LIST_MAX_ITEMS, pages.LIST_MAX_ITEMS)
        after = (request.after_group, request.after_name) if request.after_group else None
        # One more than asked, to know whether more follow.
        found = await self._call(
            context,
            run_queries.pipelines_with_latest_run,
            request.group,
            request.name,
            request.status,
            after,
            limit + 1,
        )
        listed = (
            _summary(p, last_run) if request.summary else _stored_pipeline(p, last_run, listed=True)
            for p, last_run in found[:limit]
        )
        page, cut = pages.fill(listed)
        return entities_pb2.ListPipelinesResponse(pipelines=page, more=cut or len(found) > limit)

    async def SetPipelinePaused(self, request, context):
        await self._call(context, pipelines.set_paused, request.group, request.name, request.paused)
        return _EMPTY

    # Resource providers, artifact stores and loggers: one registry each, the same rpcs.
    PutResourceProvider, DeleteResourceProvider, ListResourceProviders = _plugin_rpcs(
        plugins.PROVIDERS
    )
    PutArtifactStore, DeleteArtifactStore, ListArtifactStores = _plugin_rpcs(plugins.STORES)
    PutLogger, DeleteLogger, ListLoggers = _plugin_rpcs(plugins.LOGGERS)
    # --- issue 11 (sched): notifiers, and a pipeline's schedules ---
    PutNotifier, DeleteNotifier, ListNotifiers = _plugin_rpcs(plugins.NOTIFIERS)

    async def ListSchedules(self, request, context):
        await self._call(context, pipelines.find_row, request.group, request.name)
        found = await self._call(context, schedules.states, request.group, request.name)
        return entities_pb2.ListSchedulesResponse(
            schedules=[
                entities_pb2.ScheduleState(
                    cron=s.schedule.cron,
                    timezone=s.schedule.timezone,
                    next_ms=s.next_ms,
                    last_tick_ms=s.last_tick_ms,
                    last_run_id=s.last_run_id,
                    last_outcome=s.last_outcome,
                )
                for s in found
            ]
        )

    async def CreateRun(self, request, context):
        starting = run_start.start_run(
            self._db,
            self._jobs,
            request.group,
            request.name,
            request.runner_type,
            request.logger,
            self._allowed_by_default,
            secrets_readable=self._box.usable,
        )
        return await self._mapped(context, starting)

    async def ClaimRun(self, request, context):
        claim = await self._call(
            context,
            run_commands.claim_run,
            request.run_id,
            request.attempt,
            request.runner_id,
            self._lease_ms,
        )
        return entities_pb2.ClaimRunResponse(
            claimed=claim.claimed,
            reason=claim.reason,
            status=int(claim.status),
            claim_secret=claim.secret,
        )

    async def GetRun(self, request, context):
        return _run(await self._call(context, run_queries.get_run, request.run_id))

    async def ListRuns(self, request, context):
        return await self.ListRunsPage(
            entities_pb2.ListRunsRequest(group=request.group, name=request.name), context
        )

    async def ListRunsPage(self, request, context):
        limit = min(request.limit or pages.LIST_MAX_ITEMS, pages.LIST_MAX_ITEMS)
        found = await self._call(
            context,
            run_queries.list_runs,
            request.group,
            request.name,
            request.after_run_id,
            limit + 1,  # one more than asked, to know whether more follow
            request.newest_first,
        )
        page, cut = pages.fill(_run(info) for info in found[:limit])
        return entities_pb2.ListRunsResponse(runs=page, more=cut or len(found) > limit)

    async def GetLogs(self, request, context):
        offset, limit = request.offset, request.limit
        if request.tail:
            # Counted, then read: a line stored in between only moves the window on.
            offset = await self._mapped(
                context, self._db.read(run_queries.tail_offset, request.run_id, request.tail)
            )
            limit = min(limit or request.tail, request.tail)
        lines = await self._mapped(
            context, self._db.read(run_queries.get_logs, request.run_id, offset, limit)
        )
        return entities_pb2.GetLogsResponse(lines=lines, offset=offset)

    async def StopRun(self, request, context):
        stop = await self._call(context, run_commands.stop_run, request.run_id)
        if stop.broadcast:
            self._control_owed()
        return entities_pb2.StopRunResponse(run=_run(stop.run), broadcast=stop.broadcast)

    async def SetRunPaused(self, request, context):
        info = await self._call(context, run_commands.set_paused, request.run_id, request.paused)
        self._control_owed()
        return _run(info)

    async def RenewLeases(self, request, context):
        reported = [(run.run_id, run.attempt) for run in request.runs]
        orders = await self._call(
            context, leases.renew, request.runner_id, reported, self._lease_ms, _seen(request)
        )
        return entities_pb2.RenewLeasesResponse(
            instructions=[
                entities_pb2.RunInstruction(run_id=run_id, order=int(order))
                for (run_id, _), order in zip(reported, orders, strict=True)
            ],
            lease_ms=self._lease_ms,
        )

    async def ReleaseRun(self, request, context):
        info = await self._call(
            context,
            leases.release,
            request.run_id,
            request.attempt,
            request.runner_id,
            request.reason,
        )
        self._job_due()
        return _run(info)

    async def ListRunners(self, request, context):
        found = await self._call(context, runners.list_runners)
        return entities_pb2.ListRunnersResponse(runners=[_runner(beat) for beat in found])

    async def GetStats(self, request, context):
        stats = await self._mapped(context, self._db.read(run_queries.stats))
        return entities_pb2.Stats(
            runs_by_status={status.name.lower(): n for status, n in stats.runs_by_status.items()},
            pipelines=stats.pipelines,
            events_applied=self._events_applied(),
            log_lines=stats.log_lines,
            events_refused=self._events_refused(),
            schedule_runs_started=self._scheduler.started if self._scheduler else 0,
            schedule_ticks_skipped=self._scheduler.skipped if self._scheduler else 0,
            notifications_delivered=self._notifier.delivered if self._notifier else 0,
            notification_failures=self._notifier.failed if self._notifier else 0,
            notifications_dropped=self._notifier.dropped if self._notifier else 0,
        )

    async def ListEvents(self, request, context):
        reading = self._feed.read(request.after_id, request.limit, request.wait_ms / 1000)
        found = await self._mapped(context, reading)
        newest = found[-1].id if found else await self._call(context, journal.newest_id)
        return watch.page(found, newest)

    async def WatchEvents(self, request, context):
        identity = access.caller()
        await self.watchers.serve(request.after_id, str(identity or "plaintext"), context)

    # --- secrets ---------------------------------------------------------------------

    async def PutSecret(self, request, context):
        created = await self._call(
            context, secrets.put_secret, self._box, request.name, request.value
        )
        return entities_pb2.PutSecretResponse(created=created)

    async def ListSecrets(self, request, context):
        found = await self._call(context, secrets.list_secrets)
        return entities_pb2.ListSecretsResponse(
            secrets=[entities_pb2.SecretInfo(**vars(info)) for info in found]
        )

    async def DeleteSecret(self, request, context):
        await self._call(context, secrets.delete_secret, request.name)
        return _EMPTY

    async def GetRunSecrets(self, request, context):
        values = await self._call(
            context,
            secrets.run_secrets,
            self._box,
            request.run_id,
            request.attempt,
            request.runner_id,
            request.claim_proof,
        )
        return entities_pb2.GetRunSecretsResponse(values=values)

    # API tokens: called by the API only.

    async def CreateToken(self, request, context):
        created = await self._call(
            context,
            functools.partial(tokens.create, unless_admin_exists=request.unless_admin_exists),
            request.name,
            request.role,
            request.expires_in_s,
        )
        if created is None:
            return entities_pb2.CreateTokenResponse(created=False)
        return entities_pb2.CreateTokenResponse(
            created=True, token=_api_token(created.token), secret=created.secret
        )

    async def ListTokens(self, request, context):
        found = await self._call(context, tokens.list_all)
        return entities_pb2.ListTokensResponse(tokens=[_api_token(t) for t in found])

    async def RevokeToken(self, request, context):
        return _api_token(await self._call(context, tokens.revoke, request.id))

    async def VerifyToken(self, request, context):
        return _api_token(await self._call(context, tokens.verify, request.token_hash))

    # --- runner types (issue 14) ---

    async def GetPipelineRunnerTypes(self, request, context):
        allowed = await self._call(
            context, runner_grants.get, request.group, request.name, self._allowed_by_default
        )
        return _runner_types(allowed)

    async def SetPipelineRunnerTypes(self, request, context):
        if request.use_default and request.runner_types:
            await _abort(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                "use_default drops the pipeline's list: runner_types must be empty",
            )
        types = None if request.use_default else list(request.runner_types)
        allowed = await self._call(
            context,
            runner_grants.put,
            request.group,
            request.name,
            types,
            self._allowed_by_default,
        )
        return _runner_types(allowed)

    # --- webhooks (issue 11) ---

    async def DeliverWebhook(self, request, context):
        if request.forge not in triggers.FORGES:
            await _abort(
                context,
                grpc.StatusCode.INVALID_ARGUMENT,
                f"forge {request.forge!r} is not one of {', '.join(triggers.FORGES)}",
            )
        if not request.delivery_id or not request.event.repository:
            await _abort(
                context, grpc.StatusCode.INVALID_ARGUMENT, "a delivery needs its id and repository"
            )
        e = request.event
        delivery = webhooks.Delivery(
            forge=request.forge,
            delivery_id=request.delivery_id,
            body=request.body,
            signature=request.signature,
            event=triggers.Event(e.repository, e.kind, e.ref, e.target, e.sha, e.sender),
            ignored=request.ignored,
        )
        outcome = await self._call(
            context,
            webhooks.deliver,
            self._box,
            delivery,
            self._webhook_delivery_keep_ms,
            self._allowed_by_default,
            self._box.usable,
        )
        if outcome.runs and not outcome.redelivery:
            self._job_due()  # the sweep publishes their jobs now
        return entities_pb2.WebhookOutcome(
            verified=outcome.verified,
            runs=[entities_pb2.WebhookRun(**vars(r)) for r in outcome.runs],
            skipped=[entities_pb2.WebhookSkipped(**vars(s)) for s in outcome.skipped],
            reason=outcome.reason,
            redelivery=outcome.redelivery,
        )


def _api_token(token: tokens.Token) -> entities_pb2.ApiToken:
    return entities_pb2.ApiToken(
        id=token.id,
        name=token.name,
        role=int(token.role),
        created_at_ms=token.created_at_ms,
        expires_at_ms=token.expires_at_ms,
        revoked_at_ms=token.revoked_at_ms,
    )


def _runner_types(allowed: runner_grants.Allowed) -> entities_pb2.PipelineRunnerTypes:
    return entities_pb2.PipelineRunnerTypes(
        runner_types=allowed.runner_types, is_default=allowed.is_default
    )


async def _abort(context: grpc.aio.ServicerContext, code: grpc.StatusCode, text: str) -> NoReturn:
    await context.abort(code, text)
    raise AssertionError("context.abort returned")  # it raises; this satisfies NoReturn
