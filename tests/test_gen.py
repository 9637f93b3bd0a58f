"""gen/ is generated from protos/ and must never drift from it."""

import subprocess
import sys


def test_gen_matches_protos():
    result = subprocess.run(
        [sys.executable, "-m", "devcluster.gen", "--check"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
