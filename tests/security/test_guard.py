"""The API's safe defaults against a running cluster, driven as a web page in the
operator's browser would drive it (and as curl does): DNS rebinding, cross-site form
posts and body-less writes, `Sec-Fetch-Site`, non-JSON bodies; plugin URLs listed
without their credentials while runs still use them; the database its owner's only; and
no secret in any service's log."""

from __future__ import annotations

import base64
import io
import os
import stat
import subprocess
import tarfile
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from devcluster.test_image import IMAGE
from tests.clients import terraform
from tests.e2e.runner_cluster import Bob, runner_cluster, runner_id

pytestmark = pytest.mark.e2e

EVIL = "https://evil.example"
FORM = "application/x-www-form-urlencoded"
# A pipeline variable as users put their tokens in them: it must reach the build only.
VAR_SECRET = f"var-{uuid.uuid4().hex}"


@pytest.fixture(scope="module")
def db_path(tmp_path_factory) -> Path:
    # In a directory that does not exist yet: entities makes it.
    return tmp_path_factory.mktemp("guard") / "state" / "bob.db"


@pytest.fixture(scope="module")
def bob(rabbitmq_available, docker_client, db_path) -> Iterator[Bob]:
    env = {"BOB_DB_URL": f"sqlite:///{db_path}"}
    runner = {"BOB_RUNNER_ID": runner_id("guard")}
    with runner_cluster(db_path.parent.parent, [runner], env=env) as b:
        yield b


@pytest.fixture
def pipeline(bob) -> tuple[str, str]:
    """A pipeline of its own that runs quickly."""
    name = f"g-{uuid.uuid4().hex[:8]}"
    bob.create_pipeline("guard", name, {"image": IMAGE, "steps": [{"cmd": "echo hi"}]})
    return "guard", name


def _api(bob: Bob) -> tuple[str, str]:
    """The API's origin and its Host header value."""
    parts = urlsplit(bob.cluster.api_url)
    return f"{parts.scheme}://{parts.netloc}", parts.netloc


def _runs(bob: Bob, group: str, name: str) -> list:
    r = bob.http.get(f"/pipelines/groups/{group}/names/{name}/runs")
    assert r.status_code == 200, r.text
    return r.json()["message"]


def _paused(bob: Bob, group: str, name: str) -> bool:
    r = bob.http.get("/pipelines", params={"group": group, "name": name})
    assert r.status_code == 200, r.text
    [found] = r.json()["message"]
    return bool(found.get("paused"))


def _refused(r: httpx.Response, status: int, *words: str) -> None:
    assert r.status_code == status, r.text
    message = r.json()["message"]
    for word in words:
        assert word in message, message


# ---------------------------------------------------------------- DNS rebinding


def test_a_rebound_host_name_is_refused_and_starts_nothing(bob, pipeline):
    # Given a page at rebind.evil.example whose name now resolves to the API's address
    group, name = pipeline
    port = urlsplit(bob.cluster.api_url).port
    rebound = {"Host": f"rebind.evil.example:{port}"}

    # When its script reads the pipelines and starts one, same-origin as far as it knows
    read = bob.http.get("/pipelines", headers=rebound)
    start = bob.http.post(f"/pipelines/start/groups/{group}/names/{name}", headers=rebound)

    # Then both are refused, naming the host and the setting, and no run was started
    _refused(read, 421, "rebind.evil.example", "BOB_API_ALLOWED_HOSTS")
    _refused(start, 421, "rebind.evil.example")
    assert _runs(bob, group, name) == []


def test_loopback_names_reach_the_api(bob):
    port = urlsplit(bob.cluster.api_url).port
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}"):
        r = bob.http.get("/pipelines", headers={"Host": host})
        assert r.status_code == 200, (host, r.text)


# ---------------------------------------------------------------- cross-site writes


def test_a_cross_site_form_post_is_refused_and_starts_nothing(bob, pipeline):
    # Given a form on evil.example that posts to the API (no preflight for a form)
    group, name = pipeline

    # When the browser submits it
    r = bob.http.post(
        f"/pipelines/start/groups/{group}/names/{name}",
        content=b"runner%2Ftype=shell",
        headers={"Content-Type": FORM, "Origin": EVIL, "Sec-Fetch-Site": "cross-site"},
    )

    # Then it is refused for its origin, and no run was started
    _refused(r, 403, EVIL, "BOB_API_ALLOWED_ORIGINS")
    assert _runs(bob, group, name) == []


def test_body_less_posts_with_a_foreign_origin_neither_start_nor_pause(bob, pipeline):
    group, name = pipeline
    foreign = {"Origin": EVIL}

    start = bob.http.post(f"/pipelines/start/groups/{group}/names/{name}", headers=foreign)
    pause = bob.http.post(f"/pipelines/pause/groups/{group}/names/{name}", headers=foreign)
    null = bob.http.post(
        f"/pipelines/pause/groups/{group}/names/{name}", headers={"Origin": "null"}
    )

    _refused(start, 403, EVIL)
    _refused(pause, 403, EVIL)
    _refused(null, 403, "'null'")
    assert not _paused(bob, group, name)
    assert _runs(bob, group, name) == []


def test_a_cross_site_request_without_origin_is_refused_by_sec_fetch_site(bob, pipeline):
    # Given requests a browser marks cross-site (an <img> has no Origin header)
    group, name = pipeline
    cross = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors"}

    pause = bob.http.post(f"/pipelines/pause/groups/{group}/names/{name}", headers=cross)
    error = bob.http.get("/error", headers=cross)  # GET /error pops an error: a write

    _refused(pause, 403, "cross-site")
    _refused(error, 403, "cross-site")
    assert not _paused(bob, group, name)


def test_the_apis_own_pages_may_write_as_a_browser_sends_it(bob, pipeline):
    # Given the API's Swagger UI, open in the browser at the API's own origin
    group, name = pipeline
    origin, host = _api(bob)
    same = {"Origin": origin, "Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "cors"}

    # When it pauses and unpauses the pipeline, and reads it
    paused = bob.http.post(f"/pipelines/pause/groups/{group}/names/{name}", headers=same)
    assert paused.status_code == 202, paused.text
    assert _paused(bob, group, name)
    resumed = bob.http.post(f"/pipelines/unpause/groups/{group}/names/{name}", headers=same)

    # Then both went through, as did a link to the UI followed from another site
    assert resumed.status_code == 202, resumed.text
    assert not _paused(bob, group, name)
    link = {
        "Sec-Fetch-Site": "cross-site",
        "Sec-Fetch-Mode": "navigate",
        "Sec-Fetch-Dest": "document",
    }
    assert bob.http.get("/ui/", headers=link).status_code == 200


def test_curl_without_origin_writes_and_starts_runs_with_body_less_posts(bob, pipeline):
    # Given curl, which sends no Origin, no Sec-Fetch-* and no Content-Type without a body
    group, name = pipeline
    url = bob.cluster.api_url

    def curl(*args: str) -> tuple[int, str]:
        out = subprocess.run(
            ["curl", "-sS", "-o", "-", "-w", "\n%{http_code}", *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
        body, _, code = out.rpartition("\n")
        return int(code), body

    # When it pauses and unpauses the pipeline, starts it, and posts a JSON body
    assert curl("-X", "POST", f"{url}/pipelines/pause/groups/{group}/names/{name}")[0] == 202
    assert curl("-X", "POST", f"{url}/pipelines/unpause/groups/{group}/names/{name}")[0] == 202
    code, body = curl("-X", "POST", f"{url}/pipelines/start/groups/{group}/names/{name}")
    created = curl(
        "-X",
        "POST",
        "-H",
        "Content-Type: application/json",
        "--data",
        f'{{"image": "{IMAGE}", "steps": [{{"cmd": "true"}}]}}',
        f"{url}/pipelines/groups/{group}/names/{name}-curl",
    )

    # Then all went through, and the run it started ran
    assert code == 202, body
    assert created[0] == 202, created[1]
    run_id = httpx.Response(200, content=body).json()["message"]
    assert bob.wait_terminal(run_id) == "passed"


def test_a_body_not_sent_as_json_is_refused_with_415(bob, pipeline):
    group, name = pipeline
    definition = f'{{"image": "{IMAGE}", "steps": [{{"cmd": "true"}}]}}'.encode()
    plain = {"Content-Type": "text/plain"}

    # When JSON is posted as text/plain (what a form with enctype=text/plain sends), to
    # an operation that takes a body and to one that takes none
    created = bob.http.post(
        f"/pipelines/groups/{group}/names/{name}-2", content=definition, headers=plain
    )
    paused = bob.http.post(
        f"/pipelines/pause/groups/{group}/names/{name}", content=b"x", headers=plain
    )

    # Then both are refused naming the type received and the one expected, with no effect
    _refused(created, 415, "'text/plain'", "application/json")
    _refused(paused, 415, "'text/plain'", "application/json")
    listed = bob.http.get("/pipelines", params={"group": group, "name": f"{name}-2"})
    assert listed.json()["message"] == []
    assert not _paused(bob, group, name)


# ---------------------------------------------------------------- plugin credentials


@dataclass
class AuthedProvider:
    """A resource provider that answers only with its Basic credentials."""

    url: str  # with the credentials in its user-info
    password: str
    answered: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)


def _tar(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for path, data in files.items():
            info = tarfile.TarInfo(path)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


@contextmanager
def authed_provider() -> Iterator[AuthedProvider]:
    password = f"pw-{uuid.uuid4().hex}"
    expected = "Basic " + base64.b64encode(f"bob:{password}".encode()).decode()
    archive = _tar({"hello.txt": b"hello from the provider\n"})
    state = AuthedProvider(url="", password=password)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            path = self.path.split("?", 1)[0]
            if self.headers.get("Authorization") != expected:
                state.refused.append(path)
                self.send_response(401)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            state.answered.append(path)
            body = b"Ack" if path == "/ping" else archive
            self.send_response(200 if path in ("/ping", "/bob_resource") else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://bob:{password}@127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def test_a_plugin_url_with_credentials_is_refused_and_its_password_never_shown(bob):
    # Plugin URLs carry no user-info (issue 10, README: Plugin URLs).
    with authed_provider() as provider:
        # Given a resource provider whose URL carries its credentials
        plugin = f"authed-{uuid.uuid4().hex[:8]}"

        # When it is registered
        r = bob.http.post("/resource-providers", json={"name": plugin, "url": provider.url})

        # Then it is refused, naming the user-info but not repeating the password
        assert r.status_code == 400, r.text
        assert "user-info" in r.json()["message"]
        assert provider.password not in r.text
        by_name = bob.http.get("/resource-providers", params={"name": plugin})
        assert by_name.json()["message"] == []
        assert provider.answered == [] and provider.refused == []

        # And a run with a secret-looking var does not log it
        name = f"g-{uuid.uuid4().hex[:8]}"
        body = {"image": IMAGE, "vars": {"DEPLOY_TOKEN": VAR_SECRET}, "steps": [{"cmd": "true"}]}
        bob.create_pipeline("guard", name, body)
        run_id = bob.start("guard", name)
        assert bob.wait_terminal(run_id) == "passed", bob.log_lines(run_id)
        # And a pipeline refused for a var of the wrong type (the answer names the value)
        wrong = {**body, "vars": {"DEPLOY_TOKEN": [VAR_SECRET]}}
        refused = bob.http.post(f"/pipelines/groups/guard/names/{name}-x", json=wrong)
        assert refused.status_code == 400, refused.text

    # And no service logged the password, the pipeline's var or the queue's password
    log = bob.log_path.read_text(errors="replace")
    assert provider.password not in log
    assert VAR_SECRET not in log
    queue_password = urlsplit(bob.queue_url).password
    assert queue_password and f":{queue_password}@" not in log


def test_terraform_converges_on_plugins_and_fails_on_ones_with_credentials(bob):
    # Given the Terraform provider with a short reconcile loop
    provider = terraform.Provider(
        bob.cluster.api_url, reconcile_retries=3, reconcile_interval_ms=100
    )
    plain = terraform.Plugin(f"tf-{uuid.uuid4().hex[:8]}", "http://127.0.0.1:9/")
    hidden = terraform.Plugin(f"tf-{uuid.uuid4().hex[:8]}", "http://u:pw-tf@127.0.0.1:9/")
    try:
        # Then a URL without credentials reads back as configured: no drift
        state = provider.create_plugin(terraform.ARTIFACT_STORE, plain)
        assert state["url"] == plain.url
        # And one with credentials is refused (README: Plugin URLs), never registered
        with pytest.raises(terraform.TerraformError):
            provider.create_plugin(terraform.ARTIFACT_STORE, hidden)
        listed = bob.http.get("/artifact-stores", params={"name": hidden.name}).json()
        assert listed["message"] == []
    finally:
        provider.close()
        for plugin in (plain, hidden):
            bob.http.delete(f"/artifact-stores/{plugin.name}")


# ---------------------------------------------------------------- files


def test_the_database_and_its_directory_are_the_owners_only(bob, db_path):
    # Given the cluster has written (the tests above) and WAL side files exist
    assert bob.http.get("/pipelines").status_code == 200
    files = [db_path] + [
        Path(f"{db_path}{s}") for s in ("-wal", "-shm") if os.path.exists(f"{db_path}{s}")
    ]

    # Then only their owner may read them, and the directory made for them
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in files}
    assert modes == dict.fromkeys(modes, 0o600), modes
    assert f"{db_path.name}-wal" in modes
    assert stat.S_IMODE(db_path.parent.stat().st_mode) == 0o700
