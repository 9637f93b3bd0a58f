"""The whole queue topology, declared in one place and used by every service.

| name                | kind            | purpose                               |
|---------------------|-----------------|---------------------------------------|
| bob.jobs            | direct exchange | routing key = runner type             |
| bob.jobs.<type>     | quorum queue    | jobs for one runner type; bounded     |
| bob.control         | fanout exchange | stop/pause/resume, to each runner's   |
| bob.control.<id>    | exclusive queue | ...own queue, named by its runner id  |
| bob.events          | topic exchange  | run.<run_id>.<kind>                   |
| bob.entities.events | quorum queue    | bound to bob.events, for entities     |
| bob.error-reports   | fanout exchange | where services report errors, to:     |
| bob.errors          | durable queue   | system errors as text; GET /error     |
| bob.dead            | fanout + queue  | poison messages, raw, for inspection  |
| bob.jobs.dead       | fanout + queue  | jobs dead-lettered by a job queue;    |
|                     |                 | entities queues them again or fails   |

Entities owns the topology: it declares all of it (declare_shared) when it connects.
A runner declares only its own queues (its job queue, its control queue); what it uses
of the rest it declares only when missing (ensure_for_runner), which a runner whose
broker user may not (broker_users.py) cannot do: it waits for entities to. The API
declares nothing. Declarations are idempotent and made on robust channels, so a
reconnect restores them. Queue arguments must be identical on every declaration, hence
the helpers below.
"""

from __future__ import annotations

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractConnection,
    AbstractExchange,
    AbstractQueue,
)
from pamqp.common import FieldTable, FieldValue

JOBS_EXCHANGE = "bob.jobs"
CONTROL_EXCHANGE = "bob.control"
EVENTS_EXCHANGE = "bob.events"
ENTITIES_EVENTS_QUEUE = "bob.entities.events"
ERRORS_QUEUE = "bob.errors"
# Errors are published here, not to bob.errors through the default exchange: publishing
# to the default exchange reaches every queue, which no runner's user should be allowed.
ERRORS_EXCHANGE = "bob.error-reports"
DEAD_LETTER_EXCHANGE = "bob.dead"
DEAD_LETTER_QUEUE = "bob.dead"
# Not under bob.jobs.<type>: no runner type can be named "dead" and collide with it.
DEAD_JOBS_EXCHANGE = "bob.jobs-dead"
DEAD_JOBS_QUEUE = "bob.jobs-dead"

# A message redelivered this many times is poison: the broker dead-letters it.
DELIVERY_LIMIT = 10


def job_queue_name(runner_type: str) -> str:
    return f"{JOBS_EXCHANGE}.{runner_type}"


def run_event_key(run_id: str, kind: str) -> str:
    return f"run.{run_id}.{kind}"


def _quorum_arguments(**extra: FieldValue) -> FieldTable:
    return {
        "x-queue-type": "quorum",
        "x-delivery-limit": DELIVERY_LIMIT,
        "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE,
        **extra,
    }


def job_queue_arguments(max_jobs: int) -> FieldTable:
    # reject-publish: a full queue nacks the publish, so the API can answer 503
    # instead of the broker silently dropping the oldest job. A job delivered too often
    # goes to entities, whose run would otherwise stay pending forever.
    limits: FieldTable = {
        "x-max-length": max_jobs,
        "x-overflow": "reject-publish",
        "x-dead-letter-exchange": DEAD_JOBS_EXCHANGE,
    }
    return _quorum_arguments(**limits)


async def _declare_dead_letters(channel: AbstractChannel) -> None:
    dead = await channel.declare_exchange(
        DEAD_LETTER_EXCHANGE, aio_pika.ExchangeType.FANOUT, durable=True
    )
    queue = await channel.declare_queue(DEAD_LETTER_QUEUE, durable=True)
    await queue.bind(dead)
    errors = await channel.declare_exchange(
        ERRORS_EXCHANGE, aio_pika.ExchangeType.FANOUT, durable=True
    )
    errors_queue = await channel.declare_queue(ERRORS_QUEUE, durable=True)
    await errors_queue.bind(errors)


async def declare_dead_jobs(channel: AbstractChannel) -> AbstractQueue:
    """Where job queues dead-letter to, declared before them: the broker drops a message
    dead-lettered to an exchange that does not exist."""
    dead = await channel.declare_exchange(
        DEAD_JOBS_EXCHANGE, aio_pika.ExchangeType.FANOUT, durable=True
    )
    queue = await channel.declare_queue(
        DEAD_JOBS_QUEUE, durable=True, arguments={"x-queue-type": "quorum"}
    )
    await queue.bind(dead)
    return queue


async def declare_jobs(
    channel: AbstractChannel, runner_type: str, max_jobs: int
) -> tuple[AbstractExchange, AbstractQueue]:
    """The jobs exchange and the bounded queue of one runner type, bound by that type."""
    await _declare_dead_letters(channel)
    await declare_dead_jobs(channel)
    exchange = await channel.declare_exchange(
        JOBS_EXCHANGE, aio_pika.ExchangeType.DIRECT, durable=True
    )
    queue = await declare_job_queue(channel, runner_type, max_jobs)
    await queue.bind(exchange, routing_key=runner_type)
    return exchange, queue


async def declare_job_queue(
    channel: AbstractChannel, runner_type: str, max_jobs: int
) -> AbstractQueue:
    """The bounded queue of one runner type, alone: what a runner of that type declares.
    Entities binds it to bob.jobs before it publishes a job of that type (declare_jobs),
    so a runner needs no right on the exchange, through which it could bind its queue to
    the jobs of other types."""
    return await channel.declare_queue(
        job_queue_name(runner_type), durable=True, arguments=job_queue_arguments(max_jobs)
    )


async def declare_control(channel: AbstractChannel) -> AbstractExchange:
    return await channel.declare_exchange(
        CONTROL_EXCHANGE, aio_pika.ExchangeType.FANOUT, durable=True
    )


def control_queue_name(runner_id: str) -> str:
    """A runner's own queue on the control fanout: named, so that a broker user may be
    allowed runners' control queues and nothing else (server- or client-generated names
    are not the runner's to choose)."""
    return f"{CONTROL_EXCHANGE}.{runner_id}"


async def declare_control_queue(channel: AbstractChannel, runner_id: str) -> AbstractQueue:
    """A runner's own exclusive queue on the control fanout; gone when the runner is (and
    no other connection may use it meanwhile). The fanout must exist (ensure_for_runner)."""
    exchange = await channel.get_exchange(CONTROL_EXCHANGE, ensure=False)
    queue = await channel.declare_queue(
        control_queue_name(runner_id), exclusive=True, auto_delete=True
    )
    await queue.bind(exchange)
    return queue


async def declare_events(channel: AbstractChannel) -> AbstractExchange:
    return await channel.declare_exchange(
        EVENTS_EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True
    )


async def declare_entities_events(channel: AbstractChannel) -> AbstractQueue:
    """The queue through which entities receives every run event."""
    await _declare_dead_letters(channel)
    exchange = await declare_events(channel)
    queue = await channel.declare_queue(
        ENTITIES_EVENTS_QUEUE, durable=True, arguments=_quorum_arguments()
    )
    await queue.bind(exchange, routing_key="run.#")
    return queue


async def declare_shared(channel: AbstractChannel) -> AbstractQueue:
    """Everything but the job queues, which follow the runner types jobs are published
    for: what entities declares when it connects. Answers entities' event queue."""
    await declare_dead_jobs(channel)
    await channel.declare_exchange(JOBS_EXCHANGE, aio_pika.ExchangeType.DIRECT, durable=True)
    await declare_control(channel)
    return await declare_entities_events(channel)


# What a runner uses of what entities declares, as (name, is a queue): the exchanges it
# publishes to or binds its control queue to, and the queue its events must reach (so
# none is published before entities' queue exists, and lost).
RUNNER_USES = (
    (EVENTS_EXCHANGE, False),
    (ENTITIES_EVENTS_QUEUE, True),
    (ERRORS_EXCHANGE, False),
    (CONTROL_EXCHANGE, False),
)


async def exists(connection: AbstractConnection, name: str, *, queue: bool) -> bool:
    """Whether a queue or exchange exists: a passive declare, which needs no permission,
    on a channel of its own, since a missing one closes the channel."""
    channel = await connection.channel(publisher_confirms=False)
    try:
        if queue:
            await channel.declare_queue(name, passive=True)
        else:
            await channel.declare_exchange(name, passive=True)
        return True
    except aio_pika.exceptions.ChannelNotFoundEntity:
        return False
    finally:
        if not channel.is_closed:
            await channel.close()


async def ensure_for_runner(connection: AbstractConnection, channel: AbstractChannel) -> None:
    """Declares what a runner uses of the shared topology when some of it is missing
    (entities has never connected to this vhost). A runner whose user may not declare it
    fails here with ACCESS_REFUSED, and retries until entities has."""
    for name, is_queue in RUNNER_USES:
        if not await exists(connection, name, queue=is_queue):
            await declare_control(channel)
            await declare_entities_events(channel)
            return
