"""What each forge sends to a webhook, read into one shape: the headers that carry its
event kind, delivery id and signature, and its push and pull-request payloads as a
bob.v1.ForgeEvent (repository, kind, ref, target branch or tag, sha, sender).

Pure: no HTTP here. Unsupported (the API answers 400, naming it) for a payload or event
it cannot read; an event it reads but that starts nothing (a ping, a deleted branch, a
closed pull request) carries the reason in `ignored`, answered 202 once its signature
has been verified.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from bob_common.triggers import FORGEJO, GITEA, GITHUB, GITLAB, PULL_REQUEST, PUSH, TAG, Event

_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_ZERO = re.compile(r"0+")
HEADS, TAGS = "refs/heads/", "refs/tags/"
MAX_FIELD_CHARS = 512


# A payload as JSON gives it; its shape is checked field by field as it is read.
Payload = dict[str, Any]


class Unsupported(ValueError):
    """The payload or its event cannot be read; the message names what (400)."""


@dataclass(frozen=True)
class Headers:
    """Where a forge puts its event kind, delivery id and signature, in order of
    preference (Forgejo sends its own names and Gitea's)."""

    event: tuple[str, ...]
    delivery: tuple[str, ...]
    signature: tuple[str, ...]
    # Prefix of the signature's value, removed before it is compared.
    prefix: str = ""


HEADERS: dict[str, Headers] = {
    GITHUB: Headers(
        ("X-GitHub-Event",), ("X-GitHub-Delivery",), ("X-Hub-Signature-256",), "sha256="
    ),
    GITEA: Headers(("X-Gitea-Event",), ("X-Gitea-Delivery",), ("X-Gitea-Signature",)),
    FORGEJO: Headers(
        ("X-Forgejo-Event", "X-Gitea-Event"),
        ("X-Forgejo-Delivery", "X-Gitea-Delivery"),
        ("X-Forgejo-Signature", "X-Gitea-Signature"),
    ),
    GITLAB: Headers(
        ("X-Gitlab-Event",), ("X-Gitlab-Event-UUID", "Idempotency-Key"), ("X-Gitlab-Token",)
    ),
}


@dataclass(frozen=True)
class Parsed:
    event: Event
    # Why it starts nothing even when signed; "" for an event that may start runs.
    ignored: str = ""


def first(headers: Mapping[str, str], names: tuple[str, ...]) -> str:
    """The value of the first of `names` present (headers: case-insensitive), or ""."""
    for name in names:
        if value := headers.get(name, "").strip():
            return value
    return ""


def signature(forge: str, headers: Mapping[str, str]) -> str:
    """The delivery's signature without its prefix; "" when it carries none."""
    spec = HEADERS[forge]
    value = first(headers, spec.signature)
    if spec.prefix and value.lower().startswith(spec.prefix):
        value = value[len(spec.prefix) :]
    return value


def delivery_id(forge: str, headers: Mapping[str, str], body: bytes) -> str:
    """The forge's id of the delivery, the same when it is redelivered; the body's SHA-256
    when it sends none (a redelivery's body is the same bytes)."""
    given = first(headers, HEADERS[forge].delivery)
    if given:
        if len(given) > 128 or not given.isprintable():
            raise Unsupported(f"delivery id {given[:40]!r} is not an id")
        return given
    return "sha256:" + hashlib.sha256(body).hexdigest()


def payload_of(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        raise Unsupported("the body is not JSON") from None


def parse(forge: str, headers: Mapping[str, str], payload: Any) -> Parsed:
    """The event of a delivery; Unsupported naming what cannot be read."""
    names = HEADERS[forge].event
    kind = first(headers, names)
    if not kind:
        raise Unsupported(f"the delivery has no {names[0]} header naming its event")
    if not isinstance(payload, dict):
        raise Unsupported("the payload is not a JSON object")
    readers = (
        GITLAB_EVENTS if forge == GITLAB else GITHUB_EVENTS if forge == GITHUB else GITEA_EVENTS
    )
    reader = readers.get(kind)
    if reader is None:
        raise Unsupported(f"{names[0]} {kind!r} is not supported: one of {', '.join(readers)}")
    try:
        return reader(payload)
    except (KeyError, TypeError, AttributeError) as exc:
        raise Unsupported(f"the {kind} payload lacks or mistypes {exc}") from None


# --- fields ------------------------------------------------------------------------------


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_FIELD_CHARS:
        raise Unsupported(f"{what} is not a string of 1 to {MAX_FIELD_CHARS} characters")
    return value


def _sha(value: Any, what: str) -> str:
    if not isinstance(value, str) or not _SHA.fullmatch(value.lower()):
        raise Unsupported(f"{what} {str(value)[:80]!r} is not a commit id")
    return value.lower()


def _deleted(value: Any) -> bool:
    return isinstance(value, str) and _ZERO.fullmatch(value) is not None


def _sender(user: Any) -> str:
    """A user's name as the forge gives it; "" when the payload names none."""
    if not isinstance(user, dict):
        return ""
    for key in ("login", "username", "name"):
        if isinstance(user.get(key), str) and user[key]:
            return str(user[key])[:MAX_FIELD_CHARS]
    return ""


def _pushed(repository: str, ref: str, after: Any, sender: str) -> Parsed:
    """A push to a branch or of a tag (`ref` refs/heads/... or refs/tags/...)."""
    if ref.startswith(TAGS):
        kind, target = TAG, ref[len(TAGS) :]
    elif ref.startswith(HEADS):
        kind, target = PUSH, ref[len(HEADS) :]
    else:
        raise Unsupported(f"ref {ref!r} is neither a branch (refs/heads/) nor a tag (refs/tags/)")
    if _deleted(after):
        event = Event(repository, kind, ref, target, "0" * 40, sender)
        return Parsed(event, f"{ref} of {repository} was deleted: nothing to build")
    return Parsed(Event(repository, kind, ref, target, _sha(after, "after"), sender))


# --- GitHub, and Gitea/Forgejo (whose payloads follow GitHub's) ----------------------------

# Pull-request actions that bring new code to build; others (closed, labeled, edited) do not.
GITHUB_PR_ACTIONS = ("opened", "reopened", "synchronize")
GITEA_PR_ACTIONS = ("opened", "reopened", "synchronized")


def _github_push(payload: Payload) -> Parsed:
    repository = _text(payload["repository"]["full_name"], "repository.full_name")
    sender = _sender(payload.get("sender")) or _sender(payload.get("pusher"))
    after = "0" if payload.get("deleted") is True else payload["after"]
    return _pushed(repository, _text(payload["ref"], "ref"), after, sender)


def _pull_request(actions: tuple[str, ...]) -> Callable[[Payload], Parsed]:
    def read(payload: Payload) -> Parsed:
        repository = _text(payload["repository"]["full_name"], "repository.full_name")
        pull = payload["pull_request"]
        number = payload.get("number", pull.get("number"))
        if not isinstance(number, int):
            raise Unsupported("number is not the pull request's number")
        event = Event(
            repository,
            PULL_REQUEST,
            f"refs/pull/{number}/head",
            _text(pull["base"]["ref"], "pull_request.base.ref"),
            _sha(pull["head"]["sha"], "pull_request.head.sha"),
            _sender(payload.get("sender")),
        )
        action = payload.get("action")
        if action not in actions:
            return Parsed(event, f"pull request action {action!r} brings no new commits")
        return Parsed(event)

    return read


def _github_ping(payload: Payload) -> Parsed:
    repository = _text(payload["repository"]["full_name"], "repository.full_name")
    event = Event(repository, PUSH, "", "", "", _sender(payload.get("sender")))
    return Parsed(event, "ping: the webhook is set up; nothing to build")


GITHUB_EVENTS: dict[str, Callable[[Payload], Parsed]] = {
    "push": _github_push,
    "pull_request": _pull_request(GITHUB_PR_ACTIONS),
    "ping": _github_ping,
}
GITEA_EVENTS: dict[str, Callable[[Payload], Parsed]] = {
    "push": _github_push,
    "pull_request": _pull_request(GITEA_PR_ACTIONS),
}


# --- GitLab ------------------------------------------------------------------------------

# Merge request actions that bring new code: "update" only with new commits (oldrev).
GITLAB_MR_ACTIONS = ("open", "reopen", "update")


def _gitlab_push(payload: Payload) -> Parsed:
    repository = _text(payload["project"]["path_with_namespace"], "project.path_with_namespace")
    sender = str(payload.get("user_username") or payload.get("user_name") or "")[:MAX_FIELD_CHARS]
    return _pushed(repository, _text(payload["ref"], "ref"), payload["after"], sender)


def _gitlab_merge_request(payload: Payload) -> Parsed:
    repository = _text(payload["project"]["path_with_namespace"], "project.path_with_namespace")
    attributes = payload["object_attributes"]
    iid = attributes["iid"]
    if not isinstance(iid, int):
        raise Unsupported("object_attributes.iid is not the merge request's number")
    event = Event(
        repository,
        PULL_REQUEST,
        f"refs/merge-requests/{iid}/head",
        _text(attributes["target_branch"], "object_attributes.target_branch"),
        _sha(attributes["last_commit"]["id"], "object_attributes.last_commit.id"),
        _sender(payload.get("user")),
    )
    action = attributes.get("action")
    if action not in GITLAB_MR_ACTIONS:
        return Parsed(event, f"merge request action {action!r} brings no new commits")
    if action == "update" and not attributes.get("oldrev"):
        return Parsed(event, "merge request update without new commits")
    return Parsed(event)


GITLAB_EVENTS: dict[str, Callable[[Payload], Parsed]] = {
    "Push Hook": _gitlab_push,
    "Tag Push Hook": _gitlab_push,
    "Merge Request Hook": _gitlab_merge_request,
}
