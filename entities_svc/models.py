"""Tables. Models bind to `database`, a proxy that db.open_database() points at the real
database, so the domain modules never need to be handed a connection."""

from __future__ import annotations

from peewee import (
    AutoField,
    BooleanField,
    CharField,
    CompositeKey,
    DatabaseProxy,
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
    paused = BooleanField(default=False)

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
    # Milliseconds since the Unix epoch; 0 when not reached yet.
    created_at_ms = IntegerField()
    started_at_ms = IntegerField(default=0)
    completed_at_ms = IntegerField(default=0)
    # Highest RunEvent.seq applied for the current attempt; 0 before the first event.
    last_seq = IntegerField(default=0)
    # Until when the claiming runner owns the run without renewing (ms since the epoch).
    lease_expires_ms = IntegerField(default=0)
    # What the user asked for: a RunOrder value (run, pause or stop), so that a runner
    # that missed the broadcast learns it when it renews its lease.
    desired = SmallIntegerField(default=0)
    # >0 while the broker has not confirmed the current attempt's job: from this time on,
    # entities (re)publishes it. 0 once it is queued.
    requeue_at_ms = IntegerField(default=0)
    # Executions lost so far (runner gone, job dead-lettered); bounded by BOB_MAX_ATTEMPTS.
    lost_attempts = IntegerField(default=0)
    # Where the current attempt's log starts: a retry continues the run's log.
    first_line_no = IntegerField(default=0)
    # The pipeline definition (JSON) when the run was accepted; later edits do not affect it.
    pipeline = TextField()

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
    duration_ms = IntegerField()

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
    """A runner seen through its heartbeats."""

    runner_id = CharField(primary_key=True)
    runner_type = CharField()
    capacity = IntegerField()
    # JSON list of the run ids it reported executing in its last heartbeat.
    run_ids = TextField(default="[]")
    last_seen_ms = IntegerField()

    class Meta:
        table_name = "runners"


MODELS = (Pipeline, ResourceProvider, ArtifactStore, Run, StepResult, LogLine, Runner)
