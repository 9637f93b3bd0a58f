"""HTTP to the plugins: a resource or artifact comes down, an artifact goes up, both as
streams of chunks that are never held whole.

Synchronous on purpose: each transfer runs on the worker thread that also feeds or
drains the workspace (the docker SDK blocks), so the bytes flow from socket to socket
through one bounded chunk at a time. A run's `abort` event (set by a stop or a timeout)
ends a transfer at the next chunk.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping

import httpx

from runner_svc.errors import TransferFailed

CHUNK = 64 * 1024
# How much of a plugin's error answer goes into the run's reason.
ERROR_BODY_CHARS = 200


class Aborted(TransferFailed):
    """The run was stopped or timed out while the transfer was going on."""


def _answer(response: httpx.Response) -> str:
    body = response.read()[:ERROR_BODY_CHARS].decode("utf-8", "replace").strip()
    return f"{response.status_code} {response.reason_phrase}" + (f": {body}" if body else "")


def _why(exc: Exception) -> str:
    return str(exc) or type(exc).__name__


def _checked(chunks: Iterable[bytes], abort: threading.Event) -> Iterator[bytes]:
    for chunk in chunks:
        if abort.is_set():
            raise Aborted("aborted")
        yield chunk


class PluginHttp:
    def __init__(self, timeout_s: float) -> None:
        # No overall deadline: a large archive may take long; a silent plugin may not.
        self._timeout = httpx.Timeout(timeout_s)

    def fetch(
        self, url: str, params: Mapping[str, str], abort: threading.Event
    ) -> Iterator[bytes]:
        """The body of `GET url?params`, chunk by chunk; TransferFailed when the plugin
        cannot be reached or does not answer 200."""
        try:
            with httpx.stream("GET", url, params=dict(params), timeout=self._timeout) as r:
                if r.status_code != 200:
                    raise TransferFailed(f"GET {url} answered {_answer(r)}")
                yield from _checked(r.iter_bytes(CHUNK), abort)
        except httpx.HTTPError as exc:
            raise TransferFailed(f"GET {url} failed: {_why(exc)}") from exc

    def upload(self, url: str, chunks: Iterable[bytes], abort: threading.Event) -> None:
        """POSTs `chunks` as the body (chunked transfer encoding); TransferFailed unless
        the plugin answers 2xx."""
        try:
            response = httpx.post(
                url,
                content=_checked(chunks, abort),
                headers={"Content-Type": "application/x-tar"},
                timeout=self._timeout,
            )
        except httpx.HTTPError as exc:
            raise TransferFailed(f"POST {url} failed: {_why(exc)}") from exc
        if not response.is_success:
            raise TransferFailed(f"POST {url} answered {_answer(response)}")
