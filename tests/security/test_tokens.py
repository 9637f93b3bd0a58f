"""API tokens with roles, against a running cluster in BOB_API_AUTH=tokens mode (real
processes: entities, the API, a runner), used and attacked as a client would: with and
without tokens, with forged, expired, revoked and under-privileged ones, through Bearer,
HTTP Basic and a URL's user-info as Go clients send it; and the API process itself
refusing to serve unauthenticated on a non-loopback address."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from api_server import bootstrap
from bob_common.startup import RET_CONFIG
from devcluster.cluster import Cluster, Service, free_port
from devcluster.test_image import IMAGE
from tests.clients import terraform
from tests.clients.wendy import Wendy
from tests.e2e.runner_cluster import Bob, runner_cluster, runner_id
from tests.waiting import wait_until

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
# Short, so that a revocation made elsewhere is seen within a test's patience.
CACHE_S = 2


@pytest.fixture(scope="module")
def bob(rabbitmq_available, docker_client, tmp_path_factory) -> Iterator[Bob]:
    tmp = tmp_path_factory.mktemp("tokens")
    env = {"BOB_API_AUTH": "tokens", "BOB_API_TOKEN_CACHE_S": str(CACHE_S)}
    with runner_cluster(tmp, [{"BOB_RUNNER_ID": runner_id("tokens")}], env=env) as b:
        yield b


@pytest.fixture(scope="module")
def minted(bob) -> list[str]:
    """Every secret the tests made, to look for where none may be."""
    return [bob.admin_token]


def mint(bob: Bob, minted: list[str], role: str, **extra) -> tuple[str, str]:
    """A new token of `role` made through the API: (id, secret)."""
    body = {"name": f"{role}-{os.urandom(4).hex()}", "role": role, **extra}
    r = bob.http.post("/tokens", json=body)
    assert r.status_code == 201, r.text
    made = r.json()["message"]
    assert made["secret"].startswith("bob_") and made["role"] == role
    minted.append(made["secret"])
    return made["id"], made["secret"]


def anonymous(bob: Bob, **kwargs) -> httpx.Client:
    return httpx.Client(base_url=bob.cluster.api_url, timeout=30, **kwargs)


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def with_user_info(bob: Bob, secret: str, user: str = "token") -> str:
    """The API's URL with the token as user-info, as wendy and Terraform are configured."""
    return bob.cluster.api_url.replace("http://", f"http://{user}:{secret}@")


def refused(r: httpx.Response, status: int, *words: str) -> str:
    assert r.status_code == status, (r.status_code, r.text)
    message = r.json()["message"]
    for word in words:
        assert word in message, message
    return message


# ---------------------------------------------------------------- using tokens


def test_bearer_basic_and_url_user_info_are_each_accepted(bob, minted):
    _, secret = mint(bob, minted, "read")
    with anonymous(bob) as http:
        # Given a read token, sent as a Bearer token
        assert http.get("/pipelines", headers=bearer(secret)).status_code == 200
        # and as the password of HTTP Basic, whatever the user name
        basic = base64.b64encode(f"anyone:{secret}".encode()).decode()
        assert http.get("/pipelines", headers={"Authorization": f"Basic {basic}"}).is_success
        # and as a user name alone (http://SECRET@host)
        alone = base64.b64encode(f"{secret}:".encode()).decode()
        assert http.get("/pipelines", headers={"Authorization": f"Basic {alone}"}).is_success
    # and in the URL's user-info, which the client sends as Basic (as Go's does)
    with httpx.Client(timeout=30) as http:
        r = http.get(with_user_info(bob, secret) + "/cluster/info")
        assert r.status_code == 200, r.text
        assert r.request.headers["Authorization"].startswith("Basic ")


def test_no_token_gets_401_naming_how_to_send_one_even_for_a_status_held_in_memory(bob, minted):
    # Given a run that has ended, whose status the API holds in memory
    name = f"p-{os.urandom(4).hex()}"
    bob.create_pipeline("sec", name, {"image": IMAGE, "steps": [{"cmd": "true"}]})
    run_id = bob.start("sec", name)
    assert bob.wait_terminal(run_id) == "passed"
    with anonymous(bob) as http:
        # When it is asked for without a token, Then 401 says what is missing and how
        r = http.get(f"/pipelines/status/runs/{run_id}")
        refused(r, 401, "A token is required", "Authorization: Bearer", "HTTP Basic")
        challenges = r.headers.get_list("www-authenticate")
        assert any(c.startswith("Bearer") for c in challenges), challenges
        assert any(c.startswith("Basic") for c in challenges), challenges
        # and so are a write, an unknown path and a too-large body: nothing is answered first
        refused(http.post("/pipelines", json={}), 401, "A token is required")
        refused(http.get("/no-such-thing"), 401, "A token is required")
        big = http.post(
            "/pipelines", content=b"x" * (2 << 20), headers={"Content-Type": "application/json"}
        )
        refused(big, 401, "A token is required")
        # And with a read token the status is answered
        _, secret = mint(bob, minted, "read")
        r = http.get(f"/pipelines/status/runs/{run_id}", headers=bearer(secret))
        assert (r.status_code, r.json()["message"]) == (200, "passed")
        # The document and the health check stay open (BOB_API_OPEN_PATHS's default)
        assert http.get("/api.yaml").status_code == 200
        assert http.get("/can-we-build-it").status_code == 200


def test_forged_and_malformed_tokens_get_401_naming_the_problem(bob):
    with anonymous(bob) as http:
        forged = "bob_" + "A" * 43
        refused(http.get("/pipelines", headers=bearer(forged)), 401, "Unknown token")
        r = http.get("/pipelines", headers={"Authorization": "Basic !!notbase64"})
        refused(r, 401, "not base64")
        r = http.get("/pipelines", headers={"Authorization": "Token abc"})
        refused(r, 401, "Unsupported authorization scheme")
        nopass = base64.b64encode(b"alice:").decode()
        r = http.get("/pipelines", headers={"Authorization": f"Basic {nopass}"})
        refused(r, 401, "no password")
        assert 'error="invalid_token"' in r.headers["www-authenticate"]


def test_an_expired_token_gets_401_saying_it_expired(bob, minted):
    # Given a token that expires in 2 s, accepted (and so remembered) while live
    _, secret = mint(bob, minted, "read", expires_in_s=2)
    with anonymous(bob) as http:
        assert http.get("/pipelines", headers=bearer(secret)).status_code == 200
        # When its time is up, Then it is refused at once: the cache never outlives it
        time.sleep(2.2)
        refused(http.get("/pipelines", headers=bearer(secret)), 401, "has expired")
    listed = {t["id"]: t for t in bob.http.get("/tokens").json()["message"]}
    assert all(t["expires-at"] is None or "T" in t["expires-at"] for t in listed.values())


def test_a_token_revoked_through_the_api_is_refused_at_once(bob, minted):
    token_id, secret = mint(bob, minted, "operate")
    with anonymous(bob) as http:
        assert http.get("/pipelines", headers=bearer(secret)).status_code == 200
        r = bob.http.delete(f"/tokens/{token_id}")
        assert r.status_code == 200 and r.json()["message"]["revoked"] is True, r.text
        refused(http.get("/pipelines", headers=bearer(secret)), 401, "was revoked")
    # Revoking an unknown id is a 404, a malformed one a 400
    assert bob.http.delete("/tokens/tok_000000000000").status_code == 404
    assert bob.http.delete("/tokens/nope").status_code == 400


def test_a_role_too_low_gets_403_naming_the_role_needed_and_held(bob, minted):
    _, read = mint(bob, minted, "read")
    _, operate = mint(bob, minted, "operate")
    with anonymous(bob) as http:
        r = http.post("/pipelines/start/groups/sec/names/none", headers=bearer(read))
        refused(r, 403, "needs the operate role", "has the read role")
        # operate may start (the unknown pipeline is the 404), not change pipelines
        r = http.post("/pipelines/start/groups/sec/names/none", headers=bearer(operate))
        assert r.status_code == 404, r.text
        r = http.delete("/pipelines/groups/sec/names/none", headers=bearer(operate))
        refused(r, 403, "needs the admin role", "has the operate role")
        refused(http.get("/tokens", headers=bearer(operate)), 403, "admin")
        refused(http.get("/error", headers=bearer(read)), 403, "admin")


def test_bad_token_requests_get_400(bob):
    for body in (
        {"name": "x", "role": "root"},
        {"name": "", "role": "read"},
        {"name": "x", "role": "read", "expires_in_s": -1},
        {"role": "read"},
        {"name": "x", "role": "read", "secret": "mine"},
    ):
        r = bob.http.post("/tokens", json=body)
        assert r.status_code == 400, (body, r.text)
    name = f"dup-{os.urandom(3).hex()}"
    assert bob.http.post("/tokens", json={"name": name, "role": "read"}).status_code == 201
    r = bob.http.post("/tokens", json={"name": name, "role": "read"})
    assert r.status_code == 409 and name in r.json()["message"], r.text


# ---------------------------------------------------------------- secrets at rest


def test_secrets_are_never_listed_and_stored_only_as_sha256(bob, minted):
    mint(bob, minted, "admin")
    listed = bob.http.get("/tokens")
    assert listed.status_code == 200
    for secret in minted:
        assert secret not in listed.text
        assert hashlib.sha256(secret.encode()).hexdigest() not in listed.text
    assert all("secret" not in t for t in listed.json()["message"])
    # The database (and its write-ahead log) holds each token's SHA-256, never the token
    db = Path(bob.cluster.api.env["BOB_DB_URL"].removeprefix("sqlite:///"))
    raw = b"".join(p.read_bytes() for p in db.parent.glob(db.name + "*"))
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        stored = {h for (h,) in conn.execute("SELECT token_hash FROM api_tokens")}
    for secret in minted:
        assert secret.encode() not in raw
        assert hashlib.sha256(secret.encode()).hexdigest() in stored
    # Nor does any service log one, but for the bootstrap line that prints it once
    logged = [line for line in bob.log_path.read_text().splitlines() if bootstrap.MARK not in line]
    leaked = [s for s in minted if any(s in line for line in logged)]
    assert not leaked, "tokens in the services' logs"


def test_the_bootstrap_token_is_printed_once_and_never_again(bob):
    api = bob.cluster.api
    marked = [line for line in api.lines if bootstrap.MARK in line]
    assert len(marked) == 1 and bob.admin_token in marked[0], marked
    # When the API restarts, a live admin token exists: nothing new is made or printed
    api.signal(signal.SIGTERM)
    api.wait(15)
    bob.cluster.start_service(api)
    bob.cluster.wait_healthy(30)
    wait_until(
        lambda: any("a live admin token exists" in line for line in api.lines),
        timeout=30,
        what="the restarted API to look for an admin token",
        describe=bob.logs_tail,
    )
    assert [line for line in api.lines if bootstrap.MARK in line] == marked
    # and the first token still works
    assert bob.http.get("/tokens").status_code == 200


# ---------------------------------------------------------------- the command line


def _cli(bob: Bob, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "api_server", "tokens", *args],
        cwd=ROOT,
        env=bob.cluster.api.env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_command_line_creates_lists_and_revokes_tokens(bob, minted):
    # Given a token created on the command line: its secret alone on stdout
    name = f"cli-{os.urandom(3).hex()}"
    made = _cli(bob, "create", "--name", name, "--role", "operate", "--expires-in", "1d")
    assert made.returncode == 0, made.stderr
    secret = made.stdout.strip()
    minted.append(secret)
    assert secret.startswith("bob_") and "\n" not in secret
    assert name in made.stderr and secret not in made.stderr
    with anonymous(bob) as http:
        assert http.get("/pipelines", headers=bearer(secret)).status_code == 200
        # Then it is listed, without its secret
        listed = _cli(bob, "list")
        assert listed.returncode == 0, listed.stderr
        [row] = [line for line in listed.stdout.splitlines() if name in line]
        assert "operate" in row and "live" in row and secret not in listed.stdout
        token_id = row.split()[0]
        # When it is revoked there, Then the API refuses it within its cache time
        revoked = _cli(bob, "revoke", token_id)
        assert revoked.returncode == 0 and token_id in revoked.stdout, revoked.stderr
        wait_until(
            lambda: http.get("/pipelines", headers=bearer(secret)).status_code == 401,
            timeout=CACHE_S + 3,
            what="the revoked token to be refused",
        )
    # A bad request is refused, naming the problem
    bad = _cli(bob, "revoke", "tok_000000000000")
    assert bad.returncode == 1 and "not found" in bad.stderr


# ---------------------------------------------------------------- Bob's clients


def test_wendy_authenticates_with_the_token_in_its_endpoints_user_info(bob, minted, tmp_path):
    _, secret = mint(bob, minted, "admin")
    # Given wendy configured with endpoint http://token:SECRET@host:port
    wendy = Wendy(with_user_info(bob, secret), cwd=tmp_path)
    started = wendy.bootstrap()
    assert started.exit_code == 0, started.report()
    # When it creates and lists pipelines, Then each request carried the token
    spec = '{"group": "wendy", "name": "auth", "image": "busybox", "steps": [{"cmd": "true"}]}'
    made = wendy.run("pipelines", "create", "--spec", spec)
    assert made.exit_code == 0, made.report()
    listed = wendy.run("pipelines", "list", "--group", "wendy")
    assert listed.exit_code == 0, listed.report()
    assert [p["name"] for p in listed.printed] == ["auth"]
    # And without a token wendy reports the 401 and exits 1
    bare = Wendy(bob.cluster.api_url, cwd=tmp_path)
    assert bare.bootstrap().exit_code == 0  # the document is open
    denied = bare.run("pipelines", "list")
    assert denied.exit_code == 1 and "Status: 401" in (denied.error or ""), denied.report()


def test_terraform_authenticates_with_the_token_in_the_providers_url(bob, minted):
    _, secret = mint(bob, minted, "admin")
    provider = terraform.Provider(with_user_info(bob, secret), reconcile_interval_ms=200)
    try:
        plugin = terraform.Plugin(f"tf-{os.urandom(3).hex()}", "http://127.0.0.1:9/")
        state = provider.create_plugin(terraform.RESOURCE_PROVIDER, plugin)
        assert state["url"] == plugin.url, provider.report()
        provider.delete_plugin(terraform.RESOURCE_PROVIDER, state)
    finally:
        provider.close()
    # A read token's writes are refused: the reconcile loop never converges
    _, read = mint(bob, minted, "read")
    reader = terraform.Provider(with_user_info(bob, read), reconcile_retries=2)
    try:
        with pytest.raises(terraform.TerraformError, match="timeout"):
            reader.create_plugin(terraform.RESOURCE_PROVIDER, terraform.Plugin("tf-ro", "http://x"))
        assert reader.exchanges[0].status == 403, reader.report()
    finally:
        reader.close()


# ---------------------------------------------------------------- modes at start-up


@contextlib.contextmanager
def api_process(bob: Bob, tmp_path: Path, **env: str) -> Iterator[tuple[Service, str]]:
    """A second API process on the cluster's entities, with `env` on top, once healthy:
    (it, its URL on loopback)."""
    port = free_port()
    service = Service(
        "api-alone",
        "api_server",
        {**bob.cluster.api.env, "BOB_API_PORT": str(port), **env},
    )
    url = f"http://127.0.0.1:{port}"
    with (tmp_path / "api.log").open("w") as sink:
        service.start(sink, threading.Lock())
        try:
            Cluster.wait_url(f"{url}/can-we-build-it", 30, [service])
            yield service, url
        finally:
            service.signal(signal.SIGTERM)
            service.wait(15)


def test_the_api_refuses_to_serve_without_tokens_on_a_non_loopback_address(bob):
    done = subprocess.run(
        [sys.executable, "-m", "api_server"],
        cwd=ROOT,
        env={**bob.cluster.api.env, "BOB_API_HOST": "0.0.0.0", "BOB_API_AUTH": "none"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == RET_CONFIG, done.stderr
    assert "refusing to serve without tokens on 0.0.0.0" in done.stderr
    assert "BOB_API_ALLOW_UNAUTHENTICATED" in done.stderr


def test_with_the_override_it_serves_with_a_loud_warning_and_still_checks_tokens(
    bob, minted, tmp_path
):
    with api_process(
        bob,
        tmp_path,
        BOB_API_HOST="0.0.0.0",
        BOB_API_AUTH="none",
        BOB_API_ALLOW_UNAUTHENTICATED="true",
    ) as (service, url):
        assert any(
            "WARNING" in line and "UNAUTHENTICATED API on 0.0.0.0" in line for line in service.lines
        ), service.lines
        with httpx.Client(base_url=url, timeout=30) as http:
            # No token: anything goes (that is what the override accepts)
            assert http.get("/pipelines").status_code == 200
            # A presented token is still checked: forged 401, a read token's write 403
            refused(http.get("/pipelines", headers=bearer("bob_forged")), 401, "Unknown")
            _, read = mint(bob, minted, "read")
            r = http.delete("/pipelines/groups/a/names/b", headers=bearer(read))
            refused(r, 403, "needs the admin role")


def test_a_non_loopback_api_requires_tokens_by_default(bob, tmp_path):
    with (
        api_process(bob, tmp_path, BOB_API_HOST="0.0.0.0", BOB_API_AUTH="") as (_, url),
        httpx.Client(base_url=url, timeout=30) as http,
    ):
        refused(http.get("/pipelines"), 401, "A token is required")
        assert http.get("/pipelines", headers=bearer(bob.admin_token)).status_code == 200
