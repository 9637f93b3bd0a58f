"""`python -m api_server` as a real process: a bad setting is refused before anything
starts, on stderr, like the other services."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from bob_common.startup import RET_CONFIG

ROOT = Path(__file__).resolve().parents[2]


def test_a_malformed_setting_exits_2_naming_it_on_stderr():
    done = subprocess.run(
        [sys.executable, "-m", "api_server"],
        cwd=ROOT,
        env={**os.environ, "BOB_API_PORT": "lots"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == RET_CONFIG
    assert done.stderr.startswith("api: ") and "BOB_API_PORT" in done.stderr, done.stderr
    assert done.stdout == ""
