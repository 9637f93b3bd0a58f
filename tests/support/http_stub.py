"""A real HTTP server on 127.0.0.1 that plays a plugin (resource provider or artifact
store) in API tests: each path answers what the test put in `routes`."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Answer:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/octet-stream"


@dataclass
class PluginServer:
    url: str
    routes: dict[str, Answer] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)


@contextmanager
def plugin_server() -> Iterator[PluginServer]:
    server_state = PluginServer(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            server_state.requests.append(self.path)
            answer = server_state.routes.get(self.path.split("?", 1)[0], Answer(404, b"no"))
            self.send_response(answer.status)
            self.send_header("Content-Type", answer.content_type)
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            self.wfile.write(answer.body)

        def log_message(self, *_args) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server_state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    server_state.routes["/ping"] = Answer(200, b"Ack")
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield server_state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)
