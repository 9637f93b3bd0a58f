"""The end of `make deploy`: the cluster answers, and builds on every runner host.

`/can-we-build-it` must answer 200; then a pipeline per runner type (`bob-deploy/check-
<type>`, one step printing the host name) is started until every runner host has passed
one run, each run's detail naming the runner that ran it, bounded in runs and time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from deploy.inventory import Cluster

GROUP = "bob-deploy"
# Runs started per runner host at most, and the time the check may take.
RUNS_PER_RUNNER = 8
DEADLINE_S = 300.0
ENDED = {"passed", "failed", "stopped"}


class CheckFailed(RuntimeError):
    """The cluster is not healthy, or a runner host passed no run in time."""


def _wait(what: str, probe: Callable[[], Any], deadline: float) -> Any:
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = probe()
        except httpx.HTTPError as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(1.0)
    raise CheckFailed(f"{what}: not within the time ({last!r})")


def run(cluster: Cluster, secrets_dir: Path, *, out: Callable[[str], None] = print) -> None:
    token = (secrets_dir / "admin-token").read_text().strip()
    base = f"http://{cluster.address('api')}:{cluster.api_port}"
    deadline = time.monotonic() + DEADLINE_S
    with httpx.Client(
        base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=10.0, trust_env=False
    ) as api:
        _register_plugins(api, cluster, out)

        def healthy() -> str | None:
            answer = api.get("/can-we-build-it")
            return str(answer.json()["message"]) if answer.status_code == 200 else None

        out(f"deploy check: /can-we-build-it: {_wait('/can-we-build-it', healthy, deadline)}")
        ran = _build_everywhere(api, cluster, deadline, out)
    out(
        "deploy check: every runner host passed a run: "
        + ", ".join(f"{host}={runner}" for host, runner in sorted(ran.items()))
    )


def _register_plugins(api: httpx.Client, cluster: Cluster, out: Callable[[str], None]) -> None:
    """The reference plugins of the plugins host, registered as make run's are: git
    provider `git`, artifact store `local`, logger `local`, notifier `local`
    (re-registering is a no-op)."""
    if not cluster.hosts("plugins"):
        return
    address = cluster.address("plugins")
    git, store, logger, notifier = cluster.plugin_ports
    for path, name, port in (
        ("/resource-providers", "git", git),
        ("/artifact-stores", "local", store),
        ("/loggers", "local", logger),
        ("/notifiers", "local", notifier),
    ):
        url = f"http://{address}:{port}"
        answer = api.post(path, json={"name": name, "url": url})
        if answer.status_code >= 300:
            raise CheckFailed(f"registering {path}/{name} at {url}: {answer.text}")
        out(f"deploy check: registered {path[1:]} {name} at {url}")


def _pipeline(api: httpx.Client, kind: str, image: str) -> str:
    name = f"check-{kind}"
    body = {
        "group": GROUP,
        "name": name,
        "image": image,
        "steps": [{"cmd": "echo deploy check on $(hostname)"}],
    }
    answer = api.post("/pipelines", json=body)
    if answer.status_code >= 300:
        raise CheckFailed(f"creating pipeline {GROUP}/{name}: {answer.status_code} {answer.text}")
    if kind != "docker":  # shell runners are allowed pipeline by pipeline only
        answer = api.put(f"/pipelines/groups/{GROUP}/names/{name}/runner-types", json=[kind])
        if answer.status_code >= 300:
            raise CheckFailed(f"allowing {kind} for {GROUP}/{name}: {answer.text}")
    return name


def _build_everywhere(
    api: httpx.Client, cluster: Cluster, deadline: float, out: Callable[[str], None]
) -> dict[str, str]:
    """Host -> the runner id that passed a run there."""
    runners = cluster.runners
    host_of = {r.runner_id: r.host for r in runners}
    wanted = {r.host for r in runners}
    ran: dict[str, str] = {}
    started = 0
    for kind in sorted({r.runner_type for r in runners}):
        name = _pipeline(api, kind, cluster.check_image)
        hosts = {r.host for r in runners if r.runner_type == kind}
        while hosts - set(ran):
            if started >= RUNS_PER_RUNNER * len(runners) or time.monotonic() > deadline:
                raise CheckFailed(
                    f"no run passed on {', '.join(sorted(hosts - set(ran)))} after {started} runs"
                )
            # As many runs at once as hosts still to cover: the queue spreads them.
            batch = []
            for _ in hosts - set(ran):
                answer = api.post(
                    f"/pipelines/start/groups/{GROUP}/names/{name}", json={"runner/type": kind}
                )
                if answer.status_code >= 300:
                    raise CheckFailed(
                        f"starting {GROUP}/{name}: {answer.status_code} {answer.text}"
                    )
                batch.append(answer.json()["message"])
                started += 1
            for run_id in batch:
                detail = _wait(
                    f"run {run_id}", lambda r=run_id, n=name: _ended(api, n, r), deadline
                )
                runner = detail.get("runner-id", "")
                out(f"deploy check: run {run_id} {detail['status']} on runner {runner}")
                if detail["status"] != "passed":
                    raise CheckFailed(f"run {run_id} on {runner} {detail['status']}")
                if runner in host_of:
                    ran.setdefault(host_of[runner], runner)
    missing = wanted - set(ran)
    if missing:
        raise CheckFailed(f"no run passed on {', '.join(sorted(missing))}")
    return ran


def _ended(api: httpx.Client, name: str, run_id: str) -> dict[str, Any] | None:
    answer = api.get(f"/pipelines/groups/{GROUP}/names/{name}/runs/{run_id}")
    if answer.status_code != 200:
        return None
    detail: dict[str, Any] = answer.json()["message"]
    return detail if detail.get("status") in ENDED else None
