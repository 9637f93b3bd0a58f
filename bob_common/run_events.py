"""A run's events on the wire (messages.proto): one RunEvent per message, or several
consecutive ones of an attempt in one RunEvents message, which a runner publishes when it
has several to say at once. Every reader of bob.events takes both through decode()."""

from __future__ import annotations

from collections.abc import Sequence

from aio_pika.abc import AbstractIncomingMessage

from bob_common import amqp
from bob_pb import messages_pb2

# The routing key's kind (topology.run_event_key) of a RunEvents message.
BATCH = "batch"
BATCH_TYPE = messages_pb2.RunEvents.DESCRIPTOR.full_name


def kind(event: messages_pb2.RunEvent) -> str:
    """The routing key's kind of a message holding this one event: status, logs or step."""
    return event.WhichOneof("body") or ""


def batch(events: Sequence[messages_pb2.RunEvent]) -> messages_pb2.RunEvents:
    return messages_pb2.RunEvents(events=events)


def decode(message: AbstractIncomingMessage) -> list[messages_pb2.RunEvent]:
    """The events of a delivery, in order; amqp.MessageDecodeError for anything else, and
    for a batch that is empty or mixes runs or attempts (its one MAC is under one claim)."""
    if message.type != BATCH_TYPE:
        return [amqp.decode(message, messages_pb2.RunEvent)]
    events = list(amqp.decode(message, messages_pb2.RunEvents).events)
    if not events:
        raise amqp.MessageDecodeError("RunEvents without events", message.body)
    first = events[0]
    if any(e.run_id != first.run_id or e.attempt != first.attempt for e in events):
        raise amqp.MessageDecodeError("RunEvents of more than one run or attempt", message.body)
    return events
