"""The run id in every log line about a run, bound once per unit of work."""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any


class RunLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """A module logger bound to one run: `grep r-1234` then tells the run's whole story."""

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, Any]:
        return f"run {self.extra['run_id']}: {msg}", kwargs  # type: ignore[index]


def run_logger(logger: logging.Logger, run_id: str) -> RunLog:
    return RunLog(logger, {"run_id": run_id})
