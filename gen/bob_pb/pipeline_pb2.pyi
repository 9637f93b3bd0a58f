from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Pipeline(_message.Message):
    __slots__ = ("image", "steps", "vars", "resources", "timeout", "quotas", "secret_vars", "user", "triggers", "schedules")
    class VarsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class SecretVarsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    VARS_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    QUOTAS_FIELD_NUMBER: _ClassVar[int]
    SECRET_VARS_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    TRIGGERS_FIELD_NUMBER: _ClassVar[int]
    SCHEDULES_FIELD_NUMBER: _ClassVar[int]
    image: str
    steps: _containers.RepeatedCompositeFieldContainer[Step]
    vars: _containers.ScalarMap[str, str]
    resources: _containers.RepeatedCompositeFieldContainer[Resource]
    timeout: int
    quotas: Quotas
    secret_vars: _containers.ScalarMap[str, str]
    user: str
    triggers: _containers.RepeatedCompositeFieldContainer[Trigger]
    schedules: _containers.RepeatedCompositeFieldContainer[Schedule]
    def __init__(self, image: _Optional[str] = ..., steps: _Optional[_Iterable[_Union[Step, _Mapping]]] = ..., vars: _Optional[_Mapping[str, str]] = ..., resources: _Optional[_Iterable[_Union[Resource, _Mapping]]] = ..., timeout: _Optional[int] = ..., quotas: _Optional[_Union[Quotas, _Mapping]] = ..., secret_vars: _Optional[_Mapping[str, str]] = ..., user: _Optional[str] = ..., triggers: _Optional[_Iterable[_Union[Trigger, _Mapping]]] = ..., schedules: _Optional[_Iterable[_Union[Schedule, _Mapping]]] = ...) -> None: ...

class Schedule(_message.Message):
    __slots__ = ("cron", "timezone")
    CRON_FIELD_NUMBER: _ClassVar[int]
    TIMEZONE_FIELD_NUMBER: _ClassVar[int]
    cron: str
    timezone: str
    def __init__(self, cron: _Optional[str] = ..., timezone: _Optional[str] = ...) -> None: ...

class Quotas(_message.Message):
    __slots__ = ("limits", "requests")
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    limits: QuotaLimits
    requests: QuotaRequests
    def __init__(self, limits: _Optional[_Union[QuotaLimits, _Mapping]] = ..., requests: _Optional[_Union[QuotaRequests, _Mapping]] = ...) -> None: ...

class QuotaLimits(_message.Message):
    __slots__ = ("cpu", "mem")
    CPU_FIELD_NUMBER: _ClassVar[int]
    MEM_FIELD_NUMBER: _ClassVar[int]
    cpu: float
    mem: str
    def __init__(self, cpu: _Optional[float] = ..., mem: _Optional[str] = ...) -> None: ...

class QuotaRequests(_message.Message):
    __slots__ = ("mem",)
    MEM_FIELD_NUMBER: _ClassVar[int]
    mem: str
    def __init__(self, mem: _Optional[str] = ...) -> None: ...

class Step(_message.Message):
    __slots__ = ("cmd", "needs_resource", "produces_artifact", "vars", "timeout", "secret_vars")
    class VarsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class SecretVarsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CMD_FIELD_NUMBER: _ClassVar[int]
    NEEDS_RESOURCE_FIELD_NUMBER: _ClassVar[int]
    PRODUCES_ARTIFACT_FIELD_NUMBER: _ClassVar[int]
    VARS_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    SECRET_VARS_FIELD_NUMBER: _ClassVar[int]
    cmd: str
    needs_resource: str
    produces_artifact: Artifact
    vars: _containers.ScalarMap[str, str]
    timeout: int
    secret_vars: _containers.ScalarMap[str, str]
    def __init__(self, cmd: _Optional[str] = ..., needs_resource: _Optional[str] = ..., produces_artifact: _Optional[_Union[Artifact, _Mapping]] = ..., vars: _Optional[_Mapping[str, str]] = ..., timeout: _Optional[int] = ..., secret_vars: _Optional[_Mapping[str, str]] = ...) -> None: ...

class Artifact(_message.Message):
    __slots__ = ("name", "path", "store")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    STORE_FIELD_NUMBER: _ClassVar[int]
    name: str
    path: str
    store: str
    def __init__(self, name: _Optional[str] = ..., path: _Optional[str] = ..., store: _Optional[str] = ...) -> None: ...

class Resource(_message.Message):
    __slots__ = ("name", "type", "provider", "params")
    class ParamsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    name: str
    type: str
    provider: str
    params: _containers.ScalarMap[str, str]
    def __init__(self, name: _Optional[str] = ..., type: _Optional[str] = ..., provider: _Optional[str] = ..., params: _Optional[_Mapping[str, str]] = ...) -> None: ...

class Trigger(_message.Message):
    __slots__ = ("repository", "events", "branches", "tags", "secret", "resource")
    REPOSITORY_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    BRANCHES_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_FIELD_NUMBER: _ClassVar[int]
    repository: str
    events: _containers.RepeatedScalarFieldContainer[str]
    branches: _containers.RepeatedScalarFieldContainer[str]
    tags: _containers.RepeatedScalarFieldContainer[str]
    secret: str
    resource: str
    def __init__(self, repository: _Optional[str] = ..., events: _Optional[_Iterable[str]] = ..., branches: _Optional[_Iterable[str]] = ..., tags: _Optional[_Iterable[str]] = ..., secret: _Optional[str] = ..., resource: _Optional[str] = ...) -> None: ...
