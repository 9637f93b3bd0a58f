"""Runner types: the one place that names the default, Bob's alias for it, the rules of a
type's name and the types no default may allow."""

from __future__ import annotations

import re
from collections.abc import Iterable

# Jobs go to runners of this type unless a start asks for another.
DEFAULT = "docker"

# Steps as local processes on the runner's host: an admin grants it per pipeline only.
SHELL = "shell"

# Types that only a pipeline's own list may allow, never the cluster's default
# (BOB_RUNNER_TYPES_ALLOWED): they run builds outside any container.
NEVER_BY_DEFAULT = frozenset({SHELL})

# Bob calls its default runner type "container" (its queue is bob.container.jobs); a start
# that names it means our Docker runner.
ALIASES = {"container": DEFAULT}

# The runner type becomes a routing key and part of a queue name.
NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def canonical(runner_type: str) -> str:
    """The runner type a start means: DEFAULT when none is named, aliases resolved."""
    if not runner_type:
        return DEFAULT
    return ALIASES.get(runner_type, runner_type)


def invalid(runner_type: str) -> str:
    """Why the name cannot be a runner type, or ""."""
    if NAME.match(runner_type):
        return ""
    return f"Runner type {runner_type!r} is not a valid name (letters, digits, _ and -)"


def normalized(types: Iterable[str]) -> tuple[str, ...]:
    """A list of runner types as stored and shown: aliases resolved, sorted, each once.
    ValueError naming the first malformed one."""
    found = set()
    for runner_type in types:
        if problem := invalid(runner_type):
            raise ValueError(problem)
        found.add(canonical(runner_type))
    return tuple(sorted(found))
