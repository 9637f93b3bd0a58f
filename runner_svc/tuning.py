"""Runner settings that bob_common.config.RunnerSettings does not carry yet.

They are module constants, gathered in one frozen dataclass that the cli builds once
and passes down like the settings, so that moving them into RunnerSettings (read from
the environment variable named beside each) changes one place.
"""

from __future__ import annotations

from dataclasses import dataclass

# BOB_RUNNER_STOP_GRACE_S: after a stop's SIGTERM, how long a step may take to exit
# before it is killed.
STOP_GRACE_S = 10.0
# BOB_HEARTBEAT_S: how often the runner tells entities it is alive and what it runs.
HEARTBEAT_S = 5.0
# BOB_RUNNER_ARCHIVE_MAX_BYTES: the most content a resource archive may unpack to.
ARCHIVE_MAX_BYTES = 1 << 30
# BOB_RUNNER_PLUGIN_TIMEOUT_S: longest wait for a plugin to connect or send the next bytes.
PLUGIN_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Tuning:
    stop_grace_s: float = STOP_GRACE_S
    heartbeat_s: float = HEARTBEAT_S
    archive_max_bytes: int = ARCHIVE_MAX_BYTES
    plugin_timeout_s: float = PLUGIN_TIMEOUT_S
