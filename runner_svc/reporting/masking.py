"""Masking secrets in a run's log, before a line leaves the runner: each value is
replaced by MASK, as the Buildkite agent's redactor does.

What is masked (Redactor.add): every stored secret the run uses, whatever its length,
and the values of plain vars whose names match a pattern of BOB_REDACTED_VARS (as
Buildkite's redacted-vars: `*_TOKEN`, `*_PASSWORD`...) when they have at least
MIN_VAR_LENGTH characters: a `FOO_TOKEN=none` must not turn every "none" of the log into
MASK (Buildkite's LengthMin). Each value is looked for as it is and in the forms it
is printed in: its JSON-escaped form (Buildkite adds Go's %q form), with CRLF line ends,
and, for a value of several lines, each line of at least MIN_VAR_LENGTH characters on
its own (`head -1 key.pem` prints one).

A step's output is masked as a byte stream (StreamMasker), before it is cut into lines:
a value split across two chunks of output, or spread over several lines, is found
whole. The stream holds back only the end of a chunk that may begin a value, until the
next chunk says whether it does. What Bob writes itself (`[bob]` lines, reasons) is
masked line by line (Redactor.mask).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping, Sequence
from fnmatch import fnmatchcase

MASK = "***"
_MASK_BYTES = MASK.encode()
# Values of secret-looking plain vars shorter than this are not masked (Buildkite's).
MIN_VAR_LENGTH = 6
# The most a stream holds back; see StreamMasker.feed.
MAX_HELD = 1 << 20
# How much of a value's beginning is compared before the whole of it (_partial_start).
_HEAD = 16


def looks_secret(name: str, patterns: Sequence[str]) -> bool:
    """Whether a variable's name matches one of the glob patterns; case-insensitive (Bob
    errs towards masking: `db_password` is as secret as `DB_PASSWORD`)."""
    upper = name.upper()
    return any(fnmatchcase(upper, pattern.upper()) for pattern in patterns)


def secret_looking(
    variables: Mapping[str, str], patterns: Sequence[str]
) -> tuple[list[str], list[str]]:
    """(values to mask, names too short to mask) of the variables whose names look
    secret."""
    values, short = [], []
    for name, value in variables.items():
        if not looks_secret(name, patterns):
            continue
        if len(value) >= MIN_VAR_LENGTH:
            values.append(value)
        elif value:
            short.append(name)
    return values, short


def forms(value: str) -> set[str]:
    """The strings to look for to mask `value`."""
    found = {value, json.dumps(value, ensure_ascii=False)[1:-1]}
    if "\n" in value:
        found.add(value.replace("\r\n", "\n").replace("\n", "\r\n"))
        found.update(
            line.strip() for line in value.splitlines() if len(line.strip()) >= MIN_VAR_LENGTH
        )
    found.discard("")
    return found


class Redactor:
    """The values of one run to mask; add() them before its output starts."""

    def __init__(self) -> None:
        self._needles: set[bytes] = set()

    def add(self, values: Iterable[str]) -> None:
        for value in values:
            self._needles.update(form.encode() for form in forms(value))

    def __bool__(self) -> bool:
        return bool(self._needles)

    @property
    def needles(self) -> tuple[bytes, ...]:
        """Longest first."""
        return tuple(sorted(self._needles, key=len, reverse=True))

    def mask(self, text: str) -> str:
        """`text` with every value masked; for whole texts (a `[bob]` line, a reason)."""
        if not self._needles:
            return text
        data = text.encode()
        if not any(needle in data for needle in self._needles):
            return text
        return _masked(data, _ranges(data, self.needles), len(data)).decode("utf-8", "replace")

    def stream(self) -> StreamMasker:
        return StreamMasker(self.needles)


class StreamMasker:
    """Masks one output stream given in chunks: feed() each chunk and pass on what it
    returns, flush() at the end for the rest."""

    def __init__(self, needles: Sequence[bytes]) -> None:
        self._needles = tuple(needles)
        self._held = b""

    def feed(self, data: bytes) -> bytes:
        if not self._needles:
            return data
        buf = self._held + data
        ranges = _ranges(buf, self._needles)
        # Held back from the first place that may begin a value the next chunk completes,
        # or from the start of a value found that reaches into that part.
        cut = _partial_start(buf, self._needles)
        for start, end in ranges:
            if start < cut < end:
                cut = start
        if len(buf) - cut > MAX_HELD:
            # Only output that keeps repeating a value that overlaps itself gets here: what
            # is held is a value found whole, so it goes out masked.
            cut = len(buf)
        self._held = buf[cut:]
        return _masked(buf, ranges, cut)

    def flush(self) -> bytes:
        """The rest, once the stream has ended: what was held back cannot grow any more."""
        held, self._held = self._held, b""
        return _masked(held, _ranges(held, self._needles), len(held))


def _ranges(data: bytes, needles: Sequence[bytes]) -> list[tuple[int, int]]:
    """Where the needles are in `data`, overlapping ones merged, in order: a value that
    overlaps another is masked with it, so neither shows a piece."""
    found = []
    for needle in needles:
        size, period = len(needle), _period(needle)
        repeat = needle[size - period :]
        at = data.find(needle)
        while at != -1:
            end = at + size
            # The occurrences overlapping this one, one period further each, as far as the
            # text goes on repeating (cheap for "aaaa...", which step by step is not).
            while period < size:
                # Whole blocks of periods first: a long run of "aaaa..." costs its length.
                block = size - size % period
                if end + block <= len(data) and (
                    data[end : end + block] == data[end - period : end - period + block]
                ):
                    end += block
                elif data.startswith(repeat, end):
                    end += period
                else:
                    break
            found.append((at, end))
            # Any occurrence starting before end - size ends inside this range.
            at = data.find(needle, max(at + 1, end - size + 1))
    found.sort()
    merged: list[tuple[int, int]] = []
    for start, end in found:
        if merged and start < merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


@functools.lru_cache(maxsize=1024)
def _period(needle: bytes) -> int:
    """The smallest shift at which the needle overlaps itself (its length when it never
    does), from the prefix function."""
    border = [0] * len(needle)
    k = 0
    for i in range(1, len(needle)):
        while k and needle[i] != needle[k]:
            k = border[k - 1]
        if needle[i] == needle[k]:
            k += 1
        border[i] = k
    return len(needle) - (border[-1] if needle else 0)


def _partial_start(data: bytes, needles: Sequence[bytes]) -> int:
    """The first position from which the rest of `data` is the beginning of a needle (a
    value that may go on in the next chunk); len(data) when there is none."""
    cut = len(data)
    for needle in needles:
        # Far from the end, a beginning holds the needle's whole head: found by find(), at
        # C speed (output full of "-" must not cost a comparison with "-----BEGIN..." at
        # every dash); the last few positions are tried one by one.
        head = needle[:_HEAD]
        lo = max(0, len(data) - len(needle) + 1)
        near = max(lo, len(data) - len(head) + 1)
        at = data.find(head, lo)
        while -1 < at < min(near, cut):
            if data.startswith(needle[: len(data) - at], at):
                cut = at
                break
            at = data.find(head, at + 1)
        for at in range(near, cut):
            if data.startswith(needle[: len(data) - at], at):
                cut = at
                break
    return cut


def _masked(data: bytes, ranges: Sequence[tuple[int, int]], limit: int) -> bytes:
    """data[:limit] with each range inside it replaced by MASK."""
    out, done = [], 0
    for start, end in ranges:
        if end > limit:
            break
        out.append(data[done:start])
        out.append(_MASK_BYTES)
        done = end
    out.append(data[done:limit])
    return b"".join(out)
