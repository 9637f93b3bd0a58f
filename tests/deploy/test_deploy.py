"""`make deploy` for real: three test hosts (network namespaces with their own sshd,
tests/deploy/hosts.py) — one for broker, database, entities, api and plugins, two runner
hosts — deployed once over SSH by the operator's command, then driven over the deployed
API as a user would, with faults in between: a runner host cut off the network, the
broker restarted, a redeploy with nothing changed and one with a new version.

The scenarios run in order on the one cluster (a module-scoped fixture deploys it); each
prints its counts as `deploy[<scenario>]: ...`, repeated in the terminal summary."""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import re
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from runner_svc.executors.docker.executor import LABEL_RUNNER
from tests.conftest import _unavailable
from tests.deploy.hosts import TestHosts
from tests.support.containers import left_after, remove_quietly
from tests.waiting import wait_until

pytestmark = [pytest.mark.deploy, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[2]
IMAGE = "bob-test/busybox:latest"
GROUP = "deploy"
CORE = "tcore"
RUNNERS = ("trun1", "trun2")
TERMINAL = {"passed", "failed", "stopped"}
# Short leases so a cut-off runner host is noticed in seconds; every wait below is on a
# condition with a generous deadline.
LEASE_S = 8
SERVICE_ENV = {
    "BOB_LEASE_S": str(LEASE_S),
    "BOB_SWEEP_S": "1",
    "BOB_HEARTBEAT_S": "1",
    "BOB_RUNNER_ORPHAN_SWEEP_S": "2",
    "BOB_RUNNER_STOP_GRACE_S": "2",
}
DEPLOY_TIMEOUT_S = 600
# The operator's restart of RabbitMQ on the broker host, under the supervisor switch.
RESTART_BROKER = "supervisorctl -c /etc/bob/supervisor/supervisord.conf restart rabbitmq-server"
DRAIN_LINE = "taking no new jobs, draining"
START_LINE = re.compile(r"runner \S+ \(type \w+, capacity \d+\) starting")
LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")


def show(scenario: str, **counts: object) -> str:
    line = f"deploy[{scenario}]: " + " ".join(f"{k}={v}" for k, v in counts.items())
    print(f"\n{line}", flush=True)
    return line


@dataclass
class DeployResult:
    returncode: int
    output: str
    seconds: float

    def recap(self) -> dict[str, int]:
        """Host -> `changed=` of ansible-playbook's PLAY RECAP (the test hosts only, not
        the controller's own `localhost`)."""
        recap = self.output.rsplit("PLAY RECAP", 1)[-1]
        return {
            m.group(1): int(m.group(2))
            for m in re.finditer(r"^(\S+)\s+:\s+ok=\d+\s+changed=(\d+)", recap, re.M)
            if m.group(1) != "localhost"
        }

    def tail(self, lines: int = 80) -> str:
        return "\n".join(self.output.splitlines()[-lines:])


@dataclass
class Cluster:
    hosts: TestHosts
    inventory: Path
    secrets: Path
    logs: Path
    http: httpx.Client
    runner_ids: dict[str, str] = field(default_factory=dict)  # host -> runner id
    deploys: int = 0

    def deploy(self, *make_vars: str) -> DeployResult:
        """`make deploy INVENTORY=...`, as an operator runs it."""
        self.deploys += 1
        log = self.logs / f"deploy-{self.deploys}.log"
        env = {**os.environ, "BOB_DEPLOY_SECRETS": str(self.secrets)}
        started = time.monotonic()
        command = ["make", "--no-print-directory", "deploy", f"INVENTORY={self.inventory}"]
        proc = subprocess.Popen(
            [*command, *make_vars],
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        )
        assert proc.stdout is not None
        lines: list[str] = []
        # Each line with its time into the deploy, in the log kept for a reader.
        with open(log, "w") as out, contextlib.closing(proc.stdout):
            timer = threading.Timer(DEPLOY_TIMEOUT_S, proc.kill)
            timer.start()
            try:
                for line in proc.stdout:
                    lines.append(line)
                    out.write(f"[{time.monotonic() - started:7.1f}s] {line}")
            finally:
                timer.cancel()
        returncode = proc.wait()
        text = "".join(lines)
        return DeployResult(returncode, text, time.monotonic() - started)

    # ---- the API, as a user
    def create_pipeline(self, name: str, *cmds: str) -> None:
        body = {"image": IMAGE, "steps": [{"cmd": c} for c in cmds]}
        r = self.http.post(f"/pipelines/groups/{GROUP}/names/{name}", json=body)
        assert r.status_code == 202, r.text

    def start(self, name: str) -> str:
        r = self.http.post(f"/pipelines/start/groups/{GROUP}/names/{name}")
        assert r.status_code == 202, r.text
        return r.json()["message"]

    def detail(self, name: str, run_id: str) -> dict | None:
        try:
            r = self.http.get(f"/pipelines/groups/{GROUP}/names/{name}/runs/{run_id}")
        except httpx.HTTPError:
            return None
        return r.json()["message"] if r.status_code == 200 else None

    def details(self, name: str, run_ids: list[str]) -> dict[str, dict | None]:
        return {run_id: self.detail(name, run_id) for run_id in run_ids}

    def settle(self, name: str, run_ids: list[str], timeout: float) -> dict[str, dict]:
        """Waits until every run has ended (or the time is up); their last details."""
        pending = set(run_ids)
        last: dict[str, dict] = {}
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            for run_id in sorted(pending):
                d = self.detail(name, run_id)
                if d is not None:
                    last[run_id] = d
                    if d["status"] in TERMINAL:
                        pending.discard(run_id)
            if pending:
                time.sleep(1)
        return last

    def log_lines(self, run_id: str) -> list[str]:
        r = self.http.get(f"/pipelines/logs/runs/{run_id}/offset/0/lines/10000")
        assert r.status_code == 200, r.text
        return r.json()["message"]

    def output_of(self, run_id: str) -> list[str]:
        return [line for line in self.log_lines(run_id) if not line.startswith("[bob]")]

    def nodes(self) -> dict[str, dict]:
        try:
            r = self.http.get("/cluster/info")
        except httpx.HTTPError:
            return {}
        return r.json()["message"] if r.status_code == 200 else {}

    def journal(self) -> list[dict]:
        """The cluster's events kept so far (the stream is read until it idles)."""
        events: list[dict] = []
        timeout = httpx.Timeout(30, read=3)
        with contextlib.suppress(httpx.ReadTimeout):
            with self.http.stream("GET", "/events", timeout=timeout) as r:
                assert r.status_code == 200, r.read()
                for line in r.iter_lines():
                    if line.startswith("data: "):
                        events.append(json.loads(line[len("data: ") :]))
        return events

    def runner_log(self, host: str) -> list[str]:
        """The runner's log lines on a host, wherever the service manager keeps them."""
        done = self.hosts.run(
            host,
            "grep -rh -e 'starting' -e 'draining' /var/log/bob /var/log/supervisor 2>/dev/null",
            check=False,
        )
        return done.stdout.splitlines()

    def service_logs(self, lines: int = 30) -> str:
        """The tail of every Bob service's log on every host, for a failure's message."""
        out = []
        for host in self.hosts:
            done = self.hosts.run(
                host.name, f"tail -n {lines} /var/log/bob/*.log 2>&1", check=False, timeout=30
            )
            out.append(f"===== {host.name}\n{done.stdout}")
        return "\n".join(out)

    def runner_pids(self, host: str) -> set[int]:
        found = set()
        for pid in self.hosts.pids(host):
            with contextlib.suppress(OSError):
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
                if b"runner_svc" in cmdline:
                    found.add(pid)
        return found


def completions(events: list[dict]) -> Counter[str]:
    """Run id -> how many times the journal says it passed."""
    done: Counter[str] = Counter()
    for event in events:
        if event.get("reason") == "PipelineSuccessful":
            found = re.search(r"\brun (r-[0-9a-f-]+)", event.get("message", ""))
            if found:
                done[found.group(1)] += 1
    return done


def _inventory(hosts: TestHosts) -> str:
    ssh_args = f"-o UserKnownHostsFile={hosts.known_hosts} -o StrictHostKeyChecking=yes"
    runner = {"bob_runner_type": "docker", "bob_runner_capacity": 2, "bob_runner_drain_s": 20}
    inventory = {
        "all": {
            "vars": {
                "ansible_user": "root",
                "ansible_ssh_private_key_file": str(hosts.key),
                "ansible_ssh_common_args": ssh_args,
                "ansible_python_interpreter": "/usr/bin/python3",
                # No systemd as PID 1 on the test hosts, and one Docker engine, the machine's.
                "bob_service_manager": "supervisor",
                "bob_manage_docker": False,
                # The hosts reach no registry: the deploy's check runs the local test image.
                "bob_check_image": IMAGE,
                "bob_extra_env": SERVICE_ENV,
            },
            "hosts": {
                CORE: {"ansible_host": hosts[CORE].address},
                **{name: {"ansible_host": hosts[name].address, **runner} for name in RUNNERS},
            },
            "children": {
                **{
                    role: {"hosts": {CORE: {}}}
                    for role in ("broker", "database", "entities", "api", "plugins")
                },
                "runner": {"hosts": {name: {} for name in RUNNERS}},
            },
        }
    }
    # JSON is YAML: no YAML writer needed.
    return json.dumps(inventory, indent=2)


def _remove_runner_containers(docker_client, runner_ids: list[str]) -> int:
    containers = [
        c
        for runner_id in runner_ids
        for c in docker_client.containers.list(
            all=True, sparse=True, filters={"label": f"{LABEL_RUNNER}={runner_id}"}
        )
    ]
    remove_quietly(containers)
    return len(containers)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, docker_client) -> Iterator[Cluster]:
    if os.geteuid() != 0:
        _unavailable("the deploy test needs root (its hosts are network namespaces)")
    tmp = tmp_path_factory.mktemp("deploy")
    with TestHosts([CORE, *RUNNERS]) as hosts:
        inventory = tmp / "test-hosts.yml"
        inventory.write_text(_inventory(hosts))
        secrets = tmp / "secrets"
        http = httpx.Client(base_url=f"http://{hosts[CORE].address}:7777", timeout=30)
        c = Cluster(hosts, inventory, secrets, tmp, http)
        try:
            first = c.deploy()
            show("first-deploy", seconds=round(first.seconds), returncode=first.returncode)
            assert first.returncode == 0, f"make deploy failed:\n{first.tail()}\n{c.service_logs()}"
            token = (secrets / "admin-token").read_text().strip()
            http.headers["Authorization"] = f"Bearer {token}"
            by_hostname = {hosts[name].hostname: name for name in RUNNERS}

            def runner_of_each_host() -> dict[str, str] | None:
                found = {
                    by_hostname[n["hostname"]]: rid
                    for rid, n in c.nodes().items()
                    if n.get("hostname") in by_hostname
                }
                return found if set(found) == set(RUNNERS) else None

            nodes = wait_until(
                runner_of_each_host, timeout=120, interval=1, what="both runner hosts' runners"
            )
            c.runner_ids = nodes
            yield c
        finally:
            http.close()
            # Containers the runners made on the machine's engine outlive the hosts.
            _remove_runner_containers(docker_client, list(c.runner_ids.values()))


def _on_host(cluster: Cluster, detail: dict | None) -> str | None:
    if not detail:
        return None
    return next((h for h, rid in cluster.runner_ids.items() if rid == detail["runner-id"]), None)


def test_fifty_runs_spread_over_both_runner_hosts_and_pass(cluster: Cluster) -> None:
    name = "spread"
    cluster.create_pipeline(name, "sleep 1; echo done")
    started = time.monotonic()
    run_ids = [cluster.start(name) for _ in range(50)]
    final = cluster.settle(name, run_ids, timeout=400)
    seconds = time.monotonic() - started
    statuses = Counter(d["status"] for d in final.values())
    per_host = Counter(_on_host(cluster, d) for d in final.values())
    line = show(
        "spread",
        runs=len(run_ids),
        passed=statuses["passed"],
        not_passed=len(run_ids) - statuses["passed"],
        **{h: per_host[h] for h in RUNNERS},
        seconds=round(seconds, 1),
    )
    assert statuses["passed"] == len(run_ids), f"{line}\n{statuses}"
    assert all(per_host[h] > 0 for h in RUNNERS), line

    # And the plugins host's notifier, which the deploy's check registered, hears of each
    def notified() -> set[str] | None:
        url = f"http://{cluster.hosts[CORE].address}:8004/bob_notification"
        seen = {n["run_id"] for n in httpx.get(url, timeout=10).json()["message"]}
        return seen if seen >= set(run_ids) else None

    seen = wait_until(notified, timeout=120, interval=1, what="the notifier to hear of each run")
    show("notified", runs=len(run_ids), notified=len(seen & set(run_ids)))


def test_a_runner_host_cut_off_has_its_runs_retried_on_the_other_and_its_stale_work_abandoned(
    cluster: Cluster, docker_client
) -> None:
    name = "cut"
    victim_host, survivor_host = RUNNERS
    cluster.create_pipeline(name, "echo begin; sleep 12; echo end")
    run_ids = [cluster.start(name) for _ in range(6)]

    # Given runs in the middle of their step on the victim host
    def running_on_victim() -> dict[str, dict] | None:
        found = {
            run_id: d
            for run_id, d in cluster.details(name, run_ids).items()
            if d and d["status"] == "running" and _on_host(cluster, d) == victim_host
        }
        if found and all("begin" in cluster.output_of(run_id) for run_id in found):
            return found
        return None

    victims = wait_until(
        running_on_victim, timeout=180, interval=0.5, what="runs begun on the victim host"
    )

    # When the victim host is cut off the network
    with cluster.hosts.partitioned(victim_host):
        cut_at = time.monotonic()

        # Then its runs are retried on the other host once their lease has expired
        def moved() -> dict[str, dict] | None:
            now = cluster.details(name, list(victims))
            if all(d and d["attempt"] > victims[r]["attempt"] for r, d in now.items()):
                return {r: d for r, d in now.items() if d}
            return None

        wait_until(moved, timeout=LEASE_S + 120, interval=0.5, what="the victims retried")
        retried_after_s = time.monotonic() - cut_at
        final = cluster.settle(name, run_ids, timeout=300)
        cut_s = time.monotonic() - cut_at

    # And once it is back, its stale work is abandoned: it rejoins, no run completes twice,
    # none of the victims' containers is left
    victim_id = cluster.runner_ids[victim_host]

    def victim_seen_again() -> bool:
        node = cluster.nodes().get(victim_id)
        return bool(node) and time.time() * 1000 - _epoch_ms(node["last-seen"]) < 5000

    wait_until(victim_seen_again, timeout=120, interval=1, what="the victim runner back")
    leftovers = {run_id: left_after(docker_client, run_id, timeout=60) for run_id in victims}
    passed_count = completions(cluster.journal())
    ends = {run_id: cluster.output_of(run_id).count("end") for run_id in run_ids}
    statuses = Counter(d["status"] for d in final.values())
    line = show(
        "cut-runner-host",
        runs=len(run_ids),
        passed=statuses["passed"],
        on_cut_host=len(victims),
        retried_on_other=sum(_on_host(cluster, final[r]) == survivor_host for r in victims),
        retried_after_s=round(retried_after_s, 1),
        lease_s=LEASE_S,
        cut_s=round(cut_s, 1),
        completed_twice=sum(passed_count[r] > 1 or ends[r] > 1 for r in run_ids),
        leftover_containers=sum(len(c) for c in leftovers.values()),
    )
    assert statuses["passed"] == len(run_ids), f"{line}\n{final}"
    for run_id, before in victims.items():
        after = final[run_id]
        assert after["attempt"] == before["attempt"] + 1, (line, before, after)
        assert _on_host(cluster, after) == survivor_host, (line, after)
    for run_id in run_ids:
        assert passed_count[run_id] == 1, f"{line}: run {run_id} passed {passed_count[run_id]}x"
        assert ends[run_id] == 1, f"{line}: {run_id} printed end {ends[run_id]}x"
    assert all(not c for c in leftovers.values()), f"{line}: {leftovers}"


def test_the_broker_restarted_with_runs_queued_loses_none(cluster: Cluster) -> None:
    name = "broker"
    cluster.create_pipeline(name, "sleep 2; echo done")
    run_ids = [cluster.start(name) for _ in range(20)]
    # Capacity is 4 over both hosts: most of them are still queued now.
    restarted = cluster.hosts.ssh(CORE, RESTART_BROKER, check=False, timeout=180)
    assert restarted.returncode == 0, restarted.stdout + restarted.stderr
    final = cluster.settle(name, run_ids, timeout=400)
    statuses = Counter(d["status"] for d in final.values())
    passed_count = completions(cluster.journal())
    line = show(
        "broker-restart",
        runs=len(run_ids),
        passed=statuses["passed"],
        lost=len(run_ids) - sum(statuses[s] for s in TERMINAL),
        retried=sum(d["attempt"] > 1 for d in final.values()),
        completed_twice=sum(passed_count[r] > 1 for r in run_ids),
    )
    assert statuses["passed"] == len(run_ids), f"{line}\n{final}"
    assert all(passed_count[r] == 1 for r in run_ids), line


def test_a_redeploy_with_nothing_changed_reports_no_change(cluster: Cluster) -> None:
    again = cluster.deploy()
    recap = again.recap()
    line = show(
        "redeploy-unchanged",
        seconds=round(again.seconds),
        returncode=again.returncode,
        changed=",".join(f"{h}:{n}" for h, n in sorted(recap.items())),
    )
    assert again.returncode == 0, f"{line}\n{again.tail()}\n{cluster.service_logs()}"
    assert set(recap) == {CORE, *RUNNERS}, f"{line}\n{again.tail()}"
    assert all(n == 0 for n in recap.values()), f"{line}\n{again.output}"


def test_a_new_version_rolls_the_runner_hosts_one_at_a_time_and_loses_no_run(
    cluster: Cluster,
) -> None:
    name = "upgrade"
    base = importlib.metadata.version("bob-py").split("+")[0]
    version = f"{base}+deploytest{int(time.time())}"
    cluster.create_pipeline(name, "sleep 4; echo done")
    old_pids = {h: cluster.runner_pids(h) for h in RUNNERS}
    assert all(old_pids.values()), old_pids

    # Runs keep being started while the deploy goes on, so some are in flight on each
    # runner host when it is rolled; the runner processes are watched meanwhile.
    run_ids: list[str] = []
    refused: list[str] = []
    seen: dict[str, list[tuple[float, set[int]]]] = {h: [] for h in RUNNERS}
    done = threading.Event()

    def keep_starting() -> None:
        while not done.is_set() and len(run_ids) < 150:
            try:
                r = cluster.http.post(f"/pipelines/start/groups/{GROUP}/names/{name}")
                (run_ids if r.status_code == 202 else refused).append(
                    r.json()["message"] if r.status_code == 202 else str(r.status_code)
                )
            except httpx.HTTPError as exc:
                refused.append(type(exc).__name__)
            done.wait(2)

    def watch_runners() -> None:
        while not done.is_set():
            for h in RUNNERS:
                seen[h].append((time.time(), cluster.runner_pids(h)))
            done.wait(0.5)

    threads = [threading.Thread(target=f, daemon=True) for f in (keep_starting, watch_runners)]
    for t in threads:
        t.start()
    deploy_from = time.time()
    try:
        upgrade = cluster.deploy(f"BOB_VERSION={version}")
    finally:
        done.set()
        for t in threads:
            t.join(timeout=30)
    assert upgrade.returncode == 0, (
        f"make deploy BOB_VERSION={version} failed:\n{upgrade.tail()}\n{cluster.service_logs()}"
    )

    final = cluster.settle(name, run_ids, timeout=400)
    statuses = Counter(d["status"] for d in final.values())
    new_pids = {h: cluster.runner_pids(h) for h in RUNNERS}
    versions = {h: _runner_version(cluster, h, new_pids[h]) for h in RUNNERS}
    windows = {h: _replaced_window(cluster.runner_log(h), deploy_from) for h in RUNNERS}
    order = sorted(RUNNERS, key=lambda h: windows[h][0] if windows[h] else 0)
    first, second = order
    one_at_a_time = bool(
        windows[first] and windows[second] and windows[first][1] <= windows[second][0]
    )
    line = show(
        "upgrade",
        seconds=round(upgrade.seconds),
        runs=len(run_ids),
        refused=len(refused),
        passed=statuses["passed"],
        lost=len(run_ids) - sum(statuses[s] for s in TERMINAL),
        handed_back=sum(d["attempt"] > 1 for d in final.values()),
        rolled=" then ".join(order),
        one_at_a_time=one_at_a_time,
        **{f"{h}_down_s": _width(windows[h]) for h in RUNNERS},
    )
    assert statuses["passed"] == len(run_ids), f"{line}\n{final}"
    for h in RUNNERS:
        assert new_pids[h] and not new_pids[h] & old_pids[h], (line, h, old_pids, new_pids)
        assert versions[h] == version, (line, versions)
        assert windows[h], f"{line}: no drain and restart of the runner on {h} in its log"
    assert one_at_a_time, f"{line}: {windows}"
    # The watch agrees: the second host's old runner still ran when the first's new one did.
    first_new = min((t for t, pids in seen[first] if pids - old_pids[first]), default=None)
    second_old_last = max((t for t, pids in seen[second] if pids & old_pids[second]), default=0)
    assert first_new is not None and first_new <= second_old_last, (line, seen)


def _replaced_window(lines: list[str], since: float) -> tuple[float, float] | None:
    """(when the runner began to drain, when the next one started), both after `since`."""
    drained = started = None
    for line in lines:
        stamp = LOG_TIME.match(line)
        if not stamp:
            continue
        at = datetime.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
        if at < since - 1:
            continue
        if DRAIN_LINE in line and drained is None:
            drained = at
        elif START_LINE.search(line) and drained is not None and started is None:
            started = at
    return (drained, started) if drained is not None and started is not None else None


def _width(window: tuple[float, float] | None) -> float | str:
    return round(window[1] - window[0], 1) if window else "?"


def _runner_version(cluster: Cluster, host: str, pids: set[int]) -> str:
    """The bob-py version the host's running runner imports: its own interpreter (argv[0],
    the virtualenv's python; /proc/PID/exe would name the system python it links to)."""
    for pid in pids:
        with contextlib.suppress(OSError, IndexError):
            python = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
            done = cluster.hosts.run(
                host,
                f"{python} -c 'import importlib.metadata as m; print(m.version(\"bob-py\"))'",
                check=False,
            )
            if done.returncode == 0:
                return done.stdout.strip()
    return "?"


def _epoch_ms(value: object) -> float:
    if isinstance(value, int | float):
        return float(value)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp() * 1000
