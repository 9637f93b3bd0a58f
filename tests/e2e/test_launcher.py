"""`make run`'s launcher (python -m devcluster): the services it starts die with it,
however it ends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from devcluster.cluster import free_port
from tests.conftest import fresh_vhost
from tests.waiting import wait_until

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def _children(pid: int) -> set[int]:
    return {int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


@pytest.mark.timeout(180)
def test_the_services_die_with_a_killed_launcher(rabbitmq_available, docker_client, tmp_path):
    services: set[int] = set()
    with fresh_vhost() as queue_url:
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "BOB_QUEUE_URL": queue_url,
            "BOB_DB_URL": f"sqlite:///{tmp_path / 'bob.db'}",
            "BOB_API_PORT": str(free_port()),
            "BOB_ENTITIES_ADDR": f"127.0.0.1:{free_port()}",
            "BOB_GIT_PROVIDER_PORT": str(free_port()),
            "BOB_ARTIFACT_STORE_PORT": str(free_port()),
            "BOB_ARTIFACT_DIR": str(tmp_path / "artifacts"),
            "BOB_LOGGER_PORT": str(free_port()),
            "BOB_LOGGER_DIR": str(tmp_path / "logs"),
            "BOB_NOTIFIER_PORT": str(free_port()),
            "BOB_NOTIFIER_FILE": str(tmp_path / "notifications.jsonl"),
        }
        log = (tmp_path / "launcher.log").open("w")
        # Given the launcher running the cluster, in a session of its own like a terminal's
        launcher = subprocess.Popen(
            [sys.executable, "-m", "devcluster"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_until(
                lambda: "Bob is up" in (tmp_path / "launcher.log").read_text(),
                timeout=90,
                what="the cluster to start",
                describe=lambda: (tmp_path / "launcher.log").read_text()[-3000:],
            )
            services = _children(launcher.pid)
            assert len(services) == 7  # four plugins, entities, the API, one runner

            # When it is killed outright, as a closed terminal or an OOM kill would
            launcher.kill()
            launcher.wait(10)

            # Then every service it started ends too, none left holding its port
            wait_until(
                lambda: not any(_alive(pid) for pid in services),
                timeout=60,
                what="the services to end with their launcher",
            )
        finally:
            if launcher.poll() is None:
                launcher.send_signal(signal.SIGKILL)
                launcher.wait(10)
            for pid in services:
                if _alive(pid):
                    os.kill(pid, signal.SIGKILL)
            log.close()
