"""The rules a pipeline definition must follow beyond its shape, each written once.

A definition is bob.v1.Pipeline as a dict in protobuf's JSON mapping with proto field
names: what entities stores, and what dataclasses.asdict() makes of the runner's RunSpec,
whose fields bear the same names. Each rule answers why the definition breaks it, or "".

Two sets of them. STORE: a pipeline that contradicts itself; entities refuses to store it.
RUN: a pipeline a runner cannot run; it fails the run at once, before anything is made.
Rules only in RUN are not refused at a put: a pipeline may name what is settled later (an
internal resource's run, quotas the executor interprets), and those runs fail saying why.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import partial
from typing import Any

from bob_common import schedules, triggers

Definition = Mapping[str, Any]
Rule = Callable[[Definition], str]

EXTERNAL = "external"  # fetched from a resource provider
INTERNAL = "internal"  # an artifact of another run, fetched from an artifact store
# Params of an internal resource that select the artifact; "artifact" defaults to the
# resource's own name.
INTERNAL_PARAMS = ("group", "name", "run_id")
# A stored secret's name (PUT /secrets/{name}): the API's EntityName.
SECRET_NAME = r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}"


def _steps(definition: Definition) -> Sequence[Mapping[str, Any]]:
    return definition.get("steps") or ()


def _resources(definition: Definition) -> Sequence[Mapping[str, Any]]:
    return definition.get("resources") or ()


def _artifacts(definition: Definition) -> Iterator[tuple[int, Mapping[str, Any]]]:
    """(step number, artifact) of each step that produces one."""
    for number, step in enumerate(_steps(definition), start=1):
        if artifact := step.get("produces_artifact"):
            yield number, artifact


def _first_repeated(names: list[str]) -> str | None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            return name
        seen.add(name)
    return None


def relative_inside(path: str) -> bool:
    """True for a path that names something inside the working directory."""
    parts = path.split("/")
    return bool(path) and not path.startswith("/") and ".." not in parts and "\0" not in path


def secret_uses(definition: Definition) -> list[tuple[str, str]]:
    """(secret name, what references it) for each variable whose value is a stored secret,
    the pipeline's first, then each step's: what names the secrets a run needs."""
    uses = [(secret, f"var {var!r}") for var, secret in _secret_vars(definition).items()]
    for number, step in enumerate(_steps(definition), start=1):
        uses += [(s, f"var {v!r} of step {number}") for v, s in _secret_vars(step).items()]
    return uses


def _secret_vars(where: Mapping[str, Any]) -> Mapping[str, str]:
    return where.get("secret_vars") or {}


# --- the rules -----------------------------------------------------------------------


def has_image(definition: Definition) -> str:
    return "" if definition.get("image") else "a pipeline needs an image"


def has_steps(definition: Definition) -> str:
    return "" if _steps(definition) else "a pipeline needs at least one step"


def resources_unique(definition: Definition) -> str:
    duplicate = _first_repeated([r.get("name", "") for r in _resources(definition)])
    return "" if duplicate is None else f"resource {duplicate!r} is declared more than once"


def steps_have_cmd(definition: Definition) -> str:
    for number, step in enumerate(_steps(definition), start=1):
        if not step.get("cmd"):
            return f"step {number} has no cmd"
    return ""


def needs_declared(definition: Definition, *, which: str = "which is not declared") -> str:
    declared = {r.get("name", "") for r in _resources(definition)}
    for number, step in enumerate(_steps(definition), start=1):
        # An empty needs_resource means none (Bob's Terraform provider sends "").
        needed = step.get("needs_resource")
        if needed and needed not in declared:
            return f"step {number} needs resource {needed!r}, {which}"
    return ""


# The same rule in the words a run's failure has always had (a put's are the default).
needs_declared_at_run = partial(needs_declared, which="which the pipeline does not declare")


def artifacts_unique(definition: Definition) -> str:
    duplicate = _first_repeated([a.get("name", "") for _, a in _artifacts(definition)])
    if duplicate is None:
        return ""
    return f"artifact {duplicate!r} is produced by more than one step"


def resource_types_known(definition: Definition) -> str:
    for resource in _resources(definition):
        kind = resource.get("type", "")
        if kind not in (EXTERNAL, INTERNAL):
            return (
                f"resource {resource.get('name', '')!r} has type {kind!r}; "
                f"it must be {EXTERNAL!r} or {INTERNAL!r}"
            )
    return ""


def resource_names_plain(definition: Definition) -> str:
    for resource in _resources(definition):
        name = resource.get("name", "")
        if name in ("", ".", "..") or "/" in name:
            return f"resource name {name!r} is not a plain directory name"
    return ""


def internal_params_given(definition: Definition) -> str:
    for resource in _resources(definition):
        if resource.get("type") != INTERNAL:
            continue
        params = resource.get("params") or {}
        missing = [p for p in INTERNAL_PARAMS if not params.get(p)]
        if missing:
            return (
                f"internal resource {resource.get('name', '')!r} needs the params "
                f"{', '.join(INTERNAL_PARAMS)} (missing: {', '.join(missing)})"
            )
    return ""


def artifact_paths_inside(definition: Definition) -> str:
    for number, artifact in _artifacts(definition):
        path = artifact.get("path", "")
        if not relative_inside(path):
            return (
                f"step {number} produces artifact {artifact.get('name', '')!r} from "
                f"{path!r}: the path must be relative and stay inside the working directory"
            )
    return ""


def secret_vars_sound(definition: Definition) -> str:
    """Each variable is plain or a secret, not both, and names a possible secret."""
    places = [("", definition)] + [
        (f" of step {n}", step) for n, step in enumerate(_steps(definition), start=1)
    ]
    for where, place in places:
        plain = place.get("vars") or {}
        for var, secret in _secret_vars(place).items():
            if var in plain:
                return f"var {var!r}{where} is both a plain var and a secret"
            if not re.fullmatch(SECRET_NAME, secret):
                return f"var {var!r}{where} names the secret {secret!r}, which is not a valid name"
    return ""


# A pipeline's user: numeric "uid:gid", which needs no lookup in the image and is what the
# working directory and resources are given to.
USER = r"[0-9]{1,9}:[0-9]{1,9}"


def owner(user: str) -> tuple[int, int]:
    """(uid, gid) of a pipeline's user (user_valid), (0, 0) for none."""
    if not user:
        return (0, 0)
    uid, gid = user.split(":")
    return (int(uid), int(gid))


def user_valid(definition: Definition) -> str:
    user = definition.get("user") or ""
    if not user or re.fullmatch(USER, user):
        return ""
    return f"user {user!r} is not a user: it must be numeric 'uid:gid', e.g. '1000:1000'"


# --- schedules (issue 11, ours): cron expressions in time zones (bob_common/schedules.py)


def schedules_valid(definition: Definition) -> str:
    return schedules.problem(schedules.of_definition(definition))


# --- triggers (issue 11: webhooks): the forge events that start a pipeline ------------


def triggers_sound(definition: Definition) -> str:
    external = [r.get("name", "") for r in _resources(definition) if r.get("type") == EXTERNAL]
    return triggers.problem(definition.get("triggers") or (), external, SECRET_NAME)


STORE: tuple[Rule, ...] = (
    has_image,
    has_steps,
    resources_unique,
    steps_have_cmd,
    needs_declared,
    artifacts_unique,
    resource_types_known,
    secret_vars_sound,
    user_valid,
    schedules_valid,
    triggers_sound,
)
RUN: tuple[Rule, ...] = (
    has_image,
    resource_names_plain,
    resource_types_known,
    internal_params_given,
    needs_declared_at_run,
    artifact_paths_inside,
    secret_vars_sound,
    user_valid,
)


def problem(definition: Definition, rules: Sequence[Rule]) -> str:
    """Why the definition breaks the first of `rules` it breaks, or "" when it follows them."""
    for rule in rules:
        if found := rule(definition):
            return found
    return ""
