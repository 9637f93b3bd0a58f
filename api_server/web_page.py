"""The web page for runs (api_server/web/): a static page that works on the API's own
endpoints with the visitor's token, served at `/` and `/web/...` in front of the token
check: the files hold no data, so they are open, like Swagger UI at /ui.

Every file is read once at start-up, from the package (so it ships in the wheel), and
served from memory by exact name: no path from a request ever reaches the file system.
Each answer carries the page's Content-Security-Policy (its own scripts and styles only,
no inline script, no framing) and an ETag, so that a browser revalidates cheaply.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from api_server.asgi import App, Receive, Scope, Send, send_json

ROOT = Path(__file__).parent / "web"
PREFIX = "/web/"
INDEX = "index.html"

# `default-src 'self'` and nothing inline: API data and log lines are inserted as text,
# and a script that slipped into the page anyway could not run nor send data elsewhere.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    # Always revalidated (the ETag makes that a 304): a new API never runs an old script.
    (b"cache-control", b"no-cache"),
]
TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".txt": "text/plain; charset=utf-8",
}


@dataclass(frozen=True)
class File:
    body: bytes
    content_type: str
    etag: str


def load(root: Path = ROOT) -> dict[str, File]:
    """The page's files by the path they are served at; a file of an unknown type is
    left out (it would be served as nothing safe)."""
    files = {}
    for path in sorted(root.rglob("*")):
        kind = TYPES.get(path.suffix)
        if not path.is_file() or kind is None:
            continue
        body = path.read_bytes()
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        name = path.relative_to(root).as_posix()
        files[PREFIX + name] = File(body, kind, etag)
    if PREFIX + INDEX in files:
        files["/"] = files[PREFIX + INDEX]
    return files


def is_page_path(path: str) -> bool:
    return path == "/" or path.startswith(PREFIX)


class WebPage:
    """The ASGI middleware: answers the page's paths, passes every other request on."""

    def __init__(self, app: App, root: Path = ROOT):
        self.app = app
        self.files = load(root)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_page_path(scope["path"]):
            return await self.app(scope, receive, send)
        method = scope["method"]
        if method not in ("GET", "HEAD"):
            return await _error(send, 405, f"{method} is not allowed here: the page is read-only")
        found = self.files.get(scope["path"])
        if found is None:
            return await _error(send, 404, f"The page has no file {scope['path']}")
        headers = [
            (b"content-type", found.content_type.encode()),
            (b"etag", found.etag.encode()),
            *SECURITY_HEADERS,
        ]
        if _matches(scope, found.etag):
            await send({"type": "http.response.start", "status": 304, "headers": headers})
            return await send({"type": "http.response.body", "body": b""})
        headers.append((b"content-length", str(len(found.body)).encode()))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        body = b"" if method == "HEAD" else found.body
        await send({"type": "http.response.body", "body": body})


def _matches(scope: Scope, etag: str) -> bool:
    for name, value in scope["headers"]:
        if name.lower() == b"if-none-match":
            tags = {t.strip() for t in value.decode("latin-1").split(",")}
            return etag in tags or "*" in tags
    return False


async def _error(send: Send, status: int, message: str) -> None:
    headers = [(b"allow", b"GET, HEAD")] if status == 405 else []
    body = json.dumps({"message": message}).encode()
    await send_json(send, status, body, [*headers, *SECURITY_HEADERS])
