"""Forge deliveries as the forges send them: a sample payload (payloads/, shaped after
each forge's documented examples) with the fields a test sets, serialized once, and the
headers that carry its event, delivery id and signature."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import uuid
from pathlib import Path
from typing import Any

PAYLOADS = Path(__file__).parent / "payloads"


def payload(name: str) -> dict[str, Any]:
    return json.loads((PAYLOADS / f"{name}.json").read_text())


def hmac_hex(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signed(
    forge: str, event: str, body: bytes, secret: str, delivery: str | None = None
) -> dict[str, str]:
    """The headers `forge` sends with `body`, signed with `secret`."""
    delivery = delivery or str(uuid.uuid4())
    headers = {"Content-Type": "application/json"}
    if forge == "github":
        headers |= {
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": delivery,
            "X-Hub-Signature-256": "sha256=" + hmac_hex(secret, body),
            "User-Agent": "GitHub-Hookshot/5f4a1c2",
        }
    elif forge in ("gitea", "forgejo"):
        headers |= {
            "X-Gitea-Event": event,
            "X-Gitea-Delivery": delivery,
            "X-Gitea-Signature": hmac_hex(secret, body),
        }
        if forge == "forgejo":
            headers |= {
                "X-Forgejo-Event": event,
                "X-Forgejo-Delivery": delivery,
                "X-Forgejo-Signature": hmac_hex(secret, body),
            }
    elif forge == "gitlab":
        headers |= {
            "X-Gitlab-Event": event,
            "X-Gitlab-Event-UUID": delivery,
            "X-Gitlab-Token": secret,
            "User-Agent": "GitLab/17.5.0",
        }
    else:
        raise ValueError(forge)
    return headers


def push(forge: str, repository: str, ref: str, sha: str, sender: str = "alice") -> bytes:
    """A push of `ref` (refs/heads/... or refs/tags/...) at `sha` to `repository`."""
    if forge == "gitlab":
        sample = payload("gitlab_tag_push" if ref.startswith("refs/tags/") else "gitlab_push")
        sample["project"]["path_with_namespace"] = repository
        sample.update(ref=ref, after=sha, checkout_sha=sha, user_username=sender)
    else:
        sample = payload("github_push" if forge == "github" else "gitea_push")
        sample["repository"]["full_name"] = repository
        sample.update(ref=ref, after=sha)
        sample["sender"]["login"] = sender
    return json.dumps(sample).encode()


def pull_request(
    forge: str, repository: str, target: str, sha: str, action: str | None = None
) -> bytes:
    """A pull (merge) request into `target` whose head is `sha`."""
    if forge == "gitlab":
        sample = payload("gitlab_merge_request")
        sample["project"]["path_with_namespace"] = repository
        attributes = sample["object_attributes"]
        attributes["target_branch"] = target
        attributes["last_commit"]["id"] = sha
        attributes["action"] = action or attributes["action"]
    else:
        sample = copy.deepcopy(
            payload("github_pull_request" if forge == "github" else "gitea_pull_request")
        )
        sample["repository"]["full_name"] = repository
        sample["pull_request"]["base"]["ref"] = target
        sample["pull_request"]["head"]["sha"] = sha
        sample["action"] = action or sample["action"]
    return json.dumps(sample).encode()


# The event header's value of a push, a tag push and a pull request, by forge.
PUSH_EVENT = {"github": "push", "gitea": "push", "forgejo": "push", "gitlab": "Push Hook"}
TAG_EVENT = {"github": "push", "gitea": "push", "forgejo": "push", "gitlab": "Tag Push Hook"}
PR_EVENT = {
    "github": "pull_request",
    "gitea": "pull_request",
    "forgejo": "pull_request",
    "gitlab": "Merge Request Hook",
}
