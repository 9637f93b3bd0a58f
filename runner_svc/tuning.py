"""The runner settings a run and its helpers take, read from RunnerSettings once by the
cli and passed down; tests build their own (short grace, fast heartbeats)."""

from __future__ import annotations

from dataclasses import dataclass

from bob_common.config import LOG_LINE_MAX_BYTES, RUN_LOG_MAX_BYTES, RunnerSettings
from runner_svc.executors.tarsafe import Caps


@dataclass(frozen=True)
class Tuning:
    stop_grace_s: float
    heartbeat_s: float
    archive_max_bytes: int
    plugin_timeout_s: float
    log_line_max_bytes: int = LOG_LINE_MAX_BYTES
    run_log_max_bytes: int = RUN_LOG_MAX_BYTES
    archive_max_entries: int = Caps.max_entries
    archive_max_header_bytes: int = Caps.max_header_bytes
    artifact_max_bytes: int = 1 << 30
    # For a run whose pipeline sets no timeout; 0: none.
    run_timeout_s: int = 0

    @property
    def archive_caps(self) -> Caps:
        return Caps(self.archive_max_bytes, self.archive_max_entries, self.archive_max_header_bytes)

    @classmethod
    def from_settings(cls, settings: RunnerSettings) -> Tuning:
        return cls(
            stop_grace_s=settings.stop_grace_s,
            heartbeat_s=settings.heartbeat_s,
            archive_max_bytes=settings.archive_max_bytes,
            plugin_timeout_s=settings.plugin_timeout_s,
            log_line_max_bytes=settings.log_line_max_bytes,
            run_log_max_bytes=settings.run_log_max_bytes,
            run_timeout_s=settings.run_timeout_s,
            archive_max_entries=settings.archive_max_entries,
            archive_max_header_bytes=settings.archive_max_header_bytes,
            artifact_max_bytes=settings.artifact_max_bytes,
        )
