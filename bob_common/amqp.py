"""Connections, and the one place where message bytes become typed protobuf objects."""

from __future__ import annotations

import asyncio
import logging
from typing import TypeVar

import aio_pika
import aiormq
from aio_pika.abc import (
    AbstractChannel,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
    FieldValue,
)
from google.protobuf.message import DecodeError as _ProtobufDecodeError
from google.protobuf.message import Message as ProtoMessage

from bob_common import topology

CONTENT_TYPE = "application/x-protobuf"
log = logging.getLogger(__name__)
# What a broker operation raises while the broker is unreachable; ChannelInvalidStateError
# (not an AMQPError) comes from a robust channel that is closed while it reconnects.
BROKER_ERRORS = (
    aio_pika.exceptions.AMQPError,
    aiormq.exceptions.ChannelInvalidStateError,
    ConnectionError,
    asyncio.TimeoutError,
)
# The part of BROKER_ERRORS that says the connection went, not that the broker refused an
# operation: worth retrying once the robust connection is back. A channel error (say a
# queue declared with other arguments) is not: retried, it would fail the same way.
CONNECTION_LOST = (
    aiormq.exceptions.AMQPConnectionError,
    aiormq.exceptions.ChannelInvalidStateError,
    ConnectionError,
    asyncio.TimeoutError,
)
# How long cancelling a consumer may take at shutdown.
CANCEL_TIMEOUT_S = 5.0
M = TypeVar("M", bound=ProtoMessage)


class MessageDecodeError(Exception):
    """A delivery that is not the expected protobuf message. Raised by decode(); the
    consumer dead-letters the delivery (the raw payload is kept) and keeps consuming."""

    def __init__(self, reason: str, raw: bytes) -> None:
        super().__init__(reason)
        self.reason = reason
        self.raw = raw


async def connect(url: str, name: str) -> AbstractRobustConnection:
    """A robust connection, named so the broker's connection list shows who is who; it
    reconnects by itself and restores the channels, queues and consumers declared on it."""
    return await aio_pika.connect_robust(url, client_properties={"connection_name": name})


def encode(msg: ProtoMessage, headers: dict[str, FieldValue] | None = None) -> aio_pika.Message:
    return aio_pika.Message(
        body=msg.SerializeToString(),
        content_type=CONTENT_TYPE,
        type=msg.DESCRIPTOR.full_name,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        headers=headers or {},
    )


def decode(message: AbstractIncomingMessage, cls: type[M]) -> M:
    expected = cls.DESCRIPTOR.full_name
    if message.type and message.type != expected:
        raise MessageDecodeError(f"expected {expected}, got type {message.type!r}", message.body)
    try:
        decoded = cls()
        decoded.ParseFromString(message.body)
    except _ProtobufDecodeError as exc:
        raise MessageDecodeError(f"undecodable {expected}: {exc}", message.body) from exc
    return decoded


async def report_error(channel: AbstractChannel, service: str, text: str) -> None:
    """Puts a system error on bob.errors (through bob.error-reports), where GET /error
    pops it. Never raises: failing to report an error must not turn into a second one."""
    try:
        exchange = await channel.get_exchange(topology.ERRORS_EXCHANGE, ensure=False)
        await exchange.publish(
            aio_pika.Message(
                body=f"{service}: {text}".encode(),
                content_type="text/plain",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                headers={"service": service},
            ),
            routing_key="",
        )
    except Exception:  # noqa: BLE001 - see docstring
        log.exception("could not report error to %s: %s", topology.ERRORS_QUEUE, text)


async def dead_letter(
    channel: AbstractChannel, service: str, message: AbstractIncomingMessage, reason: str
) -> None:
    """Rejects a poison delivery to bob.dead (raw payload kept) and reports why."""
    log.error("dead-lettering %s message: %s", message.type or "untyped", reason)
    kind = message.type or "untyped"
    await report_error(channel, service, f"dead-lettered a {kind} message: {reason}")
    await message.reject(requeue=False)


async def cancel_consuming(queue: AbstractQueue, tag: str) -> None:
    """Cancels a consumer without hanging a shutdown while the broker is unreachable: a
    robust channel waits for its reconnection before it sends anything, and a broker that
    lost the connection has dropped the consumer anyway (and requeued its unacked
    deliveries)."""
    try:
        await asyncio.wait_for(queue.cancel(tag), CANCEL_TIMEOUT_S)
    except (TimeoutError, RuntimeError, *BROKER_ERRORS) as exc:
        log.warning(
            "could not cancel consuming %s (%r); the broker drops it with the connection",
            queue.name,
            exc,
        )
