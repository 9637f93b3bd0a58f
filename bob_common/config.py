"""Configuration: environment variables with working defaults for one machine.

Every setting of every service is read here, once, into a frozen dataclass that the
service's cli passes down. README.md documents each variable in one table.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import math
import os
import re
import socket
import stat
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TypeVar
from urllib.parse import urlsplit

from bob_common import pages, pki, runner_types
from bob_common.plugin_policy import AddressPolicy, parse_allowed
from bob_common.quantities import parse_memory

T = TypeVar("T", str, int, float, bool)


# The plain vars whose values the runner masks in logs, as the Buildkite agent's
# redacted-vars: glob patterns over variable names (BOB_REDACTED_VARS).
REDACTED_VARS_DEFAULT = (
    "*_PASSWORD",
    "*_SECRET",
    "*_TOKEN",
    "*_PRIVATE_KEY",
    "*_ACCESS_KEY",
    "*_SECRET_KEY",
    "*_CONNECTION_STRING",
)


# Log caps (runner_svc/reporting/logcaps.py), in UTF-8 bytes: the longest stored line
# (BOB_LOG_LINE_MAX_BYTES), the step output one run attempt stores (BOB_RUN_LOG_MAX_BYTES),
# and the largest run event a runner publishes (BOB_EVENT_MAX_BYTES): far below RabbitMQ's
# max_message_size (16 MiB since RabbitMQ 4.0, 128 MiB before).
LOG_LINE_MAX_BYTES = 64 * 1024
RUN_LOG_MAX_BYTES = 64 * 1024 * 1024
EVENT_MAX_BYTES = 1024 * 1024
# Unacked run events entities lets in at most, by their largest size (BOB_EVENT_MAX_BYTES):
# AMQP's prefetch counts messages, not bytes, so entities derives its prefetch from both.
EVENTS_INFLIGHT_MAX_BYTES = 128 * 1024 * 1024
# Webhook delivery ids are remembered this long (issue 11): 7 days.
WEBHOOK_DELIVERY_KEEP_S = 7 * 24 * 3600.0


class ConfigError(ValueError):
    """Raised at start-up for a malformed variable; the cli prints it and exits."""


def _get(env: Mapping[str, str], name: str, default: T) -> T:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        if isinstance(default, bool):
            if raw.lower() not in {"1", "0", "true", "false", "yes", "no"}:
                raise ValueError(raw)
            return raw.lower() in {"1", "true", "yes"}
        return type(default)(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a valid {type(default).__name__}") from None


@dataclass(frozen=True)
class CommonSettings:
    # repr=False: the URL may carry a password.
    queue_url: str = field(repr=False)
    entities_addr: str
    log_level: str
    # Deadline of every gRPC call to entities (and of a publish confirm), so callers answer
    # instead of hanging: the API answers 503 within 5 s when a backend is down.
    grpc_timeout_s: float
    # Bound of each bob.jobs.<type> queue; publishes beyond it are rejected (back-pressure).
    queue_max_jobs: int
    # Entities' mutual TLS (bob_common/pki.py, bob_common/tls.py): the cluster CA bundle,
    # and this service's certificate and key, which say who it is. All three or none;
    # none means plaintext gRPC without identities.
    tls_ca: str = ""
    tls_cert: str = ""
    tls_key: str = ""
    # The largest run event a runner publishes; entities sizes its prefetch by it.
    event_max_bytes: int = EVENT_MAX_BYTES
    # Issue 10 (SSRF): networks (CIDRs, addresses) and host names whose loopback or
    # private addresses plugins may have where such addresses are otherwise refused
    # (bob_common/plugin_policy.py). Link-local and metadata addresses are never allowed.
    plugin_allowed_networks: tuple[str, ...] = ()

    @property
    def tls(self) -> bool:
        return bool(self.tls_ca)

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> CommonSettings:
        settings = cls(
            queue_url=_get(env, "BOB_QUEUE_URL", "amqp://guest:guest@127.0.0.1:5672/"),
            entities_addr=_get(env, "BOB_ENTITIES_ADDR", "127.0.0.1:7778"),
            log_level=_get(env, "BOB_LOG_LEVEL", "INFO").upper(),
            grpc_timeout_s=_get(env, "BOB_GRPC_TIMEOUT_S", 4.0),
            queue_max_jobs=_get(env, "BOB_QUEUE_MAX_JOBS", 10000),
            tls_ca=_get(env, "BOB_TLS_CA", ""),
            tls_cert=_get(env, "BOB_TLS_CERT", ""),
            tls_key=_get(env, "BOB_TLS_KEY", ""),
            event_max_bytes=_get(env, "BOB_EVENT_MAX_BYTES", EVENT_MAX_BYTES),
            plugin_allowed_networks=_plugin_networks(env),
        )
        if settings.event_max_bytes < 16 * 1024:
            raise ConfigError("BOB_EVENT_MAX_BYTES must be at least 16384")
        _check_tls_files(settings)
        return settings


def _plugin_networks(env: Mapping[str, str]) -> tuple[str, ...]:
    items = _items(env, "BOB_PLUGIN_ALLOWED_NETWORKS")
    try:
        parse_allowed(items)
    except ValueError as exc:
        raise ConfigError(f"BOB_PLUGIN_ALLOWED_NETWORKS: {exc}") from None
    return items


def _check_tls_files(settings: CommonSettings) -> None:
    given = {
        "BOB_TLS_CA": settings.tls_ca,
        "BOB_TLS_CERT": settings.tls_cert,
        "BOB_TLS_KEY": settings.tls_key,
    }
    missing = [name for name, path in given.items() if not path]
    if missing and len(missing) < len(given):
        raise ConfigError(
            f"TLS needs all of BOB_TLS_CA, BOB_TLS_CERT, BOB_TLS_KEY: {missing} unset"
        )
    for name, path in given.items():
        if path and not os.access(path, os.R_OK):
            raise ConfigError(f"{name}={path!r} is not a readable file")


def address_is_loopback(addr: str) -> bool:
    """Whether host:port (or [v6]:port) names only this machine's loopback interface."""
    return is_loopback(addr.rsplit(":", 1)[0])


@dataclass(frozen=True)
class EntitiesSettings:
    common: CommonSettings
    db_url: str = field(repr=False)
    listen_addr: str
    # Events applied per database transaction at most.
    event_batch_max: int
    # How long a runner's claim on a run lasts without a renewal (RenewLeases, sent every
    # BOB_HEARTBEAT_S): a run whose lease expires is lost, and retried or failed.
    lease_s: float
    # Executions of a run that may be lost (runner gone, job dead-lettered) before it fails.
    max_attempts: int
    # How often entities looks for expired leases and for jobs it still has to queue.
    sweep_s: float
    # Events the cluster's journal (GET /events) keeps at most; older ones are pruned, as
    # are those older than 7 days.
    events_keep: int
    # Fernet keys of the secret store, the one that encrypts first, older ones after it
    # (still read during a rotation); empty: no key, secrets cannot be stored or read.
    secrets_keys: tuple[str, ...] = field(default=(), repr=False)
    # Runner types a pipeline without a list of its own may run on; never "shell", which
    # an admin grants pipeline by pipeline (PUT /pipelines/groups/{g}/names/{n}/runner-types).
    runner_types_allowed: tuple[str, ...] = (runner_types.DEFAULT,)
    # Serve plaintext gRPC on an address other than loopback: anyone who reaches it could
    # then call every rpc as anyone. Off by default; when on, entities says so loudly.
    allow_plaintext: bool = False
    # Bytes of unacked run events held at most: the prefetch is this over
    # BOB_EVENT_MAX_BYTES (and at most events.MAX_PREFETCH).
    events_inflight_max_bytes: int = EVENTS_INFLIGHT_MAX_BYTES
    # --- issue 11 (sched) ---
    # A schedule's tick missed while no entities ran starts on return when it is at most
    # this old (only the most recent missed tick; older ones are skipped); 0: never.
    schedule_catchup_s: float = 300.0
    # Notifications (run ended) are retried with backoff for this long, then dropped.
    notify_give_up_s: float = 24 * 3600.0
    # Longest a notifier may take to answer one delivery, and the longest wait between
    # two deliveries of one notification (the waits double from 1 s up to it).
    notify_timeout_s: float = 10.0
    notify_retry_max_s: float = 60.0
    # Whether entities delivers to notifiers at loopback or private addresses (besides
    # BOB_PLUGIN_ALLOWED_NETWORKS), as BOB_RUNNER_PLUGIN_PRIVATE_ADDRESSES for runners.
    notifier_private_addresses: bool = True

    @property
    def notifier_policy(self) -> AddressPolicy:
        return AddressPolicy.of(
            self.notifier_private_addresses, self.common.plugin_allowed_networks
        )

    # How long a webhook delivery id is remembered (a redelivery within it starts nothing
    # again): GitHub lets a delivery be redelivered for 3 days, forges retry within hours.
    webhook_delivery_keep_s: float = WEBHOOK_DELIVERY_KEEP_S

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> EntitiesSettings:
        common = CommonSettings.from_env(env)
        settings = cls(
            common=common,
            db_url=_get(env, "BOB_DB_URL", "sqlite:///data/bob.db"),
            listen_addr=_get(env, "BOB_ENTITIES_LISTEN", common.entities_addr),
            event_batch_max=_get(env, "BOB_EVENT_BATCH_MAX", 500),
            lease_s=_get(env, "BOB_LEASE_S", 30.0),
            max_attempts=_get(env, "BOB_MAX_ATTEMPTS", 3),
            sweep_s=_get(env, "BOB_SWEEP_S", 5.0),
            events_keep=_get(env, "BOB_EVENTS_KEEP", 100_000),
            secrets_keys=_secrets_keys(env),
            runner_types_allowed=_allowed_by_default(env),
            allow_plaintext=_get(env, "BOB_ENTITIES_ALLOW_PLAINTEXT", False),
            events_inflight_max_bytes=_get(
                env, "BOB_EVENTS_INFLIGHT_MAX_BYTES", EVENTS_INFLIGHT_MAX_BYTES
            ),
            schedule_catchup_s=_get(env, "BOB_SCHEDULE_CATCHUP_S", 300.0),
            notify_give_up_s=_get(env, "BOB_NOTIFY_GIVE_UP_S", 24 * 3600.0),
            notify_timeout_s=_get(env, "BOB_NOTIFY_TIMEOUT_S", 10.0),
            notify_retry_max_s=_get(env, "BOB_NOTIFY_RETRY_MAX_S", 60.0),
            notifier_private_addresses=_get(env, "BOB_NOTIFIER_PRIVATE_ADDRESSES", True),
            webhook_delivery_keep_s=_get(
                env, "BOB_WEBHOOK_DELIVERY_KEEP_S", WEBHOOK_DELIVERY_KEEP_S
            ),
        )
        if settings.schedule_catchup_s < 0:
            raise ConfigError("BOB_SCHEDULE_CATCHUP_S must not be negative")
        if (
            min(settings.notify_give_up_s, settings.notify_timeout_s, settings.notify_retry_max_s)
            <= 0
        ):
            raise ConfigError(
                "BOB_NOTIFY_GIVE_UP_S, BOB_NOTIFY_TIMEOUT_S and BOB_NOTIFY_RETRY_MAX_S "
                "must be positive"
            )
        if settings.webhook_delivery_keep_s <= 0:
            raise ConfigError("BOB_WEBHOOK_DELIVERY_KEEP_S must be positive")
        if settings.events_inflight_max_bytes < common.event_max_bytes:
            raise ConfigError("BOB_EVENTS_INFLIGHT_MAX_BYTES must be at least BOB_EVENT_MAX_BYTES")
        if settings.max_attempts < 1:
            raise ConfigError("BOB_MAX_ATTEMPTS must be at least 1")
        if settings.events_keep < 1:
            raise ConfigError("BOB_EVENTS_KEEP must be at least 1")
        if settings.lease_s <= 0 or settings.sweep_s <= 0:
            raise ConfigError("BOB_LEASE_S and BOB_SWEEP_S must be positive")
        if (
            not common.tls
            and not settings.allow_plaintext
            and not address_is_loopback(settings.listen_addr)
        ):
            raise ConfigError(
                f"refusing to serve plaintext gRPC on {settings.listen_addr}, beyond loopback: "
                "set BOB_TLS_CA, BOB_TLS_CERT and BOB_TLS_KEY (python -m bob_common.pki), or "
                "BOB_ENTITIES_ALLOW_PLAINTEXT=true to let anyone who reaches it call anything"
            )
        return settings


def _allowed_by_default(env: Mapping[str, str]) -> tuple[str, ...]:
    name = "BOB_RUNNER_TYPES_ALLOWED"
    raw = _get(env, name, runner_types.DEFAULT)
    try:
        allowed = runner_types.normalized(t.strip() for t in raw.split(",") if t.strip())
    except ValueError as exc:
        raise ConfigError(f"{name}: {exc}") from None
    if refused := runner_types.NEVER_BY_DEFAULT.intersection(allowed):
        # Refused rather than warned about: a shell runner executes builds on its host, so
        # it is granted pipeline by pipeline, by an admin, never to every pipeline at once.
        raise ConfigError(
            f"{name} must not contain {', '.join(sorted(refused))}: an admin allows it per "
            "pipeline (PUT /pipelines/groups/{group}/names/{name}/runner-types)"
        )
    return allowed


AUTH_TOKENS = "tokens"
AUTH_NONE = "none"
AUTH_MODES = (AUTH_TOKENS, AUTH_NONE)


def is_loopback(host: str) -> bool:
    """Whether binding `host` keeps a server reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


@dataclass(frozen=True)
class ApiSettings:
    common: CommonSettings
    host: str
    port: int
    # Validate every response against openapi.yaml (on in tests; costs time per request).
    validate_responses: bool
    # A followed log (GET /pipelines/logs/runs/{id}?follow=true) of a run that has ended
    # stays open this long without new lines, then closes: Bob keeps it open until the
    # client leaves, which wendy needs, but an abandoned stream must not live for ever.
    follow_idle_s: float
    # How often a followed log looks for new lines while there are none.
    follow_poll_s: float
    # Largest request body; a larger one is refused with 413 before it is read.
    max_body_bytes: int
    # Host names (any port) requests may name in their Host header besides the loopback
    # names and IP addresses (api_server/guard.py); "*" lets any name in.
    allowed_hosts: tuple[str, ...]
    # Browser origins (scheme://host[:port]) besides the API's own that may write.
    allowed_origins: tuple[str, ...]
    # "tokens": every operation needs a token of its role (README: API tokens and roles);
    # "none": a request without one may do anything (a presented token is still checked).
    auth: str = AUTH_TOKENS
    # Lets `none` serve on an address other than loopback, with a loud warning.
    allow_unauthenticated: bool = False
    # Paths (as in openapi.yaml) whose read operations answer without a token.
    open_paths: tuple[str, ...] = ("/can-we-build-it",)
    # How long a verified token is taken on trust without asking entities again: a
    # revocation reaches other API processes within this time. 0 asks every time.
    token_cache_s: float = 10.0
    # Verified tokens remembered at most.
    token_cache_size: int = 1024
    # Items in a page of a list when the client sends no `limit` (issue 10): large, so that
    # Bob's clients, which send none, get what they need in one page.
    page_limit: int = 1000

    @property
    def on_loopback(self) -> bool:
        return is_loopback(self.host)

    @property
    def plugin_policy(self) -> AddressPolicy:
        """Same-machine and private plugins are the normal case only while the API is
        reachable from this machine alone; beyond it, only where the allow-list says."""
        return AddressPolicy.of(self.on_loopback, self.common.plugin_allowed_networks)

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> ApiSettings:
        host = _get(env, "BOB_API_HOST", "127.0.0.1")
        default_auth = AUTH_NONE if is_loopback(host) else AUTH_TOKENS
        open_paths = _get(env, "BOB_API_OPEN_PATHS", "/can-we-build-it")
        settings = cls(
            common=CommonSettings.from_env(env),
            host=host,
            port=_get(env, "BOB_API_PORT", 7777),
            validate_responses=_get(env, "BOB_API_VALIDATE_RESPONSES", False),
            follow_idle_s=_get(env, "BOB_API_FOLLOW_IDLE_S", 300.0),
            follow_poll_s=_get(env, "BOB_API_FOLLOW_POLL_S", 0.25),
            max_body_bytes=_get(env, "BOB_API_MAX_BODY_BYTES", 1 << 20),
            allowed_hosts=_host_names(env, "BOB_API_ALLOWED_HOSTS"),
            allowed_origins=_origins(env, "BOB_API_ALLOWED_ORIGINS"),
            auth=_get(env, "BOB_API_AUTH", default_auth).lower(),
            allow_unauthenticated=_get(env, "BOB_API_ALLOW_UNAUTHENTICATED", False),
            open_paths=tuple(p.strip() for p in open_paths.split(",") if p.strip()),
            token_cache_s=_get(env, "BOB_API_TOKEN_CACHE_S", 10.0),
            token_cache_size=_get(env, "BOB_API_TOKEN_CACHE_SIZE", 1024),
            page_limit=_get(env, "BOB_API_PAGE_LIMIT", 1000),
        )
        if not 1 <= settings.page_limit <= pages.LIST_MAX_ITEMS:
            raise ConfigError(f"BOB_API_PAGE_LIMIT must be between 1 and {pages.LIST_MAX_ITEMS}")
        if settings.max_body_bytes > pages.BODY_MAX_BYTES:
            # A larger pipeline, stored as its definition and its document, would not fit
            # in one gRPC message.
            raise ConfigError(f"BOB_API_MAX_BODY_BYTES must be at most {pages.BODY_MAX_BYTES}")
        if settings.follow_idle_s < 0 or settings.follow_poll_s <= 0:
            raise ConfigError("BOB_API_FOLLOW_IDLE_S must be >= 0 and BOB_API_FOLLOW_POLL_S > 0")
        if settings.max_body_bytes < 1024:
            raise ConfigError("BOB_API_MAX_BODY_BYTES must be at least 1024")
        if settings.auth not in AUTH_MODES:
            raise ConfigError(f"BOB_API_AUTH must be one of {', '.join(AUTH_MODES)}")
        if (
            settings.auth == AUTH_NONE
            and not is_loopback(host)
            and not (settings.allow_unauthenticated)
        ):
            raise ConfigError(
                f"refusing to serve without tokens on {host}, which is not a loopback "
                "address: anyone who reaches it could do anything. Set BOB_API_AUTH=tokens, "
                "or BOB_API_ALLOW_UNAUTHENTICATED=true to accept that risk"
            )
        if settings.token_cache_s < 0 or settings.token_cache_size < 1:
            raise ConfigError(
                "BOB_API_TOKEN_CACHE_S must be >= 0 and BOB_API_TOKEN_CACHE_SIZE at least 1"
            )
        if any(not p.startswith("/") for p in settings.open_paths):
            raise ConfigError("BOB_API_OPEN_PATHS: each path starts with '/'")
        return settings


# Far above the uids of people and system users (and below 2^21, which tar headers hold).
SHELL_UIDS = (900_000, 900_999)


# A build's memory unless its pipeline asks otherwise: what a compiler, a test suite or a
# JVM build commonly needs, while capacity 2 on a small host still leaves it room.
BUILD_MEMORY = 2 << 30
# Processes and threads of one build container: a parallel build or a JVM runs a few
# hundred threads (each counts); a fork bomb stops here instead of at the host's limit.
BUILD_PIDS = 1024
# The capabilities a build keeps; Docker's default set has 14. A build run as root still
# installs packages and unpacks archives (CHOWN, DAC_OVERRIDE, FOWNER, FSETID), drops to
# another user as package managers and `su` do (SETUID, SETGID), and signals its own
# processes of other users, as a stop's `kill -TERM -1` does (KILL). Dropped: MKNOD,
# NET_RAW (spoofing on the bridge; iputils' ping uses ICMP sockets instead),
# NET_BIND_SERVICE (Docker lets any process bind low ports in a container), SETFCAP,
# SETPCAP, SYS_CHROOT, AUDIT_WRITE.
BUILD_CAPS = ("CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID")


def _memory(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "")
    if not raw:
        return default
    try:
        return parse_memory(raw)
    except ValueError as exc:
        raise ConfigError(f"{name}: {exc}") from None


def _cpus(env: Mapping[str, str], name: str) -> float:
    cpus = _get(env, name, 0.0)
    if not math.isfinite(cpus) or cpus < 0:
        raise ConfigError(f"{name}={cpus} must be a number of cores, 0 (all of them) or more")
    return cpus


def _caps(env: Mapping[str, str]) -> tuple[str, ...]:
    caps = tuple(
        c.strip().upper().removeprefix("CAP_")
        for c in _get(env, "BOB_RUNNER_CAPS", ",".join(BUILD_CAPS)).split(",")
        if c.strip()
    )
    if bad := [c for c in caps if not re.fullmatch(r"[A-Z_]+", c) or c == "ALL"]:
        raise ConfigError(f"BOB_RUNNER_CAPS: {bad[0]!r} is not a capability name")
    return caps


def _uid_range(env: Mapping[str, str]) -> tuple[int, int]:
    name = "BOB_SHELL_RUNNER_UIDS"
    raw = _get(env, name, f"{SHELL_UIDS[0]}-{SHELL_UIDS[1]}")
    first, sep, last = raw.partition("-")
    try:
        uids = (int(first), int(last) if sep else int(first))
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a uid range such as 900000-900999") from None
    if not 0 < uids[0] <= uids[1] < 2**31:
        # Never uid 0: a shell runner does not run steps as root.
        raise ConfigError(f"{name}={raw!r}: the uids must be ordered, above 0 and below 2^31")
    return uids


@dataclass(frozen=True)
class RunnerSettings:
    common: CommonSettings
    runner_type: str
    runner_id: str
    capacity: int
    # Working directory of the steps inside the build container.
    workdir: str
    # Docker network mode of build containers. Docker's default bridge, as in Bob: a build
    # may fetch its dependencies. "none" keeps builds off the network (offline builds).
    network: str
    # Log lines per LogBatch event at most, and the longest a line waits before it is sent.
    log_batch_lines: int
    log_flush_s: float
    # How long a graceful shutdown lets running jobs finish before handing them back.
    drain_s: float
    # After a stop's SIGTERM, how long a step may take to exit before it is killed.
    stop_grace_s: float
    # How often the runner tells entities it is alive and which runs it executes.
    heartbeat_s: float
    # Keep one started container ready per image for its next run (docker runners).
    spare_containers: bool
    # The most content a resource archive may unpack to, in bytes.
    archive_max_bytes: int
    # Longest wait for a resource provider or artifact store to connect or send more.
    plugin_timeout_s: float
    # How often the runner looks for build containers whose run is nobody's any more.
    orphan_sweep_s: float
    # Glob patterns of the names of plain vars whose values are masked in logs.
    redacted_vars: tuple[str, ...] = REDACTED_VARS_DEFAULT
    # Shell runners: the uids a run's steps run as, one per run at a time (first, last).
    shell_uids: tuple[int, int] = SHELL_UIDS
    # Docker runners: what a build container may use when its pipeline has no quotas
    # (memory in bytes, cpus in cores, 0: the engine's whole node), the most a pipeline's
    # quotas may ask for (0: the engine's whole node), the processes and threads it may
    # have, and the capabilities it keeps (every other is dropped).
    container_memory: int = BUILD_MEMORY
    container_max_memory: int = 0
    container_cpus: float = 0.0
    container_max_cpus: float = 0.0
    container_pids: int = BUILD_PIDS
    container_caps: tuple[str, ...] = BUILD_CAPS
    # The longest stored log line and the step output a run attempt stores, in UTF-8 bytes.
    log_line_max_bytes: int = LOG_LINE_MAX_BYTES
    run_log_max_bytes: int = RUN_LOG_MAX_BYTES
    # Issue 10 (hangs): the longest a run may take from its first step when its pipeline
    # sets no `timeout` of its own; 0: no limit.
    run_timeout_s: int = 3 * 3600
    # How often the runner asks its engine (Docker) whether it answers; while it does not,
    # the runner takes no jobs.
    engine_check_s: float = 2.0
    # Caps on a resource archive besides its bytes (archive_max_bytes, which counts its
    # whole uncompressed tar stream, headers included): its entries, and the extended
    # (pax, GNU long name) headers before any one entry, in bytes.
    archive_max_entries: int = 100_000
    archive_max_header_bytes: int = 1 << 20
    # The most an artifact's tar stream may hold, in bytes, headers included.
    artifact_max_bytes: int = 1 << 30
    # Issue 10 (SSRF): whether plugins may be at loopback or private addresses (besides
    # BOB_PLUGIN_ALLOWED_NETWORKS). On for a runner beside a loopback-only cluster; off
    # where those who register plugins must not reach the runner host's network.
    plugin_private_addresses: bool = True

    @property
    def plugin_policy(self) -> AddressPolicy:
        return AddressPolicy.of(self.plugin_private_addresses, self.common.plugin_allowed_networks)

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> RunnerSettings:
        runner_type = _get(env, "BOB_RUNNER_TYPE", runner_types.DEFAULT)
        common = CommonSettings.from_env(env)
        default_id = f"{runner_type}-{socket.gethostname()}-{uuid.uuid4().hex[:8]}"
        runner_id = _get(env, "BOB_RUNNER_ID", "")
        if common.tls:
            runner_id = _runner_id_of_certificate(common.tls_cert, runner_id)
        settings = cls(
            common=common,
            runner_type=runner_type,
            runner_id=runner_id or default_id,
            capacity=_get(env, "BOB_RUNNER_CAPACITY", 2),
            workdir=_get(env, "BOB_RUNNER_WORKDIR", "/workspace"),
            network=_get(env, "BOB_RUNNER_NETWORK", "bridge"),
            log_batch_lines=_get(env, "BOB_LOG_BATCH_LINES", 1000),
            log_flush_s=_get(env, "BOB_LOG_FLUSH_S", 0.1),
            drain_s=_get(env, "BOB_RUNNER_DRAIN_S", 30.0),
            stop_grace_s=_get(env, "BOB_RUNNER_STOP_GRACE_S", 10.0),
            heartbeat_s=_get(env, "BOB_HEARTBEAT_S", 5.0),
            spare_containers=_get(env, "BOB_RUNNER_SPARE_CONTAINERS", True),
            archive_max_bytes=_get(env, "BOB_RUNNER_ARCHIVE_MAX_BYTES", 1 << 30),
            plugin_timeout_s=_get(env, "BOB_RUNNER_PLUGIN_TIMEOUT_S", 30.0),
            orphan_sweep_s=_get(env, "BOB_RUNNER_ORPHAN_SWEEP_S", 30.0),
            redacted_vars=_patterns(
                _get(env, "BOB_REDACTED_VARS", ",".join(REDACTED_VARS_DEFAULT))
            ),
            shell_uids=_uid_range(env),
            container_memory=_memory(env, "BOB_RUNNER_MEMORY", BUILD_MEMORY),
            container_max_memory=_memory(env, "BOB_RUNNER_MAX_MEMORY", 0),
            container_cpus=_cpus(env, "BOB_RUNNER_CPUS"),
            container_max_cpus=_cpus(env, "BOB_RUNNER_MAX_CPUS"),
            container_pids=_get(env, "BOB_RUNNER_PIDS", BUILD_PIDS),
            container_caps=_caps(env),
            log_line_max_bytes=_get(env, "BOB_LOG_LINE_MAX_BYTES", LOG_LINE_MAX_BYTES),
            run_log_max_bytes=_get(env, "BOB_RUN_LOG_MAX_BYTES", RUN_LOG_MAX_BYTES),
            run_timeout_s=_get(env, "BOB_RUN_TIMEOUT_S", 3 * 3600),
            engine_check_s=_get(env, "BOB_RUNNER_ENGINE_CHECK_S", 2.0),
            archive_max_entries=_get(env, "BOB_RUNNER_ARCHIVE_MAX_ENTRIES", 100_000),
            archive_max_header_bytes=_get(env, "BOB_RUNNER_ARCHIVE_MAX_HEADER_BYTES", 1 << 20),
            artifact_max_bytes=_get(env, "BOB_RUNNER_ARTIFACT_MAX_BYTES", 1 << 30),
            plugin_private_addresses=_get(env, "BOB_RUNNER_PLUGIN_PRIVATE_ADDRESSES", True),
        )
        if settings.capacity < 1:
            raise ConfigError("BOB_RUNNER_CAPACITY must be at least 1")
        # A line must fit in an event with room to spare (and its cut marker in the line).
        if not 256 <= settings.log_line_max_bytes <= settings.common.event_max_bytes // 4:
            raise ConfigError(
                "BOB_LOG_LINE_MAX_BYTES must be at least 256 and at most a quarter of "
                "BOB_EVENT_MAX_BYTES"
            )
        if settings.run_log_max_bytes < 1:
            raise ConfigError("BOB_RUN_LOG_MAX_BYTES must be at least 1")
        if settings.run_timeout_s < 0:
            raise ConfigError("BOB_RUN_TIMEOUT_S must be 0 (no limit) or more")
        if settings.engine_check_s <= 0:
            raise ConfigError("BOB_RUNNER_ENGINE_CHECK_S must be above 0")
        for name in (
            "BOB_RUNNER_ARCHIVE_MAX_BYTES",
            "BOB_RUNNER_ARCHIVE_MAX_ENTRIES",
            "BOB_RUNNER_ARCHIVE_MAX_HEADER_BYTES",
            "BOB_RUNNER_ARTIFACT_MAX_BYTES",
        ):
            if _get(env, name, 1) < 1:
                raise ConfigError(f"{name} must be at least 1")
        return settings


def _runner_id_of_certificate(cert_path: str, given: str) -> str:
    """The runner id its certificate was issued for: entities takes it as the runner's
    identity, so a runner whose BOB_RUNNER_ID says otherwise would be refused every claim."""
    try:
        with open(cert_path, "rb") as f:
            identity = pki.identity_of(f.read())
    except (ValueError, OSError) as exc:
        raise ConfigError(f"BOB_TLS_CERT={cert_path!r}: {exc}") from None
    if identity.kind != pki.RUNNER:
        raise ConfigError(f"BOB_TLS_CERT={cert_path!r} is {identity}'s, not a runner's")
    if given and given != identity.name:
        raise ConfigError(
            f"BOB_RUNNER_ID={given!r} but BOB_TLS_CERT={cert_path!r} is {identity}'s: "
            "unset BOB_RUNNER_ID or issue a certificate for runner/" + given
        )
    return identity.name


def _items(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """A comma-separated list, its items trimmed and lower-cased, empty ones dropped."""
    return tuple(i.strip().lower() for i in env.get(name, "").split(",") if i.strip())


def _host_names(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """Host names without port (any port is allowed), IPv6 addresses with or without
    brackets, or "*"."""
    names = []
    for item in _items(env, name):
        host = item[1:-1] if item.startswith("[") and item.endswith("]") else item
        if "/" in host or "@" in host or (":" in host and not _is_ipv6(host)):
            raise ConfigError(f"{name}: {item!r} is not a host name (give names without port)")
        names.append(host.rstrip("."))
    return tuple(names)


def _origins(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """Origins as browsers send them: scheme://host[:port], nothing after."""
    origins = []
    for item in _items(env, name):
        parts = urlsplit(item)
        if (
            parts.scheme not in ("http", "https")
            or not parts.hostname
            or parts.path not in ("", "/")
            or parts.query
            or parts.fragment
            or parts.username is not None
        ):
            raise ConfigError(f"{name}: {item!r} is not an origin like https://bob.example:8443")
        try:
            parts.port  # noqa: B018 - raises on a port that is not a number
        except ValueError:
            raise ConfigError(f"{name}: {item!r} has an invalid port") from None
        origins.append(item.rstrip("/"))
    return tuple(origins)


def _is_ipv6(text: str) -> bool:
    try:
        return isinstance(ipaddress.ip_address(text), ipaddress.IPv6Address)
    except ValueError:
        return False


def _patterns(text: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in text.split(",") if p.strip())


def _secrets_keys(env: Mapping[str, str]) -> tuple[str, ...]:
    """The secret store's keys from BOB_SECRETS_KEY (comma-separated) or the file named by
    BOB_SECRETS_KEY_FILE (one a line, `#` comments), the encrypting key first. A file
    that others may read is refused, as ssh refuses such a private key."""
    given, path = env.get("BOB_SECRETS_KEY", ""), env.get("BOB_SECRETS_KEY_FILE", "")
    if given and path:
        raise ConfigError("set BOB_SECRETS_KEY or BOB_SECRETS_KEY_FILE, not both")
    if path:
        try:
            mode = os.stat(path).st_mode
            with open(path, encoding="ascii") as file:
                text = file.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"BOB_SECRETS_KEY_FILE={path!r} cannot be read: {exc}") from None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigError(
                f"BOB_SECRETS_KEY_FILE={path!r} is open to others (mode "
                f"{stat.S_IMODE(mode):04o}); make it readable by its owner only (chmod 600)"
            )
        lines = (line.split("#", 1)[0].strip() for line in text.splitlines())
        keys = tuple(line for line in lines if line)
        where = "BOB_SECRETS_KEY_FILE"
        if not keys:
            raise ConfigError(f"BOB_SECRETS_KEY_FILE={path!r} holds no key")
    else:
        keys = tuple(k.strip() for k in given.split(",") if k.strip())
        where = "BOB_SECRETS_KEY"
    for number, key in enumerate(keys, start=1):
        if not is_fernet_key(key):
            # The key itself stays out of the message.
            raise ConfigError(
                f"{where}: key {number} is not a Fernet key (32 bytes in url-safe base64, "
                "as `python -c 'from cryptography.fernet import Fernet; "
                "print(Fernet.generate_key().decode())'` makes)"
            )
    return keys


def is_fernet_key(key: str) -> bool:
    try:
        return len(base64.urlsafe_b64decode(key.encode("ascii"))) == 32
    except (binascii.Error, UnicodeEncodeError, ValueError):
        return False


# The reference plugins (bob_plugins) trust whoever calls them, so they serve this machine
# only unless told otherwise: a deploy binds them to the inventory's address, where the
# API and runner hosts reach them.
PLUGIN_HOST = "127.0.0.1"


def plugin_host(env: Mapping[str, str] = os.environ) -> str:
    """BOB_PLUGIN_HOST: the address the reference plugins bind (an IP address or a name)."""
    host = _get(env, "BOB_PLUGIN_HOST", PLUGIN_HOST).strip()
    if not re.fullmatch(r"[A-Za-z0-9.:_-]{1,253}", host):
        raise ConfigError(f"BOB_PLUGIN_HOST={host!r} is not an address or host name")
    return host
