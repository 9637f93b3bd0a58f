"""What a run is asked to do, in the runner's own terms: built from a Job once, at the
edge, and checked before anything is started."""

from __future__ import annotations

import math
import posixpath
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace

from bob_common import pipeline_rules
from bob_common.quantities import format_memory, parse_memory
from bob_pb import messages_pb2

# The smallest memory limit Docker gives a container; below it the engine refuses.
MIN_MEMORY_BYTES = 6 << 20


@dataclass(frozen=True)
class ArtifactSpec:
    name: str
    # Relative to the working directory of the step that produces it.
    path: str
    store: str


@dataclass(frozen=True)
class ResourceSpec:
    name: str
    type: str
    # A resource provider (external) or an artifact store (internal).
    provider: str
    params: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StepSpec:
    cmd: str
    # Overrides the run's vars for this step.
    vars: Mapping[str, str] = field(default_factory=dict)
    # "" (what proto3 and the Terraform provider send for none): no resource.
    needs_resource: str = ""
    produces_artifact: ArtifactSpec | None = None
    timeout_s: int = 0  # 0: none
    # Where the step runs, relative to the workspace ("": the workspace itself); see
    # directories().
    directory: str = ""
    # Variables whose values are stored secrets: variable -> secret name. with_secrets()
    # puts the values in `vars`.
    secret_vars: Mapping[str, str] = field(default_factory=dict)

    def artifact_source(self) -> str:
        """Where its artifact is, relative to the workspace: the artifact's path is
        relative to the step's own working directory."""
        assert self.produces_artifact is not None
        return posixpath.join(self.directory, self.produces_artifact.path)


@dataclass(frozen=True)
class Quotas:
    """The pipeline's quotas as given (Bob HEAD's `quotas`); limits() reads them."""

    cpu: float = 0.0  # a fraction of all the node's cores; 0: no limit
    mem: str = ""  # e.g. "512Mi" (bob_common.quantities); "": no limit
    mem_request: str = ""


@dataclass(frozen=True)
class Limits:
    """What a run's container may use of the node; 0: no limit. Only containers have
    them: the shell runner says so and runs without."""

    cpu: float = 0.0  # a fraction of all the node's cores, at most 1
    mem_bytes: int = 0  # swap included: going over it gets the process killed
    mem_request_bytes: int = 0  # the soft limit the engine reclaims down to first
    pids: int = 0  # processes and threads at once (the runner's, never a quota)

    def __bool__(self) -> bool:
        return bool(self.cpu or self.mem_bytes or self.mem_request_bytes or self.pids)


NO_LIMITS = Limits()


def limits(quotas: Quotas) -> Limits:
    """The limits the quotas ask for; ValueError saying which quota is wrong and why."""
    if not math.isfinite(quotas.cpu) or quotas.cpu < 0:
        raise ValueError(
            f"quotas.limits.cpu {quotas.cpu} must be a fraction of the node's "
            "cores, 0 (no limit) or more"
        )
    named = (("quotas.limits.mem", quotas.mem), ("quotas.requests.mem", quotas.mem_request))
    mem, request = (_memory(name, text) for name, text in named)
    if mem and mem < MIN_MEMORY_BYTES:
        raise ValueError(
            f"quotas.limits.mem {quotas.mem!r} is below the smallest limit a "
            f"container can have ({format_memory(MIN_MEMORY_BYTES)})"
        )
    if mem and request > mem:
        raise ValueError(
            f"quotas.requests.mem {quotas.mem_request!r} is above quotas.limits.mem {quotas.mem!r}"
        )
    return Limits(cpu=min(quotas.cpu, 1.0), mem_bytes=mem, mem_request_bytes=request)


def _memory(name: str, text: str) -> int:
    if not text:
        return 0
    try:
        return parse_memory(text)
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from None


# Its fields, and its parts', bear the names of bob.v1.Pipeline's: dataclasses.asdict()
# of it is a definition pipeline_rules reads.
@dataclass(frozen=True)
class RunSpec:
    run_id: str
    attempt: int
    image: str
    steps: tuple[StepSpec, ...]
    vars: Mapping[str, str] = field(default_factory=dict)
    group: str = ""
    name: str = ""
    resources: tuple[ResourceSpec, ...] = ()
    timeout_s: int = 0  # for the whole run, from its first step; 0: none
    quotas: Quotas = field(default_factory=Quotas)
    # As StepSpec.secret_vars, for every step.
    secret_vars: Mapping[str, str] = field(default_factory=dict)
    # The user steps run as, "uid:gid" (pipeline_rules.user_valid); "": the image's.
    user: str = ""

    def resource(self, name: str) -> ResourceSpec | None:
        return next((r for r in self.resources if r.name == name), None)


def directories(needs: Iterable[str]) -> list[str]:
    """The working directory of each step, from the resource each needs ("" for none), as
    in Bob: a step that needs a resource runs inside it (<name>/), and any other where the
    step before it ran, the workspace for the first ones. (Bob commits each step's
    container as the next one's image, and a commit keeps the working directory: so its
    own example goes on building in `source-code` after the step that needs it.)"""
    found, here = [], ""
    for need in needs:
        here = need or here
        found.append(here)
    return found


def from_job(job: messages_pb2.Job) -> RunSpec:
    pipeline = job.pipeline
    quotas = pipeline.quotas
    return RunSpec(
        run_id=job.run_id,
        attempt=job.attempt,
        group=job.group,
        name=job.name,
        image=pipeline.image,
        vars=dict(pipeline.vars),
        secret_vars=dict(pipeline.secret_vars),
        timeout_s=pipeline.timeout,
        quotas=Quotas(quotas.limits.cpu, quotas.limits.mem, quotas.requests.mem),
        user=pipeline.user,
        resources=tuple(
            ResourceSpec(r.name, r.type, r.provider, dict(r.params)) for r in pipeline.resources
        ),
        steps=tuple(
            StepSpec(
                cmd=step.cmd,
                vars=dict(step.vars),
                needs_resource=step.needs_resource,
                produces_artifact=ArtifactSpec(
                    step.produces_artifact.name,
                    step.produces_artifact.path,
                    step.produces_artifact.store,
                )
                if step.HasField("produces_artifact") and step.produces_artifact.name
                else None,
                timeout_s=step.timeout,
                directory=directory,
                secret_vars=dict(step.secret_vars),
            )
            for step, directory in zip(
                pipeline.steps,
                directories(s.needs_resource for s in pipeline.steps),
                strict=True,
            )
        ),
    )


def secret_names(spec: RunSpec) -> set[str]:
    """The stored secrets the run needs."""
    return {
        *spec.secret_vars.values(),
        *(s for step in spec.steps for s in step.secret_vars.values()),
    }


def with_secrets(spec: RunSpec, values: Mapping[str, str]) -> RunSpec:
    """The spec with each secret variable's value (from `values`, by secret name) among its
    plain vars, where the executor takes them; a step's variables still override the
    pipeline's. KeyError for a secret missing from `values`."""

    def resolved(plain: Mapping[str, str], secret: Mapping[str, str]) -> dict[str, str]:
        return {**plain, **{var: values[name] for var, name in secret.items()}}

    steps = tuple(
        replace(step, vars=resolved(step.vars, step.secret_vars), secret_vars={})
        for step in spec.steps
    )
    return replace(spec, vars=resolved(spec.vars, spec.secret_vars), secret_vars={}, steps=steps)


def problem(spec: RunSpec) -> str:
    """Why the run cannot be attempted at all, or "" when it can: the pipeline breaks one of
    pipeline_rules.RUN, or its quotas are no limits. Checked before a workspace is made, so
    a broken pipeline fails at once and costs nothing."""
    if found := pipeline_rules.problem(asdict(spec), pipeline_rules.RUN):
        return found
    try:
        limits(spec.quotas)
    except ValueError as exc:
        return str(exc)
    return ""
