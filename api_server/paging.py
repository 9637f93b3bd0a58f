"""Lists in pages at the API (issue 10): the `limit` and `cursor` query parameters, and
the next page's cursor in headers (`Link: <...>; rel="next"` and `X-Next-Cursor`), so
that Bob's JSON answers keep their shape."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from connexion import request

from api_server import backends
from api_server.problems import ApiError
from bob_common import pages

T = TypeVar("T")


def limit_of(limit: int | None) -> int:
    """The page size asked for, or the API's default (BOB_API_PAGE_LIMIT)."""
    return limit if limit else backends.current().settings.page_limit


def after_key(cursor: str | None, parts: int) -> list[str] | None:
    """The key a page starts after, from the client's cursor; 400 for a bad one."""
    if not cursor:
        return None
    try:
        return pages.decode_cursor(cursor, parts)
    except pages.BadCursor as exc:
        raise ApiError(400, str(exc)) from exc


def next_headers(last_key: list[str] | None) -> dict[str, str]:
    """The headers that point at the page after the one ending at last_key; none when
    this page is the last (last_key None)."""
    if last_key is None:
        return {}
    cursor = pages.encode_cursor(last_key)
    url = request.url.include_query_params(cursor=cursor)
    return {"Link": f'<{url}>; rel="next"', "X-Next-Cursor": cursor}


def slice_page(
    items: Sequence[T], key: Callable[[T], list[str]], limit: int | None, cursor: str | None
) -> tuple[list[T], dict[str, str]]:
    """A page of a short list entities answers whole (plugins, tokens, secrets: small
    items an admin makes): those after the cursor's key in key order, and the headers
    naming the next page. Keyed, not counted, so that a deletion between two pages
    skips nothing."""
    ordered = sorted(items, key=key)
    if cursor:
        after = after_key(cursor, len(key(ordered[0])) if ordered else 1)
        ordered = [item for item in ordered if key(item) > (after or [])]
    size = limit_of(limit)
    page = ordered[:size]
    return page, next_headers(key(page[-1]) if len(ordered) > size else None)
