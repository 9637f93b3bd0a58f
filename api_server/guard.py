"""The API's safe defaults against web pages in the operator's browser, checked on every
request before anything else looks at it (authentication included):

- the Host header must name this API: a page whose DNS name an attacker re-binds to
  127.0.0.1 (DNS rebinding) sends its own name, which is refused with 421. IP addresses
  are always let in: rebinding needs a name, and a page served from an address is this
  API itself. Names are localhost, the bind host and BOB_API_ALLOWED_HOSTS;
- a browser's cross-site requests are refused with 403: an `Origin` that is not the API's
  own (nor in BOB_API_ALLOWED_ORIGINS), `Origin: null`, and, by `Sec-Fetch-Site`, every
  cross-site request but a link followed to a page, and same-site writes. Command-line
  clients (wendy, the Terraform provider, curl, scripts) send neither header and pass;
- a request body must be JSON (415 otherwise): the forms and text/plain bodies a page may
  send anywhere without asking first (no CORS preflight) never reach a handler.

And a path with a control character in it (`%0A`, `%00`) is refused with 400 naming it:
no name of Bob's holds one, and the router would answer such a path a bare 404.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from api_server.asgi import App, Receive, Scope, Send, send_json
from bob_common.config import ApiSettings

log = logging.getLogger(__name__)

ANY_HOST = "*"
# Loopback names a rebinding page cannot send (IP addresses pass anyway).
LOOPBACK_NAMES = frozenset({"localhost"})
WILDCARD_BINDS = frozenset({"", "0.0.0.0", "::", "[::]"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
JSON = "application/json"
DEFAULT_PORTS = {"http": 80, "https": 443}
# What a browser's request is for (Sec-Fetch-Dest) when a link is followed to a page:
# the one cross-site request let through (opening the API's /ui from a bookmark page).
_PAGE_DESTS = frozenset({"document", ""})
_HOST = re.compile(r"(?:\[(?P<v6>[0-9A-Fa-f:.]+(?:%[\w.~-]+)?)\]|(?P<name>[\w.-]+))(?::\d{1,5})?")

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

Origin = tuple[str, str, int]  # scheme, host (lower case, IPv6 without brackets), port


@dataclass(frozen=True)
class Refusal:
    status: int
    message: str


@dataclass(frozen=True)
class Policy:
    """What the guard lets in, from the API's settings."""

    host_names: frozenset[str]
    any_host: bool
    origins: frozenset[Origin]

    @classmethod
    def from_settings(cls, settings: ApiSettings) -> Policy:
        names = set(LOOPBACK_NAMES) | set(settings.allowed_hosts)
        bind = settings.host.strip("[]").lower()
        if settings.host not in WILDCARD_BINDS:
            names.add(bind)
        origins = {parse_origin(o) for o in settings.allowed_origins}
        return cls(
            host_names=frozenset(names - {ANY_HOST}),
            any_host=ANY_HOST in names,
            origins=frozenset(o for o in origins if o is not None),
        )

    def describe(self) -> str:
        if self.any_host:
            return "any Host name (BOB_API_ALLOWED_HOSTS=*: DNS rebinding is not stopped)"
        return "Host names " + ", ".join(sorted(self.host_names)) + " and IP addresses"


def host_name(value: str) -> str | None:
    """The name or address of a Host header value (lower case, no brackets, no trailing
    dot); None when it is not one."""
    match = _HOST.fullmatch(value)
    if match is None:
        return None
    name = match["v6"] or match["name"]
    return name.lower().rstrip(".")


def is_ip_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def parse_origin(value: str) -> Origin | None:
    """An Origin header (or a listed origin) as scheme, host and port; None for `null`
    and anything else that is not an http(s) origin."""
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    return parts.scheme, parts.hostname.rstrip("."), port or DEFAULT_PORTS[parts.scheme]


def own_origin(scheme: str, host: str) -> Origin | None:
    """The origin a page served by this API has, from the request's scheme and Host."""
    return parse_origin(f"{scheme}://{host}")


def check_path(path: str) -> Refusal | None:
    """`path` percent-decoded, as ASGI gives it."""
    if found := _CONTROL.search(path):
        return Refusal(400, f"The request path holds a control character ({found.group()!r})")
    return None


def has_body(headers: Mapping[str, str]) -> bool:
    length = headers.get("content-length")
    if length is not None:
        return not (length.strip().isdigit() and int(length) == 0)
    return "chunked" in headers.get("transfer-encoding", "").lower()


def check(policy: Policy, method: str, scheme: str, headers: Mapping[str, str]) -> Refusal | None:
    """Why the request is refused, or None. `headers`: lower-case names, one value each."""
    host = headers.get("host", "")
    name = host_name(host)
    if name is None:
        return Refusal(400, f"Host header {host!r} is not a host name")
    if not (policy.any_host or name in policy.host_names or is_ip_address(name)):
        return Refusal(
            421,
            f"Host {name!r} is not a name of this API: add it to BOB_API_ALLOWED_HOSTS "
            "(this stops DNS rebinding)",
        )
    return _check_site(policy, method, scheme, host, headers) or _check_body(headers)


def _check_site(
    policy: Policy, method: str, scheme: str, host: str, headers: Mapping[str, str]
) -> Refusal | None:
    origin_header = headers.get("origin")
    listed = False
    if origin_header is not None:
        origin = parse_origin(origin_header)
        listed = origin is not None and origin in policy.origins
        if origin is None or not (listed or origin == own_origin(scheme, host)):
            return Refusal(
                403,
                f"Cross-origin request refused: Origin {origin_header!r} is not this API's "
                f"own ({scheme}://{host}) nor in BOB_API_ALLOWED_ORIGINS",
            )
    site = headers.get("sec-fetch-site", "").lower()
    unsafe = method not in SAFE_METHODS
    if site == "cross-site" and not listed and (unsafe or not _opens_page(headers)):
        return Refusal(
            403,
            "Cross-site request refused (Sec-Fetch-Site: cross-site): only links to the "
            "API's pages may come from other sites; list a trusted origin in "
            "BOB_API_ALLOWED_ORIGINS",
        )
    if site == "same-site" and unsafe and not listed:
        return Refusal(
            403,
            f"Cross-origin write refused (Sec-Fetch-Site: same-site): {method} from another "
            "origin of this site; list it in BOB_API_ALLOWED_ORIGINS",
        )
    return None


def _opens_page(headers: Mapping[str, str]) -> bool:
    """A followed link or a typed address: a top-level navigation to a page."""
    return (
        headers.get("sec-fetch-mode", "").lower() == "navigate"
        and headers.get("sec-fetch-dest", "").lower() in _PAGE_DESTS
    )


def _check_body(headers: Mapping[str, str]) -> Refusal | None:
    if not has_body(headers):
        return None
    content_type = headers.get("content-type")
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type == JSON:
        return None
    received = f"Content-Type {content_type!r}" if content_type is not None else "no Content-Type"
    return Refusal(415, f"Request body sent with {received}; it must be {JSON}")


def single_headers(raw: Iterable[tuple[bytes, bytes]]) -> dict[str, str] | Refusal:
    """The headers by lower-case name; a Refusal when one the guard reads is repeated
    (which of two Hosts or Origins would the rest of the stack believe?)."""
    headers: dict[str, str] = {}
    for key, value in raw:
        name = key.decode("latin-1").lower()
        if name in headers and name in _SINGLE:
            return Refusal(400, f"More than one {name} header")
        headers[name] = value.decode("latin-1")
    return headers


_SINGLE = frozenset({"host", "origin", "sec-fetch-site", "content-type", "content-length"})


class Guard:
    """The ASGI middleware: answers a refused request itself, in the API's error envelope;
    passes every other one on untouched."""

    def __init__(self, app: App, settings: ApiSettings):
        self.app = app
        self.policy = Policy.from_settings(settings)
        if self.policy.any_host:
            log.warning("BOB_API_ALLOWED_HOSTS=*: the Host check is off (no DNS rebinding guard)")
        log.info("answering %s", self.policy.describe())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = single_headers(scope["headers"])
        refusal = (
            headers
            if isinstance(headers, Refusal)
            else check(self.policy, scope["method"], scope.get("scheme", "http"), headers)
            or check_path(scope["path"])
        )
        if refusal is None:
            return await self.app(scope, receive, send)
        log.warning("refused %s %s: %s", scope["method"], scope["path"], refusal.message)
        body = json.dumps({"message": refusal.message}).encode()
        # The body of a refused request is not read: the connection cannot be reused.
        await send_json(send, refusal.status, body, [(b"connection", b"close")])
