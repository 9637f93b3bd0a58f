"""The URLs of Bob's plugin contracts, built in one place from a plugin's registered URL:

- resource provider: `GET {url}/bob_resource?{params}` answers a tar;
- artifact store: `POST|GET|DELETE {url}/bob_artifact/{group}/{name}/{run_id}/{artifact}`
  carries a tar of the artifact's path;
- logger: `PUT {url}/bob_logs/{run_id}` appends log lines;
- every plugin: `GET {url}/ping` answers 200 while it is healthy.

Each name is one quoted path segment: a `/`, `?`, `#` or space in it cannot change which
path is asked, and a name that is only dots (`..`) is escaped so that no client resolves
it against the path before it.

A plugin's URL carries no user-info: registration refuses it (bob_common.plugin_policy).
A URL stored before that rule may still hold a password (`http://user:password@host/`),
so listings and logs show URLs as `without_credentials` gives them."""

from __future__ import annotations

import re
from urllib.parse import quote

# The user-info of a URL's authority: everything up to its last "@" before the path.
_USER_INFO = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<info>[^/?#]*)@")
HIDDEN = "***"


def _base(plugin_url: str) -> str:
    return plugin_url.rstrip("/")


def _segments(*names: str) -> str:
    quoted = (quote(name, safe="") for name in names)
    # quote() leaves dots alone, and "." or ".." as a segment is a step up or nowhere.
    return "/".join(q.replace(".", "%2E") if q.strip(".") == "" else q for q in quoted)


def resource_url(provider_url: str) -> str:
    """Where a provider's tar is fetched; the resource's params go in the query."""
    return f"{_base(provider_url)}/bob_resource"


def artifact_url(store_url: str, group: str, name: str, run_id: str, artifact: str) -> str:
    return f"{_base(store_url)}/bob_artifact/{_segments(group, name, run_id, artifact)}"


def log_url(logger_url: str, run_id: str) -> str:
    return f"{_base(logger_url)}/bob_logs/{_segments(run_id)}"


def ping_url(plugin_url: str) -> str:
    return f"{_base(plugin_url)}/ping"


def without_credentials(url: str) -> str:
    """`url` as it may be shown: a password in its user-info replaced by ***, and so is
    a user name given alone (`https://TOKEN@host/` is how tokens are often passed);
    a URL without user-info is returned as it is."""
    match = _USER_INFO.match(url)
    if match is None:
        return url
    user, has_password, _ = match["info"].partition(":")
    shown = f"{user}:{HIDDEN}" if has_password else HIDDEN
    return f"{match['scheme']}{shown}@{url[match.end() :]}"
