"""What a plugin URL may be, and which addresses Bob may connect to for a plugin.

A plugin (resource provider, artifact store, logger) is an HTTP service anyone with the
right to register one names by URL, and the API and the runners then connect to it: a URL
to an internal service would make Bob a proxy into the network it runs in (SSRF). So:

- the URL itself (`url_problem`, checked once at registration): http(s), a host, and
  nothing else in the authority or after the path: no user-info, query or fragment;
- the addresses connected to (`AddressPolicy`, checked on the addresses a name resolves
  to, at each connection, so that a name re-pointed after registration (DNS rebinding)
  is caught too): link-local and cloud-metadata addresses never; loopback and private
  addresses only where same-machine plugins are the normal case (a loopback-only API,
  a runner set so) or an operator's allow-list names them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Cloud instance metadata services: their answers hold the host's credentials.
METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata.goog", "metadata"})
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200", "169.254.170.2")
)
LINK_LOCAL = tuple(ipaddress.ip_network(n) for n in ("169.254.0.0/16", "fe80::/10"))
# Loopback, RFC 1918, carrier-grade NAT, IPv6 unique local, and "this host" (0.0.0.0
# connects to the local machine on Linux).
PRIVATE = tuple(
    ipaddress.ip_network(n)
    for n in (
        "127.0.0.0/8",
        "::1/128",
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",
        "fc00::/7",
        "0.0.0.0/8",
        "::/128",
    )
)


def url_problem(url: str) -> str | None:
    """What is wrong with `url` as a plugin's URL, or None. The text never repeats the
    user-info, which may be a password."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError:
        return "is not a valid URL"
    if parts.scheme not in ("http", "https"):
        return "must be an http:// or https:// URL"
    if "@" in parts.netloc:
        return "must not carry user-info (user:password@)"
    if not parts.hostname:
        return "has no host"
    # Also an empty query or fragment ("...?", "...#"), which urlsplit reports as none.
    if "?" in url:
        return "must not carry a query (?...)"
    if "#" in url:
        return "must not carry a fragment (#...)"
    if parts.hostname.rstrip(".").lower() in METADATA_HOSTS:
        return "names a cloud metadata service"
    # An address given as such is refused now if it always would be; a name, and a
    # private address, are judged where Bob connects (AddressPolicy).
    try:
        address = ipaddress.ip_address(parts.hostname)
    except ValueError:
        return None
    if why := ALWAYS.refusal(parts.hostname, str(address)):
        return f"names {why}"
    return None


def _unmapped(address: IpAddress) -> IpAddress:
    """::ffff:127.0.0.1 is 127.0.0.1 to the kernel, and so it is here."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def parse_allowed(items: Iterable[str]) -> tuple[tuple[IpNetwork, ...], frozenset[str]]:
    """The networks (CIDRs or single addresses) and host names of an allow-list;
    ValueError for an item that is neither."""
    networks: list[IpNetwork] = []
    names: set[str] = set()
    for item in items:
        item = item.strip().lower()
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item.strip("[]"), strict=False))
        except ValueError:
            if "/" in item or ":" in item or "@" in item or " " in item:
                raise ValueError(f"{item!r} is neither a network (CIDR) nor a host name") from None
            names.add(item.rstrip("."))
    return tuple(networks), frozenset(names)


@dataclass(frozen=True)
class AddressPolicy:
    # Loopback and private addresses allowed to every plugin (same-machine plugins).
    allow_private: bool
    # The operator's allow-list: networks and host names whose private addresses are
    # allowed even when allow_private is not. Link-local and metadata never are.
    allowed_networks: tuple[IpNetwork, ...] = ()
    allowed_names: frozenset[str] = frozenset()

    @classmethod
    def of(cls, allow_private: bool, allowed: Iterable[str]) -> AddressPolicy:
        networks, names = parse_allowed(allowed)
        return cls(allow_private, networks, names)

    def refusal(self, host: str, address: str) -> str | None:
        """Why Bob may not connect to `address` (which `host` resolved to), or None."""
        name = host.strip("[]").rstrip(".").lower()
        if name in METADATA_HOSTS:
            return "a cloud metadata service"
        ip = _unmapped(ipaddress.ip_address(address.split("%", 1)[0]))
        if ip in METADATA_ADDRESSES:
            return "a cloud metadata address"
        if any(ip in n for n in LINK_LOCAL):
            return "a link-local address"
        if not any(ip in n for n in PRIVATE) or self.allow_private:
            return None
        if name in self.allowed_names or any(ip in n for n in self.allowed_networks):
            return None
        return (
            "a loopback or private address (an operator may allow it: BOB_PLUGIN_ALLOWED_NETWORKS)"
        )


# What no operator setting lets through.
ALWAYS = AddressPolicy(allow_private=True)
