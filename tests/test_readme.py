"""The README's internal-tooling example runs as written against a real entities service."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bob_pb import entities_pb2, entities_pb2_grpc, pipeline_pb2
from devcluster.cluster import Service, free_port
from tests.waiting import wait_until

README = Path(__file__).resolve().parent.parent / "README.md"


def _tooling_example() -> str:
    section = README.read_text().split("### Internal tooling", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def _serving(addr: str) -> bool:
    with grpc.insecure_channel(addr) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=1
            )
        except grpc.RpcError:
            return False
    return reply.status == health_pb2.HealthCheckResponse.SERVING


def test_the_readme_grpc_client_example_lists_pipelines(tmp_path, rabbit_url):
    example = _tooling_example()
    assert len(example.strip().splitlines()) <= 12
    addr = f"127.0.0.1:{free_port()}"
    env = {
        "BOB_ENTITIES_ADDR": addr,
        "BOB_DB_URL": f"sqlite:///{tmp_path / 'bob.db'}",
        "BOB_QUEUE_URL": rabbit_url,
    }
    entities = Service("entities", "entities_svc", {**os.environ, **env})
    with (tmp_path / "entities.log").open("w") as sink:
        entities.start(sink, threading.Lock())
        try:
            wait_until(lambda: _serving(addr), timeout=30, what="entities serving")
            with grpc.insecure_channel(addr) as channel:
                entities_pb2_grpc.EntitiesStub(channel).PutPipeline(
                    entities_pb2.PutPipelineRequest(
                        group="dev",
                        name="hello",
                        pipeline=pipeline_pb2.Pipeline(
                            image="busybox", steps=[pipeline_pb2.Step(cmd="true")]
                        ),
                    ),
                    timeout=5,
                )
            result = subprocess.run(
                [sys.executable, "-c", example],
                env={**os.environ, **env},
                capture_output=True,
                text=True,
                timeout=60,
            )
        finally:
            entities.signal(signal.SIGTERM)
            entities.wait(15)

    assert result.returncode == 0, result.stderr
    assert "dev hello RUN_STATUS_UNSPECIFIED" in result.stdout
    assert "pipelines: 1" in result.stdout
