from google.protobuf import empty_pb2 as _empty_pb2
from bob_pb import messages_pb2 as _messages_pb2
from bob_pb import pipeline_pb2 as _pipeline_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RunOrder(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RUN_ORDER_UNSPECIFIED: _ClassVar[RunOrder]
    ORDER_RUN: _ClassVar[RunOrder]
    ORDER_PAUSE: _ClassVar[RunOrder]
    ORDER_STOP: _ClassVar[RunOrder]
    ORDER_ABANDON: _ClassVar[RunOrder]

class TokenRole(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TOKEN_ROLE_UNSPECIFIED: _ClassVar[TokenRole]
    TOKEN_ROLE_READ: _ClassVar[TokenRole]
    TOKEN_ROLE_OPERATE: _ClassVar[TokenRole]
    TOKEN_ROLE_ADMIN: _ClassVar[TokenRole]
RUN_ORDER_UNSPECIFIED: RunOrder
ORDER_RUN: RunOrder
ORDER_PAUSE: RunOrder
ORDER_STOP: RunOrder
ORDER_ABANDON: RunOrder
TOKEN_ROLE_UNSPECIFIED: TokenRole
TOKEN_ROLE_READ: TokenRole
TOKEN_ROLE_OPERATE: TokenRole
TOKEN_ROLE_ADMIN: TokenRole

class PipelineRef(_message.Message):
    __slots__ = ("group", "name")
    GROUP_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    group: str
    name: str
    def __init__(self, group: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class PutPipelineRequest(_message.Message):
    __slots__ = ("group", "name", "pipeline", "document")
    GROUP_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PIPELINE_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_FIELD_NUMBER: _ClassVar[int]
    group: str
    name: str
    pipeline: _pipeline_pb2.Pipeline
    document: str
    def __init__(self, group: _Optional[str] = ..., name: _Optional[str] = ..., pipeline: _Optional[_Union[_pipeline_pb2.Pipeline, _Mapping]] = ..., document: _Optional[str] = ...) -> None: ...

class PutPipelineResponse(_message.Message):
    __slots__ = ("created",)
    CREATED_FIELD_NUMBER: _ClassVar[int]
    created: bool
    def __init__(self, created: _Optional[bool] = ...) -> None: ...

class StoredPipeline(_message.Message):
    __slots__ = ("group", "name", "pipeline", "document", "paused", "last_run")
    GROUP_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PIPELINE_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_FIELD_NUMBER: _ClassVar[int]
    PAUSED_FIELD_NUMBER: _ClassVar[int]
    LAST_RUN_FIELD_NUMBER: _ClassVar[int]
    group: str
    name: str
    pipeline: _pipeline_pb2.Pipeline
    document: str
    paused: bool
    last_run: Run
    def __init__(self, group: _Optional[str] = ..., name: _Optional[str] = ..., pipeline: _Optional[_Union[_pipeline_pb2.Pipeline, _Mapping]] = ..., document: _Optional[str] = ..., paused: _Optional[bool] = ..., last_run: _Optional[_Union[Run, _Mapping]] = ...) -> None: ...

class ListPipelinesRequest(_message.Message):
    __slots__ = ("group", "name", "status", "limit", "after_group", "after_name", "summary")
    GROUP_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    AFTER_GROUP_FIELD_NUMBER: _ClassVar[int]
    AFTER_NAME_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    group: str
    name: str
    status: _messages_pb2.RunStatus
    limit: int
    after_group: str
    after_name: str
    summary: bool
    def __init__(self, group: _Optional[str] = ..., name: _Optional[str] = ..., status: _Optional[_Union[_messages_pb2.RunStatus, str]] = ..., limit: _Optional[int] = ..., after_group: _Optional[str] = ..., after_name: _Optional[str] = ..., summary: _Optional[bool] = ...) -> None: ...

class ListPipelinesResponse(_message.Message):
    __slots__ = ("pipelines", "more")
    PIPELINES_FIELD_NUMBER: _ClassVar[int]
    MORE_FIELD_NUMBER: _ClassVar[int]
    pipelines: _containers.RepeatedCompositeFieldContainer[StoredPipeline]
    more: bool
    def __init__(self, pipelines: _Optional[_Iterable[_Union[StoredPipeline, _Mapping]]] = ..., more: _Optional[bool] = ...) -> None: ...

class SetPipelinePausedRequest(_message.Message):
    __slots__ = ("group", "name", "paused")
    GROUP_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PAUSED_FIELD_NUMBER: _ClassVar[int]
    group: str
    name: str
    paused: bool
    def __init__(self, group: _Optional[str] = ..., name: _Optional[str] = ..., paused: _Optional[bool] = ...) -> None: ...

class Plugin(_message.Message):
    __slots__ = ("name", "url")
    NAME_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    name: str
    url: str
    def __init__(self, name: _Optional[str] = ..., url: _Optional[str] = ...) -> None: ...

class PluginRef(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListPluginsResponse(_message.Message):
    __slots__ = ("plugins",)
    PLUGINS_FIELD_NUMBER: _ClassVar[int]
    plugins: _containers.RepeatedCompositeFieldContainer[Plugin]
    def __init__(self, plugins: _Optional[_Iterable[_Union[Plugin, _Mapping]]] = ...) -> None: ...

class CreateRunRequest(_message.Message):
    __slots__ = ("group", "name", "runner_type", "logger")
    GROUP_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    RUNNER_TYPE_FIELD_NUMBER: _ClassVar[int]
    LOGGER_FIELD_NUMBER: _ClassVar[int]
    group: str
    name: str
    runner_type: str
    logger: str
    def __init__(self, group: _Optional[str] = ..., name: _Optional[str] = ..., runner_type: _Optional[str] = ..., logger: _Optional[str] = ...) -> None: ...

class RunRef(_message.Message):
    __slots__ = ("run_id",)
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    def __init__(self, run_id: _Optional[str] = ...) -> None: ...

class ClaimRunRequest(_message.Message):
    __slots__ = ("run_id", "attempt", "runner_id")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    RUNNER_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    attempt: int
    runner_id: str
    def __init__(self, run_id: _Optional[str] = ..., attempt: _Optional[int] = ..., runner_id: _Optional[str] = ...) -> None: ...

class ClaimRunResponse(_message.Message):
    __slots__ = ("claimed", "reason", "status", "claim_secret")
    CLAIMED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CLAIM_SECRET_FIELD_NUMBER: _ClassVar[int]
    claimed: bool
    reason: str
    status: _messages_pb2.RunStatus
    claim_secret: bytes
    def __init__(self, claimed: _Optional[bool] = ..., reason: _Optional[str] = ..., status: _Optional[_Union[_messages_pb2.RunStatus, str]] = ..., claim_secret: _Optional[bytes] = ...) -> None: ...

class StepResult(_message.Message):
    __slots__ = ("index", "exit_code", "duration_ms")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    index: int
    exit_code: int
    duration_ms: int
    def __init__(self, index: _Optional[int] = ..., exit_code: _Optional[int] = ..., duration_ms: _Optional[int] = ...) -> None: ...

class Run(_message.Message):
    __slots__ = ("id", "group", "name", "status", "reason", "runner_type", "runner_id", "attempt", "created_at_ms", "started_at_ms", "completed_at_ms", "steps", "logger", "initiated_at_ms", "initialized_at_ms", "status_event_id", "scheduled_by", "trigger")
    ID_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    RUNNER_TYPE_FIELD_NUMBER: _ClassVar[int]
    RUNNER_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    LOGGER_FIELD_NUMBER: _ClassVar[int]
    INITIATED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    INITIALIZED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    STATUS_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    SCHEDULED_BY_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_FIELD_NUMBER: _ClassVar[int]
    id: str
    group: str
    name: str
    status: _messages_pb2.RunStatus
    reason: str
    runner_type: str
    runner_id: str
    attempt: int
    created_at_ms: int
    started_at_ms: int
    completed_at_ms: int
    steps: _containers.RepeatedCompositeFieldContainer[StepResult]
    logger: str
    initiated_at_ms: int
    initialized_at_ms: int
    status_event_id: int
    scheduled_by: ScheduledBy
    trigger: RunTrigger
    def __init__(self, id: _Optional[str] = ..., group: _Optional[str] = ..., name: _Optional[str] = ..., status: _Optional[_Union[_messages_pb2.RunStatus, str]] = ..., reason: _Optional[str] = ..., runner_type: _Optional[str] = ..., runner_id: _Optional[str] = ..., attempt: _Optional[int] = ..., created_at_ms: _Optional[int] = ..., started_at_ms: _Optional[int] = ..., completed_at_ms: _Optional[int] = ..., steps: _Optional[_Iterable[_Union[StepResult, _Mapping]]] = ..., logger: _Optional[str] = ..., initiated_at_ms: _Optional[int] = ..., initialized_at_ms: _Optional[int] = ..., status_event_id: _Optional[int] = ..., scheduled_by: _Optional[_Union[ScheduledBy, _Mapping]] = ..., trigger: _Optional[_Union[RunTrigger, _Mapping]] = ...) -> None: ...

class ListRunsRequest(_message.Message):
    __slots__ = ("group", "name", "limit", "after_run_id", "newest_first")
    GROUP_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    AFTER_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    NEWEST_FIRST_FIELD_NUMBER: _ClassVar[int]
    group: str
    name: str
    limit: int
    after_run_id: str
    newest_first: bool
    def __init__(self, group: _Optional[str] = ..., name: _Optional[str] = ..., limit: _Optional[int] = ..., after_run_id: _Optional[str] = ..., newest_first: _Optional[bool] = ...) -> None: ...

class ListRunsResponse(_message.Message):
    __slots__ = ("runs", "more")
    RUNS_FIELD_NUMBER: _ClassVar[int]
    MORE_FIELD_NUMBER: _ClassVar[int]
    runs: _containers.RepeatedCompositeFieldContainer[Run]
    more: bool
    def __init__(self, runs: _Optional[_Iterable[_Union[Run, _Mapping]]] = ..., more: _Optional[bool] = ...) -> None: ...

class GetLogsRequest(_message.Message):
    __slots__ = ("run_id", "offset", "limit", "tail")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    TAIL_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    offset: int
    limit: int
    tail: int
    def __init__(self, run_id: _Optional[str] = ..., offset: _Optional[int] = ..., limit: _Optional[int] = ..., tail: _Optional[int] = ...) -> None: ...

class GetLogsResponse(_message.Message):
    __slots__ = ("lines", "offset")
    LINES_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    lines: _containers.RepeatedScalarFieldContainer[str]
    offset: int
    def __init__(self, lines: _Optional[_Iterable[str]] = ..., offset: _Optional[int] = ...) -> None: ...

class StopRunResponse(_message.Message):
    __slots__ = ("run", "broadcast")
    RUN_FIELD_NUMBER: _ClassVar[int]
    BROADCAST_FIELD_NUMBER: _ClassVar[int]
    run: Run
    broadcast: bool
    def __init__(self, run: _Optional[_Union[Run, _Mapping]] = ..., broadcast: _Optional[bool] = ...) -> None: ...

class RunnerInfo(_message.Message):
    __slots__ = ("runner_id", "runner_type", "capacity", "run_ids", "last_seen_ms", "node", "engine_problem")
    RUNNER_ID_FIELD_NUMBER: _ClassVar[int]
    RUNNER_TYPE_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    RUN_IDS_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_MS_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    ENGINE_PROBLEM_FIELD_NUMBER: _ClassVar[int]
    runner_id: str
    runner_type: str
    capacity: int
    run_ids: _containers.RepeatedScalarFieldContainer[str]
    last_seen_ms: int
    node: _messages_pb2.NodeInfo
    engine_problem: str
    def __init__(self, runner_id: _Optional[str] = ..., runner_type: _Optional[str] = ..., capacity: _Optional[int] = ..., run_ids: _Optional[_Iterable[str]] = ..., last_seen_ms: _Optional[int] = ..., node: _Optional[_Union[_messages_pb2.NodeInfo, _Mapping]] = ..., engine_problem: _Optional[str] = ...) -> None: ...

class ListRunnersResponse(_message.Message):
    __slots__ = ("runners",)
    RUNNERS_FIELD_NUMBER: _ClassVar[int]
    runners: _containers.RepeatedCompositeFieldContainer[RunnerInfo]
    def __init__(self, runners: _Optional[_Iterable[_Union[RunnerInfo, _Mapping]]] = ...) -> None: ...

class Stats(_message.Message):
    __slots__ = ("runs_by_status", "pipelines", "events_applied", "log_lines", "events_refused", "schedule_runs_started", "schedule_ticks_skipped", "notifications_delivered", "notification_failures", "notifications_dropped")
    class RunsByStatusEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    RUNS_BY_STATUS_FIELD_NUMBER: _ClassVar[int]
    PIPELINES_FIELD_NUMBER: _ClassVar[int]
    EVENTS_APPLIED_FIELD_NUMBER: _ClassVar[int]
    LOG_LINES_FIELD_NUMBER: _ClassVar[int]
    EVENTS_REFUSED_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_RUNS_STARTED_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_TICKS_SKIPPED_FIELD_NUMBER: _ClassVar[int]
    NOTIFICATIONS_DELIVERED_FIELD_NUMBER: _ClassVar[int]
    NOTIFICATION_FAILURES_FIELD_NUMBER: _ClassVar[int]
    NOTIFICATIONS_DROPPED_FIELD_NUMBER: _ClassVar[int]
    runs_by_status: _containers.ScalarMap[str, int]
    pipelines: int
    events_applied: int
    log_lines: int
    events_refused: int
    schedule_runs_started: int
    schedule_ticks_skipped: int
    notifications_delivered: int
    notification_failures: int
    notifications_dropped: int
    def __init__(self, runs_by_status: _Optional[_Mapping[str, int]] = ..., pipelines: _Optional[int] = ..., events_applied: _Optional[int] = ..., log_lines: _Optional[int] = ..., events_refused: _Optional[int] = ..., schedule_runs_started: _Optional[int] = ..., schedule_ticks_skipped: _Optional[int] = ..., notifications_delivered: _Optional[int] = ..., notification_failures: _Optional[int] = ..., notifications_dropped: _Optional[int] = ...) -> None: ...

class SetRunPausedRequest(_message.Message):
    __slots__ = ("run_id", "paused")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    PAUSED_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    paused: bool
    def __init__(self, run_id: _Optional[str] = ..., paused: _Optional[bool] = ...) -> None: ...

class RunAttempt(_message.Message):
    __slots__ = ("run_id", "attempt")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    attempt: int
    def __init__(self, run_id: _Optional[str] = ..., attempt: _Optional[int] = ...) -> None: ...

class RenewLeasesRequest(_message.Message):
    __slots__ = ("runner_id", "runs", "runner_type", "capacity", "node", "engine_problem")
    RUNNER_ID_FIELD_NUMBER: _ClassVar[int]
    RUNS_FIELD_NUMBER: _ClassVar[int]
    RUNNER_TYPE_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    ENGINE_PROBLEM_FIELD_NUMBER: _ClassVar[int]
    runner_id: str
    runs: _containers.RepeatedCompositeFieldContainer[RunAttempt]
    runner_type: str
    capacity: int
    node: _messages_pb2.NodeInfo
    engine_problem: str
    def __init__(self, runner_id: _Optional[str] = ..., runs: _Optional[_Iterable[_Union[RunAttempt, _Mapping]]] = ..., runner_type: _Optional[str] = ..., capacity: _Optional[int] = ..., node: _Optional[_Union[_messages_pb2.NodeInfo, _Mapping]] = ..., engine_problem: _Optional[str] = ...) -> None: ...

class RunInstruction(_message.Message):
    __slots__ = ("run_id", "order")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    ORDER_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    order: RunOrder
    def __init__(self, run_id: _Optional[str] = ..., order: _Optional[_Union[RunOrder, str]] = ...) -> None: ...

class RenewLeasesResponse(_message.Message):
    __slots__ = ("instructions", "lease_ms")
    INSTRUCTIONS_FIELD_NUMBER: _ClassVar[int]
    LEASE_MS_FIELD_NUMBER: _ClassVar[int]
    instructions: _containers.RepeatedCompositeFieldContainer[RunInstruction]
    lease_ms: int
    def __init__(self, instructions: _Optional[_Iterable[_Union[RunInstruction, _Mapping]]] = ..., lease_ms: _Optional[int] = ...) -> None: ...

class ReleaseRunRequest(_message.Message):
    __slots__ = ("run_id", "attempt", "runner_id", "reason")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    RUNNER_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    attempt: int
    runner_id: str
    reason: str
    def __init__(self, run_id: _Optional[str] = ..., attempt: _Optional[int] = ..., runner_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class ListEventsRequest(_message.Message):
    __slots__ = ("after_id", "limit", "wait_ms")
    AFTER_ID_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    WAIT_MS_FIELD_NUMBER: _ClassVar[int]
    after_id: int
    limit: int
    wait_ms: int
    def __init__(self, after_id: _Optional[int] = ..., limit: _Optional[int] = ..., wait_ms: _Optional[int] = ...) -> None: ...

class ClusterEvent(_message.Message):
    __slots__ = ("id", "at_ms", "type", "reason", "kind", "message", "run_id", "run_status", "group", "name")
    ID_FIELD_NUMBER: _ClassVar[int]
    AT_MS_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_STATUS_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    id: int
    at_ms: int
    type: str
    reason: str
    kind: str
    message: str
    run_id: str
    run_status: _messages_pb2.RunStatus
    group: str
    name: str
    def __init__(self, id: _Optional[int] = ..., at_ms: _Optional[int] = ..., type: _Optional[str] = ..., reason: _Optional[str] = ..., kind: _Optional[str] = ..., message: _Optional[str] = ..., run_id: _Optional[str] = ..., run_status: _Optional[_Union[_messages_pb2.RunStatus, str]] = ..., group: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class ListEventsResponse(_message.Message):
    __slots__ = ("events", "newest_id")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    NEWEST_ID_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[ClusterEvent]
    newest_id: int
    def __init__(self, events: _Optional[_Iterable[_Union[ClusterEvent, _Mapping]]] = ..., newest_id: _Optional[int] = ...) -> None: ...

class SecretRef(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class PutSecretRequest(_message.Message):
    __slots__ = ("name", "value")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    name: str
    value: str
    def __init__(self, name: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...

class PutSecretResponse(_message.Message):
    __slots__ = ("created",)
    CREATED_FIELD_NUMBER: _ClassVar[int]
    created: bool
    def __init__(self, created: _Optional[bool] = ...) -> None: ...

class SecretInfo(_message.Message):
    __slots__ = ("name", "created_at_ms", "updated_at_ms")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    name: str
    created_at_ms: int
    updated_at_ms: int
    def __init__(self, name: _Optional[str] = ..., created_at_ms: _Optional[int] = ..., updated_at_ms: _Optional[int] = ...) -> None: ...

class ListSecretsResponse(_message.Message):
    __slots__ = ("secrets",)
    SECRETS_FIELD_NUMBER: _ClassVar[int]
    secrets: _containers.RepeatedCompositeFieldContainer[SecretInfo]
    def __init__(self, secrets: _Optional[_Iterable[_Union[SecretInfo, _Mapping]]] = ...) -> None: ...

class GetRunSecretsRequest(_message.Message):
    __slots__ = ("run_id", "attempt", "runner_id", "claim_proof")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    RUNNER_ID_FIELD_NUMBER: _ClassVar[int]
    CLAIM_PROOF_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    attempt: int
    runner_id: str
    claim_proof: str
    def __init__(self, run_id: _Optional[str] = ..., attempt: _Optional[int] = ..., runner_id: _Optional[str] = ..., claim_proof: _Optional[str] = ...) -> None: ...

class GetRunSecretsResponse(_message.Message):
    __slots__ = ("values",)
    class ValuesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.ScalarMap[str, str]
    def __init__(self, values: _Optional[_Mapping[str, str]] = ...) -> None: ...

class ApiToken(_message.Message):
    __slots__ = ("id", "name", "role", "created_at_ms", "expires_at_ms", "revoked_at_ms")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_MS_FIELD_NUMBER: _ClassVar[int]
    REVOKED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    role: TokenRole
    created_at_ms: int
    expires_at_ms: int
    revoked_at_ms: int
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., role: _Optional[_Union[TokenRole, str]] = ..., created_at_ms: _Optional[int] = ..., expires_at_ms: _Optional[int] = ..., revoked_at_ms: _Optional[int] = ...) -> None: ...

class CreateTokenRequest(_message.Message):
    __slots__ = ("name", "role", "expires_in_s", "unless_admin_exists")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_IN_S_FIELD_NUMBER: _ClassVar[int]
    UNLESS_ADMIN_EXISTS_FIELD_NUMBER: _ClassVar[int]
    name: str
    role: TokenRole
    expires_in_s: int
    unless_admin_exists: bool
    def __init__(self, name: _Optional[str] = ..., role: _Optional[_Union[TokenRole, str]] = ..., expires_in_s: _Optional[int] = ..., unless_admin_exists: _Optional[bool] = ...) -> None: ...

class CreateTokenResponse(_message.Message):
    __slots__ = ("created", "token", "secret")
    CREATED_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    created: bool
    token: ApiToken
    secret: str
    def __init__(self, created: _Optional[bool] = ..., token: _Optional[_Union[ApiToken, _Mapping]] = ..., secret: _Optional[str] = ...) -> None: ...

class ListTokensResponse(_message.Message):
    __slots__ = ("tokens",)
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    tokens: _containers.RepeatedCompositeFieldContainer[ApiToken]
    def __init__(self, tokens: _Optional[_Iterable[_Union[ApiToken, _Mapping]]] = ...) -> None: ...

class TokenRef(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class VerifyTokenRequest(_message.Message):
    __slots__ = ("token_hash",)
    TOKEN_HASH_FIELD_NUMBER: _ClassVar[int]
    token_hash: str
    def __init__(self, token_hash: _Optional[str] = ...) -> None: ...

class PipelineRunnerTypes(_message.Message):
    __slots__ = ("runner_types", "is_default")
    RUNNER_TYPES_FIELD_NUMBER: _ClassVar[int]
    IS_DEFAULT_FIELD_NUMBER: _ClassVar[int]
    runner_types: _containers.RepeatedScalarFieldContainer[str]
    is_default: bool
    def __init__(self, runner_types: _Optional[_Iterable[str]] = ..., is_default: _Optional[bool] = ...) -> None: ...

class SetPipelineRunnerTypesRequest(_message.Message):
    __slots__ = ("group", "name", "runner_types", "use_default")
    GROUP_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    RUNNER_TYPES_FIELD_NUMBER: _ClassVar[int]
    USE_DEFAULT_FIELD_NUMBER: _ClassVar[int]
    group: str
    name: str
    runner_types: _containers.RepeatedScalarFieldContainer[str]
    use_default: bool
    def __init__(self, group: _Optional[str] = ..., name: _Optional[str] = ..., runner_types: _Optional[_Iterable[str]] = ..., use_default: _Optional[bool] = ...) -> None: ...

class ScheduledBy(_message.Message):
    __slots__ = ("cron", "timezone", "tick_ms")
    CRON_FIELD_NUMBER: _ClassVar[int]
    TIMEZONE_FIELD_NUMBER: _ClassVar[int]
    TICK_MS_FIELD_NUMBER: _ClassVar[int]
    cron: str
    timezone: str
    tick_ms: int
    def __init__(self, cron: _Optional[str] = ..., timezone: _Optional[str] = ..., tick_ms: _Optional[int] = ...) -> None: ...

class ScheduleState(_message.Message):
    __slots__ = ("cron", "timezone", "next_ms", "last_tick_ms", "last_run_id", "last_outcome")
    CRON_FIELD_NUMBER: _ClassVar[int]
    TIMEZONE_FIELD_NUMBER: _ClassVar[int]
    NEXT_MS_FIELD_NUMBER: _ClassVar[int]
    LAST_TICK_MS_FIELD_NUMBER: _ClassVar[int]
    LAST_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    LAST_OUTCOME_FIELD_NUMBER: _ClassVar[int]
    cron: str
    timezone: str
    next_ms: int
    last_tick_ms: int
    last_run_id: str
    last_outcome: str
    def __init__(self, cron: _Optional[str] = ..., timezone: _Optional[str] = ..., next_ms: _Optional[int] = ..., last_tick_ms: _Optional[int] = ..., last_run_id: _Optional[str] = ..., last_outcome: _Optional[str] = ...) -> None: ...

class ListSchedulesResponse(_message.Message):
    __slots__ = ("schedules",)
    SCHEDULES_FIELD_NUMBER: _ClassVar[int]
    schedules: _containers.RepeatedCompositeFieldContainer[ScheduleState]
    def __init__(self, schedules: _Optional[_Iterable[_Union[ScheduleState, _Mapping]]] = ...) -> None: ...

class ForgeEvent(_message.Message):
    __slots__ = ("repository", "kind", "ref", "target", "sha", "sender")
    REPOSITORY_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    REF_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    SHA_FIELD_NUMBER: _ClassVar[int]
    SENDER_FIELD_NUMBER: _ClassVar[int]
    repository: str
    kind: str
    ref: str
    target: str
    sha: str
    sender: str
    def __init__(self, repository: _Optional[str] = ..., kind: _Optional[str] = ..., ref: _Optional[str] = ..., target: _Optional[str] = ..., sha: _Optional[str] = ..., sender: _Optional[str] = ...) -> None: ...

class WebhookDelivery(_message.Message):
    __slots__ = ("forge", "delivery_id", "body", "signature", "event", "ignored")
    FORGE_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_ID_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    IGNORED_FIELD_NUMBER: _ClassVar[int]
    forge: str
    delivery_id: str
    body: bytes
    signature: str
    event: ForgeEvent
    ignored: str
    def __init__(self, forge: _Optional[str] = ..., delivery_id: _Optional[str] = ..., body: _Optional[bytes] = ..., signature: _Optional[str] = ..., event: _Optional[_Union[ForgeEvent, _Mapping]] = ..., ignored: _Optional[str] = ...) -> None: ...

class WebhookRun(_message.Message):
    __slots__ = ("group", "name", "run_id")
    GROUP_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    group: str
    name: str
    run_id: str
    def __init__(self, group: _Optional[str] = ..., name: _Optional[str] = ..., run_id: _Optional[str] = ...) -> None: ...

class WebhookSkipped(_message.Message):
    __slots__ = ("group", "name", "reason")
    GROUP_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    group: str
    name: str
    reason: str
    def __init__(self, group: _Optional[str] = ..., name: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class WebhookOutcome(_message.Message):
    __slots__ = ("verified", "runs", "skipped", "reason", "redelivery")
    VERIFIED_FIELD_NUMBER: _ClassVar[int]
    RUNS_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REDELIVERY_FIELD_NUMBER: _ClassVar[int]
    verified: bool
    runs: _containers.RepeatedCompositeFieldContainer[WebhookRun]
    skipped: _containers.RepeatedCompositeFieldContainer[WebhookSkipped]
    reason: str
    redelivery: bool
    def __init__(self, verified: _Optional[bool] = ..., runs: _Optional[_Iterable[_Union[WebhookRun, _Mapping]]] = ..., skipped: _Optional[_Iterable[_Union[WebhookSkipped, _Mapping]]] = ..., reason: _Optional[str] = ..., redelivery: _Optional[bool] = ...) -> None: ...

class RunTrigger(_message.Message):
    __slots__ = ("forge", "delivery_id", "event")
    FORGE_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    forge: str
    delivery_id: str
    event: ForgeEvent
    def __init__(self, forge: _Optional[str] = ..., delivery_id: _Optional[str] = ..., event: _Optional[_Union[ForgeEvent, _Mapping]] = ...) -> None: ...

class WatchEventsRequest(_message.Message):
    __slots__ = ("after_id",)
    AFTER_ID_FIELD_NUMBER: _ClassVar[int]
    after_id: int
    def __init__(self, after_id: _Optional[int] = ...) -> None: ...
