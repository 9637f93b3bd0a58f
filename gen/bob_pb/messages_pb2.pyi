from bob_pb import pipeline_pb2 as _pipeline_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RunStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RUN_STATUS_UNSPECIFIED: _ClassVar[RunStatus]
    PENDING: _ClassVar[RunStatus]
    INITIALIZING: _ClassVar[RunStatus]
    RUNNING: _ClassVar[RunStatus]
    PAUSED: _ClassVar[RunStatus]
    PASSED: _ClassVar[RunStatus]
    FAILED: _ClassVar[RunStatus]
    STOPPED: _ClassVar[RunStatus]
    INITIALIZED: _ClassVar[RunStatus]

class ControlAction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CONTROL_ACTION_UNSPECIFIED: _ClassVar[ControlAction]
    STOP: _ClassVar[ControlAction]
    PAUSE: _ClassVar[ControlAction]
    RESUME: _ClassVar[ControlAction]

class LogStream(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LOG_STREAM_UNSPECIFIED: _ClassVar[LogStream]
    STDOUT: _ClassVar[LogStream]
    STDERR: _ClassVar[LogStream]
    SYSTEM: _ClassVar[LogStream]
RUN_STATUS_UNSPECIFIED: RunStatus
PENDING: RunStatus
INITIALIZING: RunStatus
RUNNING: RunStatus
PAUSED: RunStatus
PASSED: RunStatus
FAILED: RunStatus
STOPPED: RunStatus
INITIALIZED: RunStatus
CONTROL_ACTION_UNSPECIFIED: ControlAction
STOP: ControlAction
PAUSE: ControlAction
RESUME: ControlAction
LOG_STREAM_UNSPECIFIED: LogStream
STDOUT: LogStream
STDERR: LogStream
SYSTEM: LogStream

class Job(_message.Message):
    __slots__ = ("run_id", "group", "name", "pipeline", "runner_type", "attempt", "enqueued_at_ms", "first_line_no", "logger")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PIPELINE_FIELD_NUMBER: _ClassVar[int]
    RUNNER_TYPE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    ENQUEUED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    FIRST_LINE_NO_FIELD_NUMBER: _ClassVar[int]
    LOGGER_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    group: str
    name: str
    pipeline: _pipeline_pb2.Pipeline
    runner_type: str
    attempt: int
    enqueued_at_ms: int
    first_line_no: int
    logger: str
    def __init__(self, run_id: _Optional[str] = ..., group: _Optional[str] = ..., name: _Optional[str] = ..., pipeline: _Optional[_Union[_pipeline_pb2.Pipeline, _Mapping]] = ..., runner_type: _Optional[str] = ..., attempt: _Optional[int] = ..., enqueued_at_ms: _Optional[int] = ..., first_line_no: _Optional[int] = ..., logger: _Optional[str] = ...) -> None: ...

class Control(_message.Message):
    __slots__ = ("run_id", "action")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    action: ControlAction
    def __init__(self, run_id: _Optional[str] = ..., action: _Optional[_Union[ControlAction, str]] = ...) -> None: ...

class RunEvent(_message.Message):
    __slots__ = ("run_id", "attempt", "seq", "runner_id", "at_ms", "status", "logs", "step")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    RUNNER_ID_FIELD_NUMBER: _ClassVar[int]
    AT_MS_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    LOGS_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    attempt: int
    seq: int
    runner_id: str
    at_ms: int
    status: StatusChanged
    logs: LogBatch
    step: StepFinished
    def __init__(self, run_id: _Optional[str] = ..., attempt: _Optional[int] = ..., seq: _Optional[int] = ..., runner_id: _Optional[str] = ..., at_ms: _Optional[int] = ..., status: _Optional[_Union[StatusChanged, _Mapping]] = ..., logs: _Optional[_Union[LogBatch, _Mapping]] = ..., step: _Optional[_Union[StepFinished, _Mapping]] = ...) -> None: ...

class StatusChanged(_message.Message):
    __slots__ = ("status", "reason")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    status: RunStatus
    reason: str
    def __init__(self, status: _Optional[_Union[RunStatus, str]] = ..., reason: _Optional[str] = ...) -> None: ...

class LogBatch(_message.Message):
    __slots__ = ("lines",)
    LINES_FIELD_NUMBER: _ClassVar[int]
    lines: _containers.RepeatedCompositeFieldContainer[LogLine]
    def __init__(self, lines: _Optional[_Iterable[_Union[LogLine, _Mapping]]] = ...) -> None: ...

class LogLine(_message.Message):
    __slots__ = ("line_no", "text", "stream")
    LINE_NO_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    STREAM_FIELD_NUMBER: _ClassVar[int]
    line_no: int
    text: str
    stream: LogStream
    def __init__(self, line_no: _Optional[int] = ..., text: _Optional[str] = ..., stream: _Optional[_Union[LogStream, str]] = ...) -> None: ...

class StepFinished(_message.Message):
    __slots__ = ("index", "exit_code", "duration_ms")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    index: int
    exit_code: int
    duration_ms: int
    def __init__(self, index: _Optional[int] = ..., exit_code: _Optional[int] = ..., duration_ms: _Optional[int] = ...) -> None: ...

class NodeInfo(_message.Message):
    __slots__ = ("hostname", "cpu_count", "cpu_load", "memory_free_bytes", "memory_total_bytes")
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    CPU_COUNT_FIELD_NUMBER: _ClassVar[int]
    CPU_LOAD_FIELD_NUMBER: _ClassVar[int]
    MEMORY_FREE_BYTES_FIELD_NUMBER: _ClassVar[int]
    MEMORY_TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    hostname: str
    cpu_count: int
    cpu_load: float
    memory_free_bytes: int
    memory_total_bytes: int
    def __init__(self, hostname: _Optional[str] = ..., cpu_count: _Optional[int] = ..., cpu_load: _Optional[float] = ..., memory_free_bytes: _Optional[int] = ..., memory_total_bytes: _Optional[int] = ...) -> None: ...

class RunEvents(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[RunEvent]
    def __init__(self, events: _Optional[_Iterable[_Union[RunEvent, _Mapping]]] = ...) -> None: ...
