"""Property-based fuzzing of the running API against its own OpenAPI document.

Schemathesis generates valid and invalid requests for every operation of the document the
API serves (GET /api.yaml) and checks every answer: no server error, and a status code,
content type, headers and body that the document allows. Bounded in examples and time."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
        "negative_data_rejection",
    ]
)
MAX_EXAMPLES = 100
# A bound on the test, not a target: 100 examples per operation take about a minute here.
TIMEOUT_S = 420
CONFIG = Path(__file__).with_name("schemathesis.toml")
# Fixed, so that CI is reproducible; BOB_FUZZ_SEED=<n> explores elsewhere.
SEED = os.environ.get("BOB_FUZZ_SEED", "20261128")


@pytest.mark.timeout(TIMEOUT_S + 60)
def test_every_operation_holds_the_contract_under_fuzzing(bob, tmp_path):
    st = shutil.which("st", path=str(Path(sys.executable).parent))
    assert st, "schemathesis is installed with the test dependencies"
    result = subprocess.run(
        [
            st,
            "--config-file",
            str(CONFIG),
            "run",
            f"{bob.cluster.api_url}/api.yaml",
            "--checks",
            CHECKS,
            "--max-examples",
            str(MAX_EXAMPLES),
            "--workers",
            "2",
            "--seed",
            SEED,
            # The coverage phase trips an internal error of hypothesis (lambda source
            # parsing) on this document; examples, fuzzing and stateful cover every operation.
            "--phases",
            "examples,fuzzing,stateful",
            "--request-timeout",
            "30",
            "--no-color",
            "--report-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    # The summary (operations, test cases, failures) is part of the test's output.
    print(result.stdout[-6000:])
    assert result.returncode == 0, result.stdout[-20000:] + result.stderr[-4000:]
