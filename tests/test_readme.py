"""The README's internal-tooling example runs as written against a real entities service
serving mutual TLS, with the read-only tooling certificate."""

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

from bob_common import pki
from bob_pb import entities_pb2, entities_pb2_grpc, pipeline_pb2
from devcluster.certs import READ_TOOL, tls_env
from devcluster.cluster import Service, free_port
from tests.waiting import wait_until

README = Path(__file__).resolve().parent.parent / "README.md"


def _tooling_example() -> str:
    section = README.read_text().split("### Internal tooling", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def _credentials(files: pki.CertFiles) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        files.ca.read_bytes(), files.key.read_bytes(), files.cert.read_bytes()
    )


def _serving(addr: str, creds: grpc.ChannelCredentials) -> bool:
    with grpc.secure_channel(addr, creds) as channel:
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
    pki_dir = tmp_path / "pki"
    pki.ensure(pki_dir, [pki.Identity(pki.ENTITIES), pki.Identity(pki.API), READ_TOOL])
    api = _credentials(pki.files(pki_dir, pki.Identity(pki.API)))
    addr = f"127.0.0.1:{free_port()}"
    env = {
        "BOB_ENTITIES_ADDR": addr,
        "BOB_DB_URL": f"sqlite:///{tmp_path / 'bob.db'}",
        "BOB_QUEUE_URL": rabbit_url,
    }
    served = {**env, **tls_env(pki_dir, pki.Identity(pki.ENTITIES))}
    entities = Service("entities", "entities_svc", {**os.environ, **served})
    with (tmp_path / "entities.log").open("w") as sink:
        entities.start(sink, threading.Lock())
        try:
            wait_until(lambda: _serving(addr, api), timeout=30, what="entities serving")
            with grpc.secure_channel(addr, api) as channel:
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
                env={**os.environ, **env, **tls_env(pki_dir, READ_TOOL)},
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
