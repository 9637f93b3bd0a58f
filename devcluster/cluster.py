"""Runs the three services (and, when asked, the reference plugins) as real processes:
`make run` in the foreground, and the end-to-end tests, each with their own ports,
database and vhost."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import grpc
from cryptography.fernet import Fernet
from playhouse import db_url

from bob_common import broker_users, pki, runner_types
from bob_common.config import ApiSettings, EntitiesSettings
from bob_plugins import artifact_local, logger_local, notifier_local, resource_git
from devcluster import certs

STOP_GRACE_S = 15.0

# Each service is started through util-linux's setpriv, which asks the kernel to send it
# SIGTERM when the launcher dies, however it dies (SIGKILL, a closed terminal): no
# service outlives `make run` holding its port. (Not preexec_fn, which is unsafe beside
# the log pump threads.) The services' own session keeps Ctrl-C for the launcher, which
# stops them in order.
_SETPRIV = shutil.which("setpriv")
DIE_WITH_LAUNCHER = [_SETPRIV, "--pdeathsig", "TERM", "--"] if _SETPRIV else []


KEY_FILE = "secrets.key"


def secrets_key(env: Mapping[str, str]) -> dict[str, str]:
    """Entities' secrets key when none is given: BOB_SECRETS_KEY_FILE naming a key made
    once and kept, readable by its owner only, beside the SQLite database (data/ for `make
    run`, the test's directory for a test cluster; data/ for any other database)."""
    # Either variable set, even empty (no key: secrets are refused), is the operator's choice.
    if "BOB_SECRETS_KEY" in env or "BOB_SECRETS_KEY_FILE" in env:
        return {}
    url = EntitiesSettings.from_env(env).db_url
    path = db_url.parse(url).get("database", "") if url.startswith("sqlite") else ""
    folder = os.path.dirname(os.path.abspath(path)) if path and path != ":memory:" else "data"
    # Made as entities makes its database's directory (owner only), should it come first.
    os.makedirs(folder, mode=0o700, exist_ok=True)
    key_file = os.path.join(folder, KEY_FILE)
    try:
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass  # made by an earlier start: the secrets stored with it stay readable
    else:
        with os.fdopen(fd, "w") as file:
            file.write(Fernet.generate_key().decode() + "\n")
    return {"BOB_SECRETS_KEY_FILE": key_file}


# Ports free_port() has handed out in this process: the kernel may give a port it just
# let go of again, and then two services of one cluster would be told to listen on it.
_handed_out: set[int] = set()
_handing_out = threading.Lock()


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on now, never the same one twice."""
    with _handing_out:
        while True:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port: int = s.getsockname()[1]
            if port not in _handed_out:
                _handed_out.add(port)
                return port


@dataclass
class Service:
    name: str
    module: str
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    pump: threading.Thread | None = None
    lines: list[str] = field(default_factory=list)

    def start(self, sink: TextIO, lock: threading.Lock) -> None:
        self.process = subprocess.Popen(
            [*DIE_WITH_LAUNCHER, sys.executable, "-m", self.module],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            # Own process group: Ctrl-C in the terminal reaches the supervisor only,
            # which then stops each service in order.
            start_new_session=True,
        )
        self.pump = threading.Thread(target=self._pump, args=(sink, lock), daemon=True)
        self.pump.start()

    def _pump(self, sink: TextIO, lock: threading.Lock) -> None:
        assert self.process and self.process.stdout
        width = 9
        for raw in self.process.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.lines.append(line)
            with lock:
                sink.write(f"{self.name:<{width}}| {line}\n")
                sink.flush()

    def signal(self, signum: int) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signum)

    def wait(self, timeout: float) -> int | None:
        if not self.process:
            return None
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()
        finally:
            if self.pump:
                self.pump.join(timeout=5)
            if self.process.stdout:
                self.process.stdout.close()

    def kill(self) -> int | None:
        """SIGKILL, as a crash would: nothing is drained or cleaned up. Waits for the exit."""
        self.signal(signal.SIGKILL)
        return self.wait(STOP_GRACE_S)

    @property
    def alive(self) -> bool:
        return bool(self.process and self.process.poll() is None)


class Cluster:
    """Entities, the API server and `runners` runners (or one per `runner_env`, each with
    those variables on top), configured by BOB_* variables; with `plugins`, the reference
    git resource provider, local artifact store, local logger and local notifier too
    (BOB_GIT_PROVIDER_PORT, BOB_ARTIFACT_STORE_PORT, BOB_ARTIFACT_DIR, BOB_LOGGER_PORT,
    BOB_LOGGER_DIR, BOB_NOTIFIER_PORT, BOB_NOTIFIER_FILE). `plugin_urls` maps the name
    each is registered by in the README to its URL. `queue_urls` gives each service its
    own BOB_QUEUE_URL, by the service names of bob_common/broker_users.py (entities, api,
    runner for docker runners, runner-<type> for others): its own broker user (make run;
    broker_users.provision). Entities serves mutual TLS: the CA and each service's
    certificate are issued into `pki_dir`, or a temporary directory, unless the variables
    set BOB_TLS_*."""

    def __init__(
        self,
        env: Mapping[str, str],
        *,
        runners: int = 1,
        sink: TextIO = sys.stdout,
        runner_env: list[Mapping[str, str]] | None = None,
        plugins: bool = False,
        pki_dir: Path | str | None = None,
        queue_urls: Mapping[str, str] | None = None,
    ) -> None:
        base = {**os.environ, "PYTHONUNBUFFERED": "1", **env}
        api = ApiSettings.from_env(base)
        self.api_url = f"http://{api.host}:{api.port}"
        self.sink = sink
        self._lock = threading.Lock()
        extra = runner_env or [{} for _ in range(runners)]
        urls = queue_urls or {}

        def own(service: str, variables: dict[str, str]) -> dict[str, str]:
            # A dict of the service's own: each gets its own certificate below.
            if service in urls:
                return {**variables, "BOB_QUEUE_URL": urls[service]}
            return dict(variables)

        # Only entities holds the secrets key.
        self.entities = Service(
            "entities", "entities_svc", own(broker_users.ENTITIES, {**base, **secrets_key(base)})
        )
        self.api = Service("api", "api_server", own(broker_users.API, base))
        self.runners = []
        for i, e in enumerate(extra):
            variables = {**base, **e}
            kind = variables.get("BOB_RUNNER_TYPE") or runner_types.DEFAULT
            name = f"runner-{i + 1}" if len(extra) > 1 else "runner"
            self.runners.append(
                Service(name, "runner_svc", own(broker_users.runner_service(kind), variables))
            )
        # Entities serves mutual TLS, each service with a certificate of its own, unless
        # the caller's variables set up TLS themselves: in `pki_dir` (kept, renewed when
        # due) or in a directory of the cluster's own, removed when it stops.
        self._own_pki = pki_dir is None and not base.get("BOB_TLS_CA")
        self.pki_dir = Path(pki_dir) if pki_dir is not None else None
        if self._own_pki:
            self.pki_dir = Path(tempfile.mkdtemp(prefix="bob-pki-"))
        if self.pki_dir is not None:
            certs.issue_for_cluster(
                self.pki_dir, self.entities.env, self.api.env, [r.env for r in self.runners]
            )
        self.plugins: list[Service] = []
        self.plugin_urls: dict[str, str] = {}
        if plugins:
            git_port = base.get("BOB_GIT_PROVIDER_PORT") or str(resource_git.DEFAULT_PORT)
            store_port = base.get("BOB_ARTIFACT_STORE_PORT") or str(artifact_local.DEFAULT_PORT)
            logger_port = base.get("BOB_LOGGER_PORT") or str(logger_local.DEFAULT_PORT)
            notifier_port = base.get("BOB_NOTIFIER_PORT") or str(notifier_local.DEFAULT_PORT)
            self.plugins = [
                Service(
                    "resources",
                    "bob_plugins.resource_git",
                    {**base, "BOB_GIT_PROVIDER_PORT": git_port},
                ),
                Service(
                    "artifacts",
                    "bob_plugins.artifact_local",
                    {**base, "BOB_ARTIFACT_STORE_PORT": store_port},
                ),
                Service(
                    "logger", "bob_plugins.logger_local", {**base, "BOB_LOGGER_PORT": logger_port}
                ),
                Service(
                    "notifier",
                    "bob_plugins.notifier_local",
                    {**base, "BOB_NOTIFIER_PORT": notifier_port},
                ),
            ]
            self.plugin_urls = {
                "git": f"http://127.0.0.1:{git_port}",
                "local": f"http://127.0.0.1:{store_port}",
                "logger-local": f"http://127.0.0.1:{logger_port}",
                "notifier-local": f"http://127.0.0.1:{notifier_port}",
            }

    @property
    def services(self) -> list[Service]:
        # Plugins first: the API's health check pings the plugins registered with it.
        return [*self.plugins, self.entities, self.api, *self.runners]

    def start(self, timeout: float = 60.0) -> None:
        for service in self.services:
            service.start(self.sink, self._lock)
        self.wait_healthy(timeout)

    def start_service(self, service: Service) -> None:
        """(Re)starts one service that has exited, with its variables as before: the same
        ports, database and vhost. Its output goes on to the same sink."""
        if service.alive:
            raise RuntimeError(f"{service.name} is still running")
        service.start(self.sink, self._lock)

    def wait_healthy(self, timeout: float) -> None:
        self.wait_url(f"{self.api_url}/can-we-build-it", timeout, self.services)

    @staticmethod
    def wait_url(url: str, timeout: float, services: list[Service] = ()) -> None:
        """Waits until GET url answers 200, failing early when a service has exited."""
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            dead = [s.name for s in services if not s.alive]
            if dead:
                raise RuntimeError(f"{', '.join(dead)} exited during start-up")
            try:
                with urllib.request.urlopen(url, timeout=5) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, OSError) as exc:
                last = str(exc)
            time.sleep(0.2)
        raise RuntimeError(f"{url} not healthy after {timeout}s: {last}")

    def stop(self) -> None:
        """Runners first (they drain), then the API, then entities, then the plugins
        (draining runners may still upload), each with a grace."""
        for group in (self.runners, [self.api], [self.entities], self.plugins):
            for service in group:
                service.signal(signal.SIGTERM)
            for service in group:
                service.wait(STOP_GRACE_S)
        if self._own_pki and self.pki_dir is not None:
            shutil.rmtree(self.pki_dir, ignore_errors=True)

    def tls_files(self, identity: str) -> pki.CertFiles:
        """The CA, certificate and key of `identity` (e.g. "tool/read"), issued on demand:
        for tests and tools that call entities themselves."""
        if self.pki_dir is None:
            raise RuntimeError("this cluster's TLS was set up by its caller's BOB_TLS_*")
        who = pki.Identity.parse(identity)
        pki.ensure(self.pki_dir, [who])
        return pki.files(self.pki_dir, who)

    def entities_channel(self, identity: str) -> grpc.Channel:
        """A channel to this cluster's entities as `identity` (e.g. "api", "runner/r-1"),
        for tests and tools that call it themselves."""
        files = self.tls_files(identity)
        credentials = grpc.ssl_channel_credentials(
            files.ca.read_bytes(), files.key.read_bytes(), files.cert.read_bytes()
        )
        return grpc.secure_channel(self.entities.env["BOB_ENTITIES_ADDR"], credentials)
