"""`python -m entities_svc` as a real process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from devcluster.cluster import free_port
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]


def _serving(addr: str) -> bool:
    with grpc.insecure_channel(addr) as channel:
        try:
            answer = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service="bob.v1.Entities"), timeout=1
            )
        except grpc.RpcError:
            return False
    return answer.status == health_pb2.HealthCheckResponse.SERVING


def test_process_serves_then_exits_0_on_sigterm(tmp_path, rabbit_url):
    addr = f"127.0.0.1:{free_port()}"
    db_path = tmp_path / "not" / "yet" / "bob.db"
    env = {
        **os.environ,
        "BOB_DB_URL": f"sqlite:///{db_path}",
        "BOB_ENTITIES_LISTEN": addr,
        "BOB_QUEUE_URL": rabbit_url,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "entities_svc"],
        cwd=ROOT,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    # gRPC serves before the broker link is up, so the consumer line is awaited
    # on its own: a SIGTERM between the two would find nothing consuming yet.
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(process.stderr), daemon=True)
    reader.start()
    try:
        wait_until(lambda: _serving(addr), timeout=30, what=f"entities serving on {addr}")
        assert db_path.exists()
        wait_until(
            lambda: any("consuming bob.entities.events" in line for line in lines),
            timeout=30,
            what="entities consuming its events queue",
        )

        process.send_signal(signal.SIGTERM)

        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)
        reader.join(timeout=30)
        process.stderr.close()
    assert any("SIGTERM: stopping" in line for line in lines)


def test_malformed_setting_exits_2(tmp_path):
    env = {**os.environ, "BOB_EVENT_BATCH_MAX": "lots", "BOB_DB_URL": f"sqlite:///{tmp_path}/b.db"}
    done = subprocess.run(
        [sys.executable, "-m", "entities_svc"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "BOB_EVENT_BATCH_MAX" in done.stderr
