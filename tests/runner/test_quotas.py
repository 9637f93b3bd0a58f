"""Bob's quotas: a pipeline's limits.cpu, limits.mem and requests.mem become its container's
limits (taken spare or started for it), a build over its memory limit fails saying so, and
the shell runner, which has no container, says it does not apply them."""

from __future__ import annotations

import asyncio

import pytest

from bob_pb import messages_pb2, pipeline_pb2
from runner_svc import spec as specs
from runner_svc.executors.docker.executor import LABEL_SPARE
from runner_svc.executors.docker.limits import MIN_NANO_CPUS, host_config
from tests.runner.harness import containers_of, make_job, world

OUT = messages_pb2.STDOUT
# Allocates and fills a 64 MiB buffer, in one process.
GREEDY = "dd if=/dev/zero of=/dev/null bs=64M count=1 2>/dev/null"


def _quotas(cpu: float = 0.0, mem: str = "", request: str = "") -> pipeline_pb2.Quotas:
    return pipeline_pb2.Quotas(
        limits=pipeline_pb2.QuotaLimits(cpu=cpu, mem=mem),
        requests=pipeline_pb2.QuotaRequests(mem=request),
    )


def _job(image: str, steps: list[str], quotas: pipeline_pb2.Quotas | None = None, **kw):
    job = make_job(image, steps, **kw)
    if quotas is not None:
        job.pipeline.quotas.CopyFrom(quotas)
    return job


# --- what the quotas mean -------------------------------------------------------------


def test_quotas_read_as_limits_and_no_quotas_as_none():
    assert specs.limits(specs.Quotas()) == specs.NO_LIMITS
    assert not specs.NO_LIMITS
    assert specs.limits(specs.Quotas(cpu=0.7, mem="512Mi", mem_request="256M")) == (
        # "256M" is "256Mi", as in Bob
        specs.Limits(cpu=0.7, mem_bytes=512 << 20, mem_request_bytes=256 << 20)
    )
    # More than all the cores is all of them.
    assert specs.limits(specs.Quotas(cpu=3)).cpu == 1.0


@pytest.mark.parametrize(
    ("quotas", "reason"),
    [
        (
            specs.Quotas(cpu=-0.5),
            "quotas.limits.cpu -0.5 must be a fraction of the node's cores, 0 (no limit) or more",
        ),
        (
            specs.Quotas(cpu=float("nan")),
            "quotas.limits.cpu nan must be a fraction of the node's cores, 0 (no limit) or more",
        ),
        (
            specs.Quotas(mem="lots"),
            "quotas.limits.mem: 'lots' is not a memory quantity: "
            "digits with a suffix K, M, G, T, P or E (with or "
            "without i; powers of 1024), e.g. '512Mi'",
        ),
        (
            specs.Quotas(mem_request="1.5Gi"),
            "quotas.requests.mem: '1.5Gi' is not a memory "
            "quantity: digits with a suffix K, M, G, T, P or "
            "E (with or without i; powers of 1024), "
            "e.g. '512Mi'",
        ),
        (
            specs.Quotas(mem="1Mi"),
            "quotas.limits.mem '1Mi' is below the smallest limit a container can have (6 MiB)",
        ),
        (
            specs.Quotas(mem="64Mi", mem_request="1Gi"),
            "quotas.requests.mem '1Gi' is above quotas.limits.mem '64Mi'",
        ),
    ],
)
def test_a_wrong_quota_is_refused_saying_which_and_why(quotas, reason):
    with pytest.raises(ValueError) as refused:
        specs.limits(quotas)
    assert str(refused.value) == reason


def test_limits_become_the_engines_host_config_fields():
    limits = specs.Limits(cpu=0.5, mem_bytes=64 << 20, mem_request_bytes=32 << 20)
    assert host_config(limits, cores=8) == {
        "Memory": 64 << 20,
        "MemorySwap": 64 << 20,  # no swap beyond the limit
        "MemoryReservation": 32 << 20,
        "NanoCpus": 4_000_000_000,  # half of 8 cores
    }
    assert host_config(specs.NO_LIMITS, cores=8) == {}
    # Clamped: at least what Docker accepts, at most every core.
    assert host_config(specs.Limits(cpu=1e-9), cores=4) == {"NanoCpus": MIN_NANO_CPUS}
    assert host_config(specs.Limits(cpu=1.0), cores=4) == {"NanoCpus": 4_000_000_000}


# --- on a runner ----------------------------------------------------------------------


def test_a_run_over_its_memory_limit_fails_naming_the_limit_while_one_beside_it_passes(
    rabbit_url, test_image, docker_client
):
    async def scenario() -> None:
        async with world(rabbit_url, runner_capacity=4) as w:
            # Given runs at once: two that go over a 16 MiB limit, in an exec and in the
            # last step (the container's entry); one that fails by itself under a limit;
            # and the same greedy step without quotas
            limited = _quotas(mem="16Mi")
            in_exec = _job(test_image, [GREEDY, "echo never"], limited)
            in_last = _job(test_image, ["echo first", GREEDY], limited)
            failing = _job(test_image, ["exit 3"], limited)
            free = _job(test_image, [GREEDY, "echo fine"])
            for job in (in_exec, in_last, failing, free):
                await w.publish(job)

            # Then those over the limit failed saying so, the others are as they would be
            assert (await w.tap.terminal(in_exec.run_id)).reason == (
                "step 1 killed: out of memory (limit 16 MiB)"
            )
            assert "never" not in w.tap.texts(in_exec.run_id)
            assert (await w.tap.terminal(in_last.run_id)).reason == (
                "step 2 killed: out of memory (limit 16 MiB)"
            )
            assert (await w.tap.terminal(failing.run_id)).reason == "step 1 exited with 3"
            passed = await w.tap.terminal(free.run_id)
            assert passed.status == messages_pb2.PASSED, w.tap.describe()
            assert w.tap.texts(free.run_id, OUT) == ["fine"]

    asyncio.run(scenario())


@pytest.mark.parametrize("spare", [True, False], ids=["spare-updated", "started-with-limits"])
def test_quotas_are_the_limits_of_the_runs_container(rabbit_url, test_image, docker_client, spare):
    cores = docker_client.info()["NCPU"]

    async def scenario() -> None:
        async with world(rabbit_url, runner_spare_containers=str(spare).lower()) as w:
            if spare:  # the first run of the image leaves spares behind
                warm = _job(test_image, ["true"])
                await w.publish(warm)
                await w.tap.terminal(warm.run_id)
            # Given a run with every quota
            job = _job(
                test_image, ["echo started; sleep 30"], _quotas(cpu=0.5, mem="64Mi", request="32Mi")
            )
            await w.publish(job)
            await w.tap.wait_for(lambda: "started" in w.tap.texts(job.run_id), "the step")

            # Then its container, while it runs, has them as its limits
            [container] = await containers_of(docker_client, job.run_id)
            attrs = await asyncio.to_thread(docker_client.api.inspect_container, container.id)
            await w.control(job.run_id, messages_pb2.STOP)
            await w.tap.terminal(job.run_id)
            limits = {
                k: attrs["HostConfig"][k]
                for k in ("NanoCpus", "Memory", "MemorySwap", "MemoryReservation")
            }
            assert limits == {
                "NanoCpus": round(0.5 * cores * 1e9),
                "Memory": 64 << 20,
                "MemorySwap": 64 << 20,
                "MemoryReservation": 32 << 20,
            }
            assert (LABEL_SPARE in attrs["Config"]["Labels"]) is spare

    asyncio.run(scenario())


def test_a_wrong_quota_fails_the_run_before_anything_runs(rabbit_url, test_image):
    async def scenario() -> None:
        async with world(rabbit_url) as w:
            job = _job(test_image, ["echo never"], _quotas(mem="512mb"))
            await w.publish(job)
            final = await w.tap.terminal(job.run_id)
            assert final.reason.startswith("quotas.limits.mem: '512mb' is not a memory quantity")
            assert w.tap.statuses(job.run_id) == [messages_pb2.FAILED]

    asyncio.run(scenario())


def test_the_shell_runner_says_it_does_not_apply_quotas(rabbit_url, test_image):
    async def scenario() -> None:
        async with world(rabbit_url, runner_type="shell") as w:
            job = _job(test_image, ["echo ran"], _quotas(cpu=0.5, mem="64Mi"), runner_type="shell")
            await w.publish(job)
            final = await w.tap.terminal(job.run_id)
            assert final.status == messages_pb2.PASSED, w.tap.describe()
            assert (
                "[bob] shell runner: the pipeline's quotas do not apply (no container to limit)"
            ) in w.tap.texts(job.run_id)

    asyncio.run(scenario())
