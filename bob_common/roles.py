"""The roles an API token carries, and what each may do.

Roles are ordered: each holds every right of the ones below it, so "may this role call
that operation" is one comparison. `read` reads pipelines, runs, logs, artifacts and the
cluster; `operate` also starts, stops, pauses and resumes; `admin` also writes pipelines
and plugins, manages tokens and pops system errors. Every operation of the API names the
role it needs (`x-bob-role` in api_server/openapi.yaml), or `open` for none. The values
equal bob.v1.TokenRole's, so a protobuf field takes them and int() converts.
"""

from __future__ import annotations

import enum


class Role(enum.IntEnum):
    """Mirrors bob.v1.TokenRole value for value; a higher value holds every lower right."""

    READ = 1
    OPERATE = 2
    ADMIN = 3

    @property
    def label(self) -> str:
        """Its name as users write it: "read", "operate", "admin"."""
        return self.name.lower()


# What an operation that needs no token declares instead of a role.
OPEN = "open"

NAMES: tuple[str, ...] = tuple(role.label for role in Role)


def parse(name: str) -> Role:
    """The role named `name` ("read", "operate" or "admin"); ValueError naming the
    choices otherwise."""
    try:
        return Role[name.upper()]
    except KeyError:
        raise ValueError(f"unknown role {name!r}: one of {', '.join(NAMES)}") from None


def allows(held: Role, needed: Role) -> bool:
    """Whether a token with role `held` may call an operation that needs `needed`."""
    return held >= needed
