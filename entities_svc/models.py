"""Tables. Models bind to `database`, a proxy that db.open_database() points at the real
database, so the domain modules never need to be handed a connection."""

from __future__ import annotations

from peewee import (
    AutoField,
    BigAutoField,
    BigIntegerField,
    BooleanField,
    CharField,
    CompositeKey,
    DatabaseProxy,
    FloatField,
    ForeignKeyField,
    IntegerField,
    Model,
    SmallIntegerField,
    TextField,
)

database = DatabaseProxy()


class BaseModel(Model):
    class Meta:
        database = database
        legacy_table_names = False


class Pipeline(BaseModel):
    group = CharField()
    name = CharField()
    # bob.v1.Pipeline as JSON (protobuf's JSON mapping, proto field names).
    definition = TextField()
    # The JSON object as the client posted it, so that a read answers what was sent;
    # empty for pipelines stored before documents were kept (readers fall back to
    # the definition).
    document = TextField(default="")
    paused = BooleanField(default=False)
    # The runner types an admin allowed for this pipeline, as a JSON list (runner_grants.py);
    # "" when it has no list of its own and the cluster's default applies. Kept when the
    # definition is replaced, deleted with the pipeline.
    runner_types = TextField(default="")

    class Meta:
        table_name = "pipelines"
        indexes = ((("group", "name"), True),)


class ResourceProvider(BaseModel):
    name = CharField(primary_key=True)
    url = CharField()

    class Meta:
        table_name = "resource_providers"


class ArtifactStore(BaseModel):
    name = CharField(primary_key=True)
    url = CharField()

    class Meta:
        table_name = "artifact_stores"


class Logger(BaseModel):
    """Bob's logger plugin: receives a copy of the log of the runs started with it."""

    name = CharField(primary_key=True)
    url = CharField()

    class Meta:
        table_name = "loggers"


class Run(BaseModel):
    # Insertion order: runs created within the same millisecond still list oldest first.
    number = AutoField()
    id = CharField(unique=True)
    group = CharField()
    name = CharField()
    status = SmallIntegerField()
    reason = TextField(default="")
    runner_type = CharField()
    runner_id = CharField(default="")
    attempt = IntegerField(default=1)
    # Milliseconds since the Unix epoch; 0 when not reached yet (by the current attempt).
    # As Bob's: initiated = claimed (INITIALIZING), initialized = INITIALIZED, started =
    # first RUNNING (steps started), completed = ended. lifecycle.STAMPS says which.
    created_at_ms = BigIntegerField()
    initiated_at_ms = BigIntegerField(default=0)
    initialized_at_ms = BigIntegerField(default=0)
    started_at_ms = BigIntegerField(default=0)
    completed_at_ms = BigIntegerField(default=0)
    # Name of the logger the run was started with; empty for none.
    logger = CharField(default="")
    # Highest RunEvent.seq applied for the current attempt; 0 before the first event.
    last_seq = IntegerField(default=0)
    # Until when the claiming runner owns the run without renewing (ms since the epoch).
    lease_expires_ms = BigIntegerField(default=0)
    # What the user asked for: a RunOrder value (run, pause or stop), so that a runner
    # that missed the broadcast learns it when it renews its lease.
    desired = SmallIntegerField(default=0)
    # The order entities still owes the bob.control fanout (a RunOrder value, set with
    # `desired` and in its transaction); 0 once the broker has confirmed it, or none owed.
    control_owed = SmallIntegerField(default=0)
    # >0 while the broker has not confirmed the current attempt's job: from this time on,
    # entities (re)publishes it. 0 once it is queued.
    requeue_at_ms = BigIntegerField(default=0)
    # Executions lost so far (runner gone, job dead-lettered); bounded by BOB_MAX_ATTEMPTS.
    lost_attempts = IntegerField(default=0)
    # Where the current attempt's log starts: a retry continues the run's log.
    first_line_no = IntegerField(default=0)
    # The journal event (ClusterEvent.id) that recorded the current status: it orders a
    # status read from the run against the ones a journal follower has seen.
    status_event_id = BigIntegerField(default=0)
    # The pipeline definition (JSON) when the run was accepted; later edits do not affect it.
    pipeline = TextField()
    # The secret of the current claim, hex (claim_proof.py): the key of the MAC that every
    # event of the claimed attempt carries. Kept as it is, not hashed, since checking an
    # HMAC needs the key; "" while nobody holds the run.
    claim_key = CharField(default="")
    # --- schedules (issue 11): the schedule that started the run and its tick (ms since
    # the epoch); "" and 0 for a run started otherwise.
    schedule_cron = CharField(default="")
    schedule_timezone = CharField(default="")
    schedule_tick_ms = BigIntegerField(default=0)
    # The forge event that started it, as JSON (webhooks.py, bob.v1.RunTrigger in proto
    # field names); "" for a run started otherwise.
    trigger = TextField(default="")

    class Meta:
        table_name = "runs"
        indexes = (
            (("group", "name", "number"), False),
            # The sweeps look for active runs with expired leases and pending runs to queue.
            (("status", "lease_expires_ms"), False),
            (("status", "requeue_at_ms"), False),
        )


class StepResult(BaseModel):
    run = ForeignKeyField(Run, field=Run.id, column_name="run_id")
    index = IntegerField()
    exit_code = IntegerField()
    duration_ms = BigIntegerField()

    class Meta:
        table_name = "step_results"
        primary_key = CompositeKey("run", "index")


class LogLine(BaseModel):
    run = ForeignKeyField(Run, field=Run.id, column_name="run_id")
    line_no = IntegerField()
    text = TextField()
    # bob.v1.LogStream value: which output the line came from.
    stream = SmallIntegerField(default=0)

    class Meta:
        table_name = "log_lines"
        # (run_id, line_no) unique: re-applying a batch inserts nothing twice.
        primary_key = CompositeKey("run", "line_no")


class Runner(BaseModel):
    """A runner seen through its lease renewals (runners.py)."""

    runner_id = CharField(primary_key=True)
    runner_type = CharField()
    capacity = IntegerField()
    # JSON list of the run ids it reported executing in its last renewal.
    run_ids = TextField(default="[]")
    last_seen_ms = BigIntegerField()
    # Its node, as the last renewal that described it said (Bob's cluster info).
    hostname = CharField(default="")
    cpu_count = IntegerField(default=0)
    cpu_load = FloatField(default=0.0)
    memory_free_bytes = BigIntegerField(default=0)
    memory_total_bytes = BigIntegerField(default=0)
    # Why its engine is unusable, as its last renewal said; "" when healthy.
    engine_problem = TextField(default="")

    class Meta:
        table_name = "runners"


class ClusterEvent(BaseModel):
    """The cluster's event journal (Bob's GET /events), appended in the transaction of the
    change it describes; journal.py writes, reads and prunes it."""

    # Increasing: followers resume after the last id they saw. 64-bit: every status change
    # takes one, and ids are never reused.
    id = BigAutoField()
    at_ms = BigIntegerField(index=True)
    type = CharField()
    reason = CharField()
    kind = CharField()
    message = TextField()
    # For a run's status change: the run and the status it entered (a RunStatus value;
    # 0 when the run was discarded); "" and 0 otherwise.
    run_id = CharField(default="")
    run_status = SmallIntegerField(default=0)
    # The pipeline a pipeline's or a run's event is about; "" for other kinds.
    group = CharField(default="")
    name = CharField(default="")

    class Meta:
        table_name = "cluster_events"


class Secret(BaseModel):
    """A stored secret (secrets.py): its value only ever encrypted, with the operator's key
    (secret_box.py). Reads answer its name and times."""

    name = CharField(primary_key=True)
    # The Fernet token of the value (bound to the name), ASCII.
    ciphertext = TextField()
    created_at_ms = BigIntegerField()
    updated_at_ms = BigIntegerField()

    class Meta:
        table_name = "secrets"


class ApiToken(BaseModel):
    """A token of the REST API (api_tokens.py): its SHA-256, never the token itself."""

    # Random and public: how it is named in lists and to revoke it.
    id = CharField(primary_key=True)
    name = CharField()
    # A bob_common.roles.Role value.
    role = SmallIntegerField()
    token_hash = CharField(unique=True)
    created_at_ms = BigIntegerField()
    # 0 when it never expires.
    expires_at_ms = BigIntegerField(default=0)
    # 0 while it is not revoked.
    revoked_at_ms = BigIntegerField(default=0)

    class Meta:
        table_name = "api_tokens"


# --- schedules and notifications (issue 11: sched) ------------------------------------


class Schedule(BaseModel):
    """A schedule of a pipeline (schedules.py), kept in step with its definition: when it
    fires next. Rows go with their pipeline."""

    group = CharField()
    name = CharField()
    cron = CharField()
    timezone = CharField()
    # The next tick to claim, ms since the epoch: the scheduler looks for rows at or before
    # now.
    next_at_ms = BigIntegerField(index=True)

    class Meta:
        table_name = "schedules"
        indexes = ((("group", "name", "cron", "timezone"), True),)


class ScheduleTick(BaseModel):
    """A tick claimed: inserted in the transaction of the run it starts, under a unique
    key, so that no second scheduler (another entities process, a restart) starts it
    again. A tick that started nothing is claimed too, with why."""

    # 64-bit: a tick a minute of many pipelines outlives a 32-bit sequence (PostgreSQL).
    id = BigAutoField()
    group = CharField()
    name = CharField()
    cron = CharField()
    timezone = CharField()
    tick_ms = BigIntegerField()
    # The run it started, or "" when it started none (outcome says why).
    run_id = CharField(default="")
    outcome = TextField(default="")
    claimed_at_ms = BigIntegerField()

    class Meta:
        table_name = "schedule_ticks"
        indexes = ((("group", "name", "cron", "timezone", "tick_ms"), True),)


class Notifier(BaseModel):
    """A notifier plugin: POSTed a document each time a run ends (notifications.py)."""

    name = CharField(primary_key=True)
    url = CharField()

    class Meta:
        table_name = "notifiers"


class Notification(BaseModel):
    """The outbox of run notifications: one row per (ended run, notifier), inserted in the
    transaction that ended the run, deleted once the notifier answered 2xx (or given up)."""

    # 64-bit, as every row of an outbox that only grows its sequence.
    id = BigAutoField()
    run_id = CharField(index=True)
    notifier = CharField()
    created_at_ms = BigIntegerField()
    # When it is next tried (ms since the epoch); pushed ahead while a delivery is under
    # way, so that a second entities process does not send it at the same time.
    due_at_ms = BigIntegerField(index=True)
    attempts = IntegerField(default=0)
    last_error = TextField(default="")

    class Meta:
        table_name = "notifications"


# --- webhooks (issue 11: push and pull-request triggers) ---------------------------------


class PipelineTrigger(BaseModel):
    """The repository of one trigger of a pipeline, lower case: what a delivery looks its
    pipelines up by. Rewritten with the definition, deleted with the pipeline."""

    pipeline = ForeignKeyField(Pipeline, on_delete="CASCADE", column_name="pipeline_id")
    repository = CharField(index=True)

    class Meta:
        table_name = "pipeline_triggers"


class WebhookDelivery(BaseModel):
    """A verified forge delivery, recorded in the transaction of the runs it started: the
    key is unique, so a redelivery (even a concurrent one) starts nothing again."""

    # "<forge>:<delivery id>".
    key = CharField(primary_key=True)
    received_at_ms = BigIntegerField(index=True)
    # What it was answered, as JSON (webhooks.Outcome), answered again to a redelivery.
    answer = TextField(default="")

    class Meta:
        table_name = "webhook_deliveries"


MODELS = (
    Pipeline,
    ResourceProvider,
    ArtifactStore,
    Logger,
    Run,
    StepResult,
    LogLine,
    Runner,
    ClusterEvent,
    Secret,
    ApiToken,
    Schedule,
    ScheduleTick,
    Notifier,
    Notification,
    PipelineTrigger,
    WebhookDelivery,
)
