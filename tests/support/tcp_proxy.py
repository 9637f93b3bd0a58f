"""A TCP proxy on 127.0.0.1 that a test can cut: one service reaches a backend (e.g. a
runner reaches RabbitMQ) through it, and cut() makes the backend unreachable for that
service alone, as a network partition would, while everyone else still reaches it.

cut() resets every open connection and refuses new ones (accepted, then reset at once,
so the client sees a failed handshake rather than a hang); hold() keeps connections open
but passes nothing on, so what a client sends meanwhile is in flight until then; restore()
lets connections and their bytes through again. Threads, not asyncio: the tests that use
it are synchronous.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass

_CHUNK = 65536


def _reset(sock: socket.socket) -> None:
    """Closes with an RST (linger 0), which the peer notices at once."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()


@dataclass
class ProxyCounts:
    # Connections passed through to the backend.
    accepted: int = 0
    # Connections refused while cut.
    refused: int = 0
    # Open connections reset by cut().
    reset: int = 0


class TcpProxy:
    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self._upstream = (upstream_host, upstream_port)
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port: int = self._listener.getsockname()[1]
        self.counts = ProxyCounts()
        self._lock = threading.Lock()
        self._pairs: set[tuple[socket.socket, socket.socket]] = set()
        self._cut = False
        self._closed = False
        # Cleared by hold(): the pumps wait before passing bytes on.
        self._flowing = threading.Event()
        self._flowing.set()
        self._acceptor = threading.Thread(
            target=self._accept_loop, daemon=True, name=f"tcp-proxy-{self.port}"
        )
        self._acceptor.start()

    @property
    def is_cut(self) -> bool:
        return self._cut

    def cut(self) -> None:
        """Resets every open connection and refuses new ones until restore()."""
        with self._lock:
            self._cut = True
            pairs, self._pairs = self._pairs, set()
            self.counts.reset += len(pairs)
        for client, upstream in pairs:
            _reset(client)
            _reset(upstream)

    def hold(self) -> None:
        """Passes no bytes on, either way, until restore() (or cut())."""
        self._flowing.clear()

    def restore(self) -> None:
        with self._lock:
            self._cut = False
        self._flowing.set()

    def close(self) -> None:
        self._closed = True
        self.cut()
        self._flowing.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._acceptor.join(timeout=5)

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                refuse = self._cut or self._closed
                if refuse:
                    self.counts.refused += 1
            if refuse:
                _reset(client)
                continue
            try:
                upstream = socket.create_connection(self._upstream, timeout=5)
                upstream.settimeout(None)
            except OSError:
                _reset(client)
                continue
            pair = (client, upstream)
            with self._lock:
                if self._cut:
                    self.counts.refused += 1
                    _reset(client)
                    _reset(upstream)
                    continue
                self._pairs.add(pair)
                self.counts.accepted += 1
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(pair, src, dst), daemon=True).start()

    def _pump(
        self, pair: tuple[socket.socket, socket.socket], src: socket.socket, dst: socket.socket
    ) -> None:
        try:
            while True:
                data = src.recv(_CHUNK)
                if not data:
                    break
                self._flowing.wait()
                dst.sendall(data)
        except OSError:
            pass
        # One direction ended: end the whole connection, as the broker would.
        with self._lock:
            mine = pair in self._pairs
            self._pairs.discard(pair)
        if mine:
            for sock in pair:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    sock.close()


@contextlib.contextmanager
def tcp_proxy(upstream_host: str, upstream_port: int) -> Iterator[TcpProxy]:
    proxy = TcpProxy(upstream_host, upstream_port)
    try:
        yield proxy
    finally:
        proxy.close()
