"""Runner types: the one place that names the default and Bob's alias for it."""

from __future__ import annotations

# Jobs go to runners of this type unless a start asks for another.
DEFAULT = "docker"

# Bob calls its default runner type "container" (its queue is bob.container.jobs); a start
# that names it means our Docker runner.
ALIASES = {"container": DEFAULT}


def canonical(runner_type: str) -> str:
    """The runner type a start means: DEFAULT when none is named, aliases resolved."""
    if not runner_type:
        return DEFAULT
    return ALIASES.get(runner_type, runner_type)
