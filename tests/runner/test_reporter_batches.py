"""Events made with wait=False go in one message with the next ones: numbered as if each
went alone, published with the next call that waits or after the linger, and a failure of
theirs raised by the next call. The exchange here stands in for the broker's."""

from __future__ import annotations

import asyncio

import pytest

from bob_common import claim_proof, run_events
from bob_common.run_states import RunStatus
from bob_pb import messages_pb2
from runner_svc.errors import EventsUnavailable
from runner_svc.reporting import reporter as reporting
from runner_svc.reporting.reporter import RunReporter

SECRET = b"k" * 32


class _Exchange:
    """Keeps each message's events, routing key and MAC; fails while `failing`."""

    def __init__(self) -> None:
        self.failing = False
        self.messages: list[tuple[str, list[messages_pb2.RunEvent]]] = []

    async def publish(self, message, routing_key, mandatory, timeout):
        if self.failing:
            raise ConnectionError("broker away")
        assert claim_proof.matches(SECRET, message.body, message.headers[claim_proof.HEADER])
        if message.type == run_events.BATCH_TYPE:
            events = list(messages_pb2.RunEvents.FromString(message.body).events)
        else:
            events = [messages_pb2.RunEvent.FromString(message.body)]
        self.messages.append((routing_key.rsplit(".", 1)[1], events))

    def seqs(self) -> list[tuple[str, list[int]]]:
        return [(kind, [e.seq for e in events]) for kind, events in self.messages]


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch):
    monkeypatch.setattr(reporting, "RETRY_FIRST_S", 0.01)
    monkeypatch.setattr(reporting, "RETRY_MOST_S", 0.02)


def _reporter(exchange: _Exchange, first_line_no: int = 0) -> RunReporter:
    reporter = RunReporter(
        exchange,
        run_id="r-1",
        attempt=1,
        runner_id="runner-1",
        first_line_no=first_line_no,
        deadline_s=0.1,
    )
    reporter.sign_with(SECRET)
    return reporter


def test_events_not_waited_for_go_with_the_next_one_in_one_signed_message():
    exchange = _Exchange()
    reporter = _reporter(exchange, first_line_no=10)

    async def main():
        await reporter.status(RunStatus.INITIALIZED, wait=False)
        await reporter.status(RunStatus.RUNNING, wait=False)
        assert exchange.messages == []  # nothing out yet
        await reporter.say("step 1/1: true")
        await reporter.step_finished(0, 0, 5, wait=False)
        await reporter.say("run passed", wait=False)
        await reporter.status(RunStatus.PASSED)
        await reporter.logs([(messages_pb2.STDOUT, "after")])

    asyncio.run(main())
    # Two batches and then a lone event, numbered on without gaps; the lines too.
    assert exchange.seqs() == [("batch", [1, 2, 3]), ("batch", [4, 5, 6]), ("logs", [7])]
    lines = [ln for _, events in exchange.messages for e in events for ln in e.logs.lines]
    assert [(ln.line_no, ln.text, ln.stream) for ln in lines] == [
        (10, "[bob] step 1/1: true", messages_pb2.SYSTEM),
        (11, "[bob] run passed", messages_pb2.SYSTEM),
        (12, "after", messages_pb2.STDOUT),
    ]


def test_an_event_not_waited_for_goes_alone_after_the_linger():
    exchange = _Exchange()
    reporter = _reporter(exchange)

    async def main():
        await reporter.status(RunStatus.RUNNING, wait=False)
        for _ in range(200):
            if exchange.messages:
                break
            await asyncio.sleep(reporting.LINGER_S)
        await reporter.status(RunStatus.PASSED)

    asyncio.run(main())
    assert exchange.seqs() == [("status", [1]), ("status", [2])]


def test_a_log_event_too_large_to_join_the_pending_ones_goes_after_them():
    exchange = _Exchange()
    reporter = RunReporter(
        exchange, run_id="r-1", attempt=1, runner_id="runner-1", max_event_bytes=6000
    )
    reporter.sign_with(SECRET)

    async def main():
        await reporter.say("x" * 1000, wait=False)
        await reporter.logs([(messages_pb2.STDOUT, "y" * 1000)])

    asyncio.run(main())
    assert exchange.seqs() == [("logs", [1]), ("logs", [2])]
    assert [e.logs.lines[0].line_no for _, (e,) in exchange.messages] == [0, 1]


def test_pending_events_that_cannot_be_published_fail_the_next_call_which_numbers_on():
    exchange = _Exchange()
    reporter = _reporter(exchange)
    exchange.failing = True

    async def main():
        await reporter.status(RunStatus.RUNNING, wait=False)
        await asyncio.sleep(0.5)  # the linger, then the 0.1 s deadline of the retries
        with pytest.raises(EventsUnavailable, match="could not publish event 1 \\(status\\)"):
            await reporter.say("step 1/1: true")
        exchange.failing = False
        # Numbered as the lost event was: entities never saw it.
        await reporter.status(RunStatus.FAILED, "events lost")

    asyncio.run(main())
    assert exchange.seqs() == [("status", [1])]
    assert exchange.messages[0][1][0].status.status == RunStatus.FAILED


def test_muting_drops_the_pending_events():
    exchange = _Exchange()
    reporter = _reporter(exchange)

    async def main():
        await reporter.status(RunStatus.RUNNING, wait=False)
        reporter.mute()
        await asyncio.sleep(reporting.LINGER_S * 4)
        await reporter.status(RunStatus.PASSED)

    asyncio.run(main())
    assert exchange.messages == []
