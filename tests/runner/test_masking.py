"""The masking of secrets in a run's log (runner_svc/reporting/masking.py), as pure
functions: whole texts, streams cut anywhere, multi-line values, the secret-looking
names and their floor; and a LogSink that masks before it splits lines."""

from __future__ import annotations

import asyncio
import random

import pytest

from bob_common.config import REDACTED_VARS_DEFAULT
from bob_pb import messages_pb2
from runner_svc.reporting.logsink import LogSink
from runner_svc.reporting.masking import (
    MASK,
    MIN_VAR_LENGTH,
    Redactor,
    forms,
    looks_secret,
    secret_looking,
)

SECRET = "hunter2-s3cret-value"
KEY = "\n".join(
    [
        "-----BEGIN KEY-----",
        "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC",
        "BKcwggSjAgEAAoIBAQC7",
        "-----END KEY-----",
    ]
)


def redactor(*values: str) -> Redactor:
    r = Redactor()
    r.add(values)
    return r


def streamed(r: Redactor, chunks: list[bytes]) -> bytes:
    masker = r.stream()
    return b"".join([*(masker.feed(c) for c in chunks), masker.flush()])


def test_a_value_is_masked_wherever_it_is_in_a_text():
    r = redactor(SECRET)
    assert r.mask(f"token={SECRET}; again {SECRET}.") == f"token={MASK}; again {MASK}."
    assert r.mask("nothing here") == "nothing here"


def test_without_values_nothing_changes_and_the_stream_passes_through():
    r = Redactor()
    assert not r
    assert r.mask(SECRET) == SECRET
    assert streamed(r, [SECRET.encode()]) == SECRET.encode()


@pytest.mark.parametrize("cut", range(1, len(SECRET)))
def test_a_value_split_across_two_chunks_is_masked_whole(cut):
    data = f"before {SECRET} after\n".encode()
    at = data.index(SECRET.encode()) + cut
    assert streamed(redactor(SECRET), [data[:at], data[at:]]) == f"before {MASK} after\n".encode()


def test_a_value_fed_one_byte_at_a_time_never_shows():
    r = redactor(SECRET)
    masker = r.stream()
    out = b""
    for byte in f"x{SECRET}y{SECRET}".encode():
        out += masker.feed(bytes([byte]))
        assert SECRET[:3].encode() not in out  # no piece leaves before it is decided
    out += masker.flush()
    assert out == f"x{MASK}y{MASK}".encode()


def test_only_what_may_begin_a_value_is_held_back():
    masker = redactor(SECRET).stream()
    assert masker.feed(b"plain line\n") == b"plain line\n"
    assert masker.feed(b"ends with hunt") == b"ends with "
    assert masker.feed(b"ing season\n") == b"hunting season\n"
    assert masker.feed(b"hunter") == b""
    assert masker.flush() == b"hunter"  # the stream ended: it was not the value


def test_random_cuts_of_a_long_output_mask_every_occurrence():
    rng = random.Random(7)
    values = [SECRET, "another-token-42", KEY]
    r = redactor(*values)
    parts = []
    for _ in range(200):
        parts.append(rng.choice(["noise ", "hunter ", "another-", "\n", *values]))
    data = "".join(parts).encode()
    expected = r.mask(data.decode()).encode()
    for _ in range(20):
        cuts = sorted(rng.sample(range(1, len(data)), 30))
        chunks = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
        out = streamed(r, chunks)
        assert out == expected
        for value in values:
            assert value.encode() not in out


def test_overlapping_values_are_masked_together():
    r = redactor("abcdefgh", "efghijkl")
    assert r.mask("xx abcdefghijkl yy") == f"xx {MASK} yy"
    assert streamed(r, [b"xx abcdef", b"ghijkl yy"]) == f"xx {MASK} yy".encode()


def test_a_value_that_begins_a_longer_one_does_not_leave_its_tail():
    r = redactor("secret1", "secret1234")
    assert streamed(r, [b"a secret1", b"234 b"]) == f"a {MASK} b".encode()
    assert streamed(r, [b"a secret1", b" b"]) == f"a {MASK} b".encode()


def test_a_multi_line_value_is_masked_whole_and_line_by_line():
    r = redactor(KEY)
    assert r.mask(f"key:\n{KEY}\ndone") == f"key:\n{MASK}\ndone"
    crlf = KEY.replace("\n", "\r\n")
    assert r.mask(f"tty: {crlf}") == f"tty: {MASK}"
    # One line of it printed alone (`sed -n 2p key.pem`) is masked too.
    second = KEY.splitlines()[1]
    assert r.mask(f"line: {second}") == f"line: {MASK}"
    # Spread over chunks, and so over lines.
    data = f"{KEY}\n".encode()
    chunks = [data[i : i + 7] for i in range(0, len(data), 7)]
    assert streamed(r, chunks) == f"{MASK}\n".encode()


def test_json_escaped_forms_are_masked():
    value = 'pa"ss\\word-123'
    r = redactor(value)
    assert r.mask('{"password": "pa\\"ss\\\\word-123"}') == f'{{"password": "{MASK}"}}'
    assert forms(value) == {value, 'pa\\"ss\\\\word-123'}


def test_names_that_look_secret_match_the_buildkite_patterns_case_insensitively():
    patterns = REDACTED_VARS_DEFAULT
    for name in (
        "DB_PASSWORD",
        "APP_SECRET",
        "GITHUB_TOKEN",
        "SSH_PRIVATE_KEY",
        "AWS_ACCESS_KEY",
        "AWS_SECRET_KEY",
        "DB_CONNECTION_STRING",
        "db_password",
    ):
        assert looks_secret(name, patterns), name
    for name in ("TOKEN", "PASSWORD", "GREETING", "TOKEN_URL", "PATH"):
        assert not looks_secret(name, patterns), name


def test_short_secret_looking_values_are_named_not_masked():
    values, short = secret_looking(
        {"API_TOKEN": "abcdef", "PIN_TOKEN": "1234", "EMPTY_TOKEN": "", "GREETING": "hello-world"},
        REDACTED_VARS_DEFAULT,
    )
    assert values == ["abcdef"]
    assert short == ["PIN_TOKEN"]
    assert len("abcdef") == MIN_VAR_LENGTH


def test_a_stored_secret_is_masked_whatever_its_length():
    assert redactor("ab").mask("a b ab") == f"a b {MASK}"


def test_a_log_sink_masks_a_value_split_across_writes_before_splitting_lines():
    asyncio.run(_sink_scenario())


async def _sink_scenario() -> None:
    r = redactor(SECRET)
    sink = LogSink(asyncio.get_running_loop(), batch_lines=100, flush_s=5, redactor=r)
    data = f"one\nthe token is {SECRET}\nlast {SECRET[:4]}".encode()
    at = data.index(SECRET.encode()) + 5

    def write() -> None:
        sink.write(messages_pb2.STDOUT, data[:at])
        sink.write(messages_pb2.STDOUT, data[at:])
        sink.write(messages_pb2.STDERR, SECRET.encode()[:9])
        sink.write(messages_pb2.STDERR, SECRET.encode()[9:] + b"\n")
        sink.close()

    writer = asyncio.get_running_loop().run_in_executor(None, write)
    lines = [line async for batch in sink.batches() for line in batch]
    await writer
    assert sorted(lines) == sorted(
        [
            (messages_pb2.STDOUT, "one"),
            (messages_pb2.STDOUT, f"the token is {MASK}"),
            (messages_pb2.STDOUT, f"last {SECRET[:4]}"),
            (messages_pb2.STDERR, MASK),
        ]
    )


def test_a_value_that_overlaps_itself_is_masked_whole_and_output_repeating_it_stays_bounded():
    r = redactor("abaaba")
    assert r.mask("x abaabaaba y") == f"x {MASK} y"  # two occurrences, overlapping
    assert streamed(r, [b"x abaab", b"aaba y"]) == f"x {MASK} y".encode()
    # A step printing a value made of one character for ever: masked, never held whole
    masker = redactor("A" * 5000).stream()
    out = b"".join(masker.feed(b"A" * 65536) for _ in range(40)) + masker.flush()
    assert b"AAAAAA" not in out and MASK.encode() in out


def test_output_full_of_the_first_characters_of_a_long_value_is_cheap_and_untouched():
    r = redactor("-----BEGIN KEY-----\n" + "Q" * 60000 + "\n-----END KEY-----")
    masker = r.stream()
    chunk = (b"-" * 999 + b"\n") * 64
    out = b"".join(masker.feed(chunk) for _ in range(50)) + masker.flush()
    assert out == chunk * 50
