"""Finding a run's build containers, as the runner marks them."""

from __future__ import annotations

from runner_svc.executors.docker.executor import LABEL_RUN
from runner_svc.executors.docker.spares import run_container_name
from tests.waiting import wait_until


def run_containers(docker_client, run_id: str) -> list:
    """Every container of the run, whichever attempt: one started for it carries its label,
    a spare it took is named after it (docker_spares.py). Sparse (labels, names and state
    only): inspecting each would fail on one removed meanwhile."""
    labelled = docker_client.containers.list(
        all=True, sparse=True, filters={"label": f"{LABEL_RUN}={run_id}"}
    )
    prefix = run_container_name(run_id, 0)[: -len("0")]
    named = docker_client.containers.list(all=True, sparse=True, filters={"name": f"^/{prefix}"})
    return list({c.id: c for c in [*labelled, *named]}.values())


def remove_quietly(containers) -> None:
    """Removes what a test made, whether or not the code under test removed it already."""
    for container in containers:
        try:
            container.remove(force=True)
        except Exception:  # noqa: BLE001 - gone already, as the sweep should have done
            pass


def left_after(docker_client, run_id: str, timeout: float) -> list:
    """The run's containers still there once they have had `timeout` seconds to go: a
    figure to report, so the wait ending without them gone is not itself a failure."""
    try:
        wait_until(
            lambda: not run_containers(docker_client, run_id),
            timeout=timeout,
            what="the run's containers to be removed",
        )
    except AssertionError:
        pass
    return run_containers(docker_client, run_id)
