"""The web page's files (api_server/web_page.py): served from the package by exact name,
GET and HEAD only, with the page's security headers and an ETag; every other path goes on
to the API."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from api_server import web_page
from api_server.web_page import CSP, WebPage

PACKAGE_WEB = Path(web_page.__file__).parent / "web"


async def _api(scope, receive, send):
    """Stands for the rest of the API: answers 299 so that a passed-on request shows."""
    await send({"type": "http.response.start", "status": 299, "headers": []})
    await send({"type": "http.response.body", "body": b"api"})


def _get(method: str, path: str, root: Path = PACKAGE_WEB, **kwargs) -> httpx.Response:
    async def go():
        transport = httpx.ASGITransport(app=WebPage(_api, root))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
            return await c.request(method, path, **kwargs)

    return asyncio.run(go())


def test_the_page_is_at_the_root_with_its_security_headers():
    r = _get("GET", "/")

    assert r.status_code == 200
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert '<script type="module" src="/web/app.js">' in r.text
    assert r.headers["content-security-policy"] == CSP
    for needed in ("default-src 'self'", "script-src 'self'", "frame-ancestors 'none'"):
        assert needed in CSP
    assert "unsafe" not in CSP
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["cache-control"] == "no-cache"


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("/web/app.js", "text/javascript; charset=utf-8"),
        ("/web/vendor/ansi_up.js", "text/javascript; charset=utf-8"),
        ("/web/style.css", "text/css; charset=utf-8"),
        ("/web/vendor/ansi_up.LICENSE.txt", "text/plain; charset=utf-8"),
    ],
)
def test_each_file_has_its_type_and_revalidates_by_etag(path, kind):
    r = _get("GET", path)
    again = _get("GET", path, headers={"If-None-Match": r.headers["etag"]})
    changed = _get("GET", path, headers={"If-None-Match": '"other"'})
    head = _get("HEAD", path)

    assert r.status_code == 200 and r.headers["content-type"] == kind
    assert again.status_code == 304 and again.content == b""
    assert changed.status_code == 200
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(r.content))


def test_unknown_files_and_writes_are_refused_in_the_api_envelope():
    missing = _get("GET", "/web/nope.js")
    write = _get("POST", "/web/app.js", json={})

    assert missing.status_code == 404 and "/web/nope.js" in missing.json()["message"]
    assert write.status_code == 405 and write.headers["allow"] == "GET, HEAD"
    assert "read-only" in write.json()["message"]


def test_other_paths_go_on_to_the_api():
    assert _get("GET", "/pipelines").status_code == 299
    assert _get("GET", "/ui/").status_code == 299
    assert _get("GET", "/webhooks").status_code == 299


def test_only_files_of_known_types_are_served(tmp_path):
    (tmp_path / "index.html").write_text("<!doctype html>")
    (tmp_path / "secret.py").write_text("KEY = 1")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.js").write_text("export {}")

    files = web_page.load(tmp_path)

    assert sorted(files) == ["/", "/web/index.html", "/web/sub/a.js"]


def test_the_vendored_library_is_the_one_its_notes_name():
    notes = (PACKAGE_WEB / "vendor" / "VERSIONS.txt").read_text()
    source = (PACKAGE_WEB / "vendor" / "ansi_up.js").read_text()
    version = notes.split("ansi_up ", 1)[1].split()[0]

    assert f'this.VERSION = "{version}";' in source
    # log_view.js takes ansi_up's parsed fragments by overriding these two (never its HTML)
    for method in (
        "transform_to_html(fragment) {",
        "process_hyperlink(pkt) {",
        "with_state(pkt) {",
    ):
        assert f"    {method}" in source, method
    assert (PACKAGE_WEB / "vendor" / "ansi_up.LICENSE.txt").read_text().startswith("(The MIT")
