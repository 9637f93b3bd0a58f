"""A RabbitMQ node of a test's own: its own name, port (127.0.0.1 only), data and logs in a
temporary directory, so that a test can stop and start the broker without touching the
machine's shared one, which other tests (and other people) use at the same time.

It runs the packaged server (/usr/lib/rabbitmq/bin, the layout of Debian's rabbitmq-server,
which `make setup` installs) as the current user, with HOME in its directory so that the
node and its rabbitmqctl share an Erlang cookie of their own.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from devcluster.cluster import free_port

RABBIT_BIN = Path(os.environ.get("BOB_TEST_RABBIT_BIN", "/usr/lib/rabbitmq/bin"))


class RabbitNodeError(RuntimeError):
    """The node could not be started (or is not installed); the message says why."""


class RabbitNode:
    def __init__(self, rabbit_settings: dict[str, int] | None = None) -> None:
        """`rabbit_settings`: the rabbit application's settings to change, written to the
        node's advanced.config (e.g. {"consumer_timeout": 2000})."""
        self.dir = Path(tempfile.mkdtemp(prefix="bob-rabbit-"))
        if rabbit_settings:
            terms = ", ".join(f"{{{key}, {value}}}" for key, value in rabbit_settings.items())
            (self.dir / "advanced.config").write_text(f"[{{rabbit, [{terms}]}}].\n")
        self.name = f"bob-faults-{uuid.uuid4().hex[:8]}@localhost"
        self.port = free_port()
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}/"
        self.env = {
            **os.environ,
            "HOME": str(self.dir),
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(free_port()),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
            "RABBITMQ_MNESIA_BASE": str(self.dir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.dir / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.dir / "enabled_plugins"),
            "RABBITMQ_PID_FILE": str(self.dir / "node.pid"),
            # Files that do not exist: the node runs on its defaults, whatever /etc says.
            "RABBITMQ_CONFIG_FILE": str(self.dir / "rabbitmq"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(self.dir / "advanced.config"),
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def ctl(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(RABBIT_BIN / "rabbitmqctl"), "-q", "-n", self.name, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    @property
    def alive(self) -> bool:
        return bool(self.process and self.process.poll() is None)

    def start(self, timeout: float = 120) -> None:
        """Starts the node (on the same data as before, after a stop) and returns once it
        serves."""
        server = RABBIT_BIN / "rabbitmq-server"
        if not server.exists():
            raise RabbitNodeError(f"{server} not found: is rabbitmq-server installed?")
        with (self.dir / "server.out").open("ab") as out:
            self.process = subprocess.Popen(
                [str(server)],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.dir,
                start_new_session=True,
            )
        self.starts += 1
        deadline = time.monotonic() + timeout
        while True:
            # The first calls may race the node's boot (it is not registered yet).
            left = max(1, int(deadline - time.monotonic()))
            if self.ctl("await_startup", "--timeout", str(left), timeout=left + 30).returncode == 0:
                return
            if not self.alive or time.monotonic() > deadline:
                tail = (self.dir / "server.out").read_text(errors="replace")[-2000:]
                self.kill()
                raise RabbitNodeError(f"RabbitMQ node {self.name} did not start:\n{tail}")
            time.sleep(0.5)

    def stop(self, timeout: float = 60) -> None:
        """Stops the node as an operator would (`rabbitmqctl stop`): every connection is
        closed, what is durable stays on disk."""
        if not self.alive:
            return
        self.ctl("stop", timeout=timeout)
        assert self.process is not None
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        try:
            self.stop()
        finally:
            self.kill()
            shutil.rmtree(self.dir, ignore_errors=True)


@contextlib.contextmanager
def rabbit_node() -> Iterator[RabbitNode]:
    node = RabbitNode()
    try:
        node.start()
        yield node
    finally:
        node.close()
