"""The executor registry loads an executor only when it is built: a shell runner, or any
module that imports the registry, never imports the Docker SDK."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize("module", ["runner_svc.executors", "runner_svc.service", "runner_svc.cli"])
def test_importing_the_registry_does_not_import_docker(module):
    check = f"import {module}; import sys; assert 'docker' not in sys.modules"
    subprocess.run([sys.executable, "-c", check], check=True, timeout=60)


def test_building_a_shell_executor_does_not_import_docker():
    check = (
        "import sys\n"
        "from bob_common.config import RunnerSettings\n"
        "from runner_svc.executors import create_executor\n"
        "create_executor(RunnerSettings.from_env({'BOB_RUNNER_TYPE': 'shell'}))\n"
        "assert 'docker' not in sys.modules\n"
        "assert 'runner_svc.executors.shell.executor' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", check], check=True, timeout=60)
