"""Bob's own lines in a run's log: one prefix, one stream."""

from __future__ import annotations

from bob_common.log_markers import SYSTEM_PREFIX, SYSTEM_STREAM, system_line, system_text
from bob_pb import messages_pb2


def test_the_system_stream_is_the_protos():
    assert SYSTEM_STREAM == messages_pb2.SYSTEM
    assert messages_pb2.LogStream.Name(SYSTEM_STREAM) == "SYSTEM"


def test_a_system_line_is_prefixed_and_on_the_system_stream():
    assert system_text("run passed") == "[bob] run passed"
    assert system_line("step 1/2: make") == (messages_pb2.SYSTEM, "[bob] step 1/2: make")


def test_the_prefix_tells_bobs_lines_from_a_builds():
    lines = [system_text("step 1/1: echo [bob]"), "[bob]", "hello [bob] "]
    assert [line for line in lines if not line.startswith(SYSTEM_PREFIX)] == lines[1:]
