"""A pipeline's triggers (bob.v1.Trigger as a dict, proto field names): which forge events
start it, checked once when the pipeline is stored (problem) and matched against each
signed delivery (matches, pinned_resource). Pure: entities and the API both use it.

Branch and tag patterns are globs as GitHub Actions and Woodpecker write them: `*`
matches within one path segment (not `/`), `**` matches across segments, `?` one
character but `/`; everything else is literal. (fnmatch's `*` crosses `/`, so
`release/*` would match `release/a/b`; no kept library has these semantics alone.)
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Trigger = Mapping[str, Any]

# The forges whose webhooks Bob reads (POST /webhooks/{forge}). GitLab sends its secret
# token itself; the others sign the body with it (HMAC-SHA256).
GITHUB, GITEA, FORGEJO, GITLAB = "github", "gitea", "forgejo", "gitlab"
FORGES = (GITHUB, GITEA, FORGEJO, GITLAB)

PUSH = "push"
TAG = "tag"
PULL_REQUEST = "pull_request"
EVENTS = (PUSH, TAG, PULL_REQUEST)
# What a trigger without `events` listens to.
DEFAULT_EVENTS = (PUSH,)
# A forge's full name of a repository: "owner/name", GitLab's "group/sub/name".
REPOSITORY = re.compile(r"[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)+")
MAX_TRIGGERS = 32
MAX_PATTERNS = 32
MAX_PATTERN_CHARS = 256
MAX_REPOSITORY_CHARS = 512


@dataclass(frozen=True)
class Event:
    """A forge's event read into one shape (bob.v1.ForgeEvent): the repository's full
    name, the kind (EVENTS), the ref, the target branch or tag, the commit and who sent it."""

    repository: str
    kind: str
    ref: str
    target: str
    sha: str
    sender: str


@functools.lru_cache(maxsize=1024)
def _glob(pattern: str) -> re.Pattern[str]:
    parts = []
    for token in re.split(r"(\*\*|\*|\?)", pattern):
        if token == "**":
            parts.append(".*")
        elif token == "*":
            parts.append("[^/]*")
        elif token == "?":
            parts.append("[^/]")
        else:
            parts.append(re.escape(token))
    return re.compile("".join(parts))


def glob_match(pattern: str, name: str) -> bool:
    """Whether `name` (a branch or tag) matches the glob `pattern`, whole."""
    return _glob(pattern).fullmatch(name) is not None


def events_of(trigger: Trigger) -> Sequence[str]:
    return trigger.get("events") or DEFAULT_EVENTS


def same_repository(trigger: Trigger, repository: str) -> bool:
    return str(trigger.get("repository", "")).lower() == repository.lower()


def matches(trigger: Trigger, kind: str, target: str) -> bool:
    """Whether the trigger starts on an event of `kind` about `target`: the pushed branch,
    the tag, or a pull request's target branch. The repository is matched apart."""
    if kind not in events_of(trigger):
        return False
    patterns = trigger.get("tags") if kind == TAG else trigger.get("branches")
    return not patterns or any(glob_match(p, target) for p in patterns)


def pinned_resource(trigger: Trigger, external: Sequence[str]) -> str:
    """The resource whose `ref` the event's commit pins: the trigger's own `resource`, else
    the pipeline's one external resource; "" for none. `external`: the names of the
    pipeline's external resources."""
    named = trigger.get("resource") or ""
    if named:
        return str(named)
    return external[0] if len(external) == 1 else ""


def problem(triggers: Sequence[Trigger], external: Sequence[str], secret_name: str) -> str:
    """Why the triggers of a pipeline are not sound, or "". `external`: the names of its
    external resources; `secret_name`: the pattern of a stored secret's name."""
    if len(triggers) > MAX_TRIGGERS:
        return f"a pipeline has at most {MAX_TRIGGERS} triggers"
    for number, trigger in enumerate(triggers, start=1):
        if found := _trigger_problem(trigger, external, secret_name):
            return f"trigger {number}: {found}"
    return ""


def _trigger_problem(trigger: Trigger, external: Sequence[str], secret_name: str) -> str:
    repository = str(trigger.get("repository", ""))
    if not repository:
        return "needs a repository (its full name on the forge, e.g. 'owner/name')"
    if len(repository) > MAX_REPOSITORY_CHARS or not REPOSITORY.fullmatch(repository):
        return (
            f"repository {repository!r} is not a full name such as 'owner/name' "
            "(the forge's full name, not a clone URL)"
        )
    events = list(trigger.get("events") or ())
    if unknown := [e for e in events if e not in EVENTS]:
        return f"event {unknown[0]!r} is not one of {', '.join(EVENTS)}"
    if len(set(events)) != len(events):
        return "lists an event more than once"
    if trigger.get("tags") and TAG not in events_of(trigger):
        return f"lists tags but not the event {TAG!r}"
    if trigger.get("branches") and not {PUSH, PULL_REQUEST} & set(events_of(trigger)):
        return f"lists branches but neither the event {PUSH!r} nor {PULL_REQUEST!r}"
    for key in ("branches", "tags"):
        if found := _patterns_problem(key, trigger.get(key) or ()):
            return found
    secret = str(trigger.get("secret", ""))
    if not secret:
        return "needs the name of its webhook secret (secret), stored with PUT /secrets/{name}"
    if not re.fullmatch(secret_name, secret):
        return f"secret {secret!r} is not a valid secret name"
    named = str(trigger.get("resource") or "")
    if named and named not in external:
        return f"resource {named!r} is not an external resource of the pipeline"
    if not named and len(external) > 1:
        return (
            f"the pipeline has {len(external)} external resources: name the one whose ref "
            "the event's commit pins (resource)"
        )
    return ""


def _patterns_problem(key: str, patterns: Iterable[str]) -> str:
    patterns = list(patterns)
    if len(patterns) > MAX_PATTERNS:
        return f"lists more than {MAX_PATTERNS} {key}"
    for pattern in patterns:
        if not pattern or len(pattern) > MAX_PATTERN_CHARS or any(c.isspace() for c in pattern):
            return (
                f"{key} pattern {pattern!r} must be 1 to {MAX_PATTERN_CHARS} characters, no spaces"
            )
    return ""
