"""A run's events are published with retries: a broker that comes back gets the event
once, one that stays away fails the publish after the deadline, and a muted reporter
drops the event it was retrying. The exchange here stands in for the broker's, failing as
a broker connection does."""

from __future__ import annotations

import asyncio

import pytest

from bob_common.run_states import RunStatus
from bob_pb import messages_pb2
from runner_svc.errors import EventsUnavailable
from runner_svc.reporting import reporter as reporting
from runner_svc.reporting.reporter import RunReporter


class _Exchange:
    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.published: list[messages_pb2.RunEvent] = []

    async def publish(self, message, routing_key, mandatory, timeout):
        if self.failures:
            self.failures -= 1
            raise ConnectionError("broker away")
        event = messages_pb2.RunEvent()
        event.ParseFromString(message.body)
        self.published.append(event)


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch):
    monkeypatch.setattr(reporting, "RETRY_FIRST_S", 0.01)
    monkeypatch.setattr(reporting, "RETRY_MOST_S", 0.02)


def _reporter(exchange: _Exchange, deadline_s: float = 5.0) -> RunReporter:
    return RunReporter(
        exchange, run_id="r-1", attempt=1, runner_id="runner-1", deadline_s=deadline_s
    )


def test_an_event_is_published_once_the_broker_is_back_and_the_next_follows_in_order():
    exchange = _Exchange(failures=3)
    reporter = _reporter(exchange)

    async def main():
        await reporter.status(RunStatus.RUNNING)
        await reporter.status(RunStatus.PASSED)

    asyncio.run(main())
    assert [(e.seq, e.status.status) for e in exchange.published] == [
        (1, RunStatus.RUNNING),
        (2, RunStatus.PASSED),
    ]


def test_a_broker_that_stays_away_fails_the_publish_after_the_deadline():
    exchange = _Exchange(failures=10_000)
    reporter = _reporter(exchange, deadline_s=0.1)
    with pytest.raises(EventsUnavailable, match="could not publish event 1 \\(status\\)"):
        asyncio.run(reporter.status(RunStatus.RUNNING))
    assert exchange.published == []


def test_muting_drops_the_event_being_retried():
    exchange = _Exchange(failures=10_000)
    reporter = _reporter(exchange)

    async def main():
        sending = asyncio.create_task(reporter.status(RunStatus.RUNNING))
        await asyncio.sleep(0.05)
        reporter.mute()
        await asyncio.wait_for(sending, 1)
        exchange.failures = 0
        await reporter.status(RunStatus.PASSED)  # muted: nothing more goes out

    asyncio.run(main())
    assert exchange.published == []
