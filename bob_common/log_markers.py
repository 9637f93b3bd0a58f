"""How Bob's own lines are told apart in a run's log: they are on the SYSTEM stream and
start with "[bob] ", whoever writes them (a runner, or entities when a run is retried or
lost). Readers that want only a build's output drop the lines with the prefix."""

from __future__ import annotations

SYSTEM_PREFIX = "[bob] "
# bob.v1.LogStream.SYSTEM; entities stores it without the generated code.
SYSTEM_STREAM = 3


def system_text(text: str) -> str:
    """The text of Bob's line saying `text`."""
    return SYSTEM_PREFIX + text


def system_line(text: str) -> tuple[int, str]:
    """Bob's line saying `text`, as a (stream, text) pair."""
    return SYSTEM_STREAM, system_text(text)
