"""How every command line of Bob starts: its settings read once (a problem goes to stderr
and exits RET_CONFIG), then logging set up; and the exit codes they share."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Protocol, TypeVar

from bob_common.config import CommonSettings, ConfigError
from bob_common.logs import configure_logging

RET_OK = 0
RET_ERROR = 1  # stopped on an unexpected error
RET_CONFIG = 2  # the configuration is invalid


class _Settings(Protocol):
    @property
    def common(self) -> CommonSettings: ...


S = TypeVar("S", bound=_Settings)


def settings_or_report(service: str, load: Callable[[], S]) -> S | None:
    """The service's settings, with its logging set up; None once the problem with them
    is printed on stderr (the caller then exits RET_CONFIG)."""
    try:
        settings = load()
    except ConfigError as exc:
        print(f"{service}: {exc}", file=sys.stderr)
        return None
    configure_logging(service, settings.common.log_level)
    return settings
