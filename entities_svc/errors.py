"""Errors of the entities domain. The servicer maps each to a gRPC status in one table."""

from __future__ import annotations


class EntitiesError(Exception):
    """Base of every domain error; its message is safe to show to the caller."""


class NotFound(EntitiesError):
    """Raised for an unknown pipeline, run, provider or store; the caller answers 404."""


class FailedPrecondition(EntitiesError):
    """Raised when the current state forbids the request (a paused pipeline, active runs,
    a run no longer pending); the caller may retry once the state has changed."""


class Invalid(EntitiesError):
    """Raised for a malformed request (an empty name, a bad URL); retrying cannot help."""


class NotQueued(EntitiesError):
    """Raised when the broker refused a new run's job (its queue is full, or the broker is
    away) and the run was withdrawn; the caller may retry later."""


class Forbidden(EntitiesError):
    """Raised when the caller may not have what it asks for (a run's secrets asked by a
    runner that does not hold its claim); the caller must not retry."""


class AlreadyExists(EntitiesError):
    """Raised when a name is taken (a live API token's); the caller answers 409."""


class Unauthenticated(EntitiesError):
    """Raised for an API token that is unknown, expired or revoked; the API answers 401
    with the message, which says which."""
