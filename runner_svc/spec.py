"""What a run is asked to do, in the runner's own terms: built from a Job once, at the
edge, and checked before anything is started."""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from dataclasses import dataclass, field

from bob_pb import messages_pb2

EXTERNAL = "external"  # fetched from a resource provider
INTERNAL = "internal"  # an artifact of another run, fetched from an artifact store
# Params of an internal resource that select the artifact; "artifact" defaults to the
# resource's own name.
INTERNAL_PARAMS = ("group", "name", "run_id")


@dataclass(frozen=True)
class ArtifactSpec:
    name: str
    # Relative to the working directory.
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

    @property
    def directory(self) -> str:
        """The step's working directory, relative to the workspace's: as in Bob, a step
        that needs a resource runs inside it (<name>/), any other in the workspace ("")."""
        return self.needs_resource

    def artifact_source(self) -> str:
        """Where its artifact is, relative to the workspace: the artifact's path is
        relative to the step's own working directory."""
        assert self.produces_artifact is not None
        return posixpath.join(self.directory, self.produces_artifact.path)


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

    def resource(self, name: str) -> ResourceSpec | None:
        return next((r for r in self.resources if r.name == name), None)


def from_job(job: messages_pb2.Job) -> RunSpec:
    pipeline = job.pipeline
    return RunSpec(
        run_id=job.run_id,
        attempt=job.attempt,
        group=job.group,
        name=job.name,
        image=pipeline.image,
        vars=dict(pipeline.vars),
        timeout_s=pipeline.timeout,
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
            )
            for step in pipeline.steps
        ),
    )


def relative_inside(path: str) -> bool:
    """True for a path that names something inside the working directory."""
    parts = path.split("/")
    return bool(path) and not path.startswith("/") and ".." not in parts and "\0" not in path


def problem(spec: RunSpec) -> str:
    """Why the run cannot be attempted at all, or "" when it can. Checked before a
    workspace is made, so a broken pipeline fails at once and costs nothing."""
    if not spec.image:
        return "the pipeline has no image"
    for resource in spec.resources:
        if resource.name in ("", ".", "..") or "/" in resource.name:
            return f"resource name {resource.name!r} is not a plain directory name"
        if resource.type not in (EXTERNAL, INTERNAL):
            return (f"resource {resource.name!r} has type {resource.type!r}; "
                    f"it must be {EXTERNAL!r} or {INTERNAL!r}")
        if resource.type == INTERNAL:
            missing = [p for p in INTERNAL_PARAMS if not resource.params.get(p)]
            if missing:
                return (f"internal resource {resource.name!r} needs the params "
                        f"{', '.join(INTERNAL_PARAMS)} (missing: {', '.join(missing)})")
    for number, step in enumerate(spec.steps, start=1):
        if step.needs_resource and spec.resource(step.needs_resource) is None:
            return (f"step {number} needs resource {step.needs_resource!r}, "
                    "which the pipeline does not declare")
        artifact = step.produces_artifact
        if artifact is not None and not relative_inside(artifact.path):
            return (f"step {number} produces artifact {artifact.name!r} from "
                    f"{artifact.path!r}: the path must be relative and stay inside the "
                    "working directory")
    return ""
