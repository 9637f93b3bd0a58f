"""The caps on a run's log, as pure logic: how long a stored line may be, how many bytes a
run attempt may store, and how lines are packed into events that the broker accepts.

Every size is counted in UTF-8 bytes of the decoded text, which is what is stored and
sent: a line of invalid bytes decodes to U+FFFD (3 bytes each) and is measured after
that, so no stored line exceeds the cap whatever a step prints.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence

from bob_common.config import LOG_LINE_MAX_BYTES
from bob_common.log_markers import system_line

# (stream, text), as logsink.Line.
Line = tuple[int, str]

# What a protobuf LogLine costs beside its text at most: its tag and length, line_no
# (varint, 10 bytes at most), stream, and the text's tag and length.
LINE_OVERHEAD = 24
# What a RunEvent costs beside its lines (run and runner ids, seq, times) and what the
# message carries beside its body (headers with the claim's MAC): kept free of lines.
EVENT_RESERVE = 4096


def cut_suffix(max_bytes: int) -> str:
    """What ends a line that was cut; the rest of it follows on the next line."""
    return f" [bob: line cut at {max_bytes} bytes]"


def utf8_len(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def fit(text: str, max_bytes: int) -> str:
    """`text` cut to at most max_bytes of UTF-8, never inside a character."""
    data = text.encode("utf-8", "surrogatepass")
    if len(data) <= max_bytes:
        return text
    return data[:max_bytes].decode("utf-8", "ignore")


def cap_line(text: str, max_bytes: int = LOG_LINE_MAX_BYTES) -> str:
    """`text` as stored: itself when it fits, otherwise cut and marked as cut. For lines
    whose rest is dropped (Bob's own, which are never that long unless a step's command
    is)."""
    if len(text) * 4 <= max_bytes or utf8_len(text) <= max_bytes:
        return text
    suffix = cut_suffix(max_bytes)
    return fit(text, max_bytes - utf8_len(suffix)) + suffix


def _char_start(data: bytes, at: int) -> int:
    """The nearest position at or before `at` (by at most 3) that does not split a UTF-8
    character; `at` itself when the bytes there are no valid character anyway."""
    for i in range(at, max(at - 4, 0), -1):
        if data[i] & 0xC0 != 0x80:
            return i
    return at


class LineCutter:
    """Turns one raw line (bytes without its newline) into stored lines of at most
    max_bytes each: a longer line is cut into pieces, each but the last ending with
    cut_suffix() and the rest on the next. A piece is cut from the raw bytes between
    characters; when invalid bytes make its text longer than its share, the excess
    replacement characters are dropped."""

    def __init__(self, max_bytes: int = LOG_LINE_MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self.suffix = cut_suffix(max_bytes)
        # A piece's text before the suffix.
        self._piece = max_bytes - len(self.suffix)
        # Raw lines this short cannot decode to more than max_bytes (3 bytes per byte).
        self.short = max_bytes // 3

    def pieces(self, raw: bytes) -> Iterator[str]:
        """The whole line's pieces, the last one unmarked."""
        if len(raw) <= self.short:
            yield raw.decode("utf-8", "replace")
            return
        while len(raw) > self.max_bytes:
            piece, raw = self.cut(raw)
            yield piece
        text = raw.decode("utf-8", "replace")
        if utf8_len(text) <= self.max_bytes:
            yield text
        else:
            yield fit(text, self._piece) + self.suffix

    def cut(self, raw: bytes) -> tuple[str, bytes]:
        """The first, marked piece of a line longer than max_bytes, and the raw rest."""
        at = _char_start(raw, self._piece)
        text = fit(raw[:at].decode("utf-8", "replace"), self._piece)
        return text + self.suffix, raw[at:]


def marker_text(max_bytes: int) -> str:
    return (
        f"log cut at {max_bytes} bytes (BOB_RUN_LOG_MAX_BYTES): "
        "the rest of this run's output is dropped"
    )


class LogBudget:
    """The bytes of step output one run attempt may still store. Each line counts its
    UTF-8 bytes and one for its newline (so empty lines are not free). The first batch
    that does not fit keeps the lines that do, then one `[bob]` marker; everything after
    is dropped. Bob's own lines (the end of the run) are not counted and always pass.
    Steps run one after another, each with its own reader thread; a lock keeps it exact
    even so."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.used = 0  # bytes of the lines kept
        self.dropped_lines = 0  # counts only what was offered as lines
        self._lock = threading.Lock()
        self._exhausted = False

    @property
    def exhausted(self) -> bool:
        """Once True, nothing more is kept: a writer may drop output without reading it."""
        return self._exhausted

    def take(self, lines: Sequence[Line]) -> list[Line]:
        """The lines of `lines` to keep, with the marker after them when they ran out."""
        with self._lock:
            if self._exhausted:
                self.dropped_lines += len(lines)
                return []
            sizes = [utf8_len(text) + 1 for _, text in lines]
            total = sum(sizes)
            if self.used + total <= self.max_bytes:
                self.used += total
                return list(lines)
            kept: list[Line] = []
            for line, size in zip(lines, sizes, strict=True):
                if self.used + size > self.max_bytes:
                    break
                self.used += size
                kept.append(line)
            self.dropped_lines += len(lines) - len(kept)
            self._exhausted = True
            kept.append(system_line(marker_text(self.max_bytes)))
            return kept


def event_chunks(lines: Iterable[Line], max_event_bytes: int) -> Iterator[list[Line]]:
    """`lines` in consecutive chunks whose LogBatch events stay within max_event_bytes.
    Each line must fit in an event on its own (the line cap is far below the event cap:
    config.py checks it)."""
    room = max_event_bytes - EVENT_RESERVE
    if isinstance(lines, Sequence):
        # The usual case, at C speed: even at 4 bytes a character the lines fit in one.
        chars = sum(len(text) for _, text in lines)
        if chars * 4 + len(lines) * LINE_OVERHEAD <= room:
            if lines:
                yield list(lines)
            return
    chunk: list[Line] = []
    size = 0
    for line in lines:
        cost = utf8_len(line[1]) + LINE_OVERHEAD
        if chunk and size + cost > room:
            yield chunk
            chunk, size = [], 0
        chunk.append(line)
        size += cost
    if chunk:
        yield chunk
