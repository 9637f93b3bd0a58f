"""SSRF through plugin URLs, end to end: a cluster whose API is bound beyond loopback
(tokens mode) and whose runner refuses private plugin addresses, with `localhost` on the
operator's allow-list (BOB_PLUGIN_ALLOWED_NETWORKS). A canary HTTP server on 127.0.0.1
stands for an internal service: whatever a plugin URL, a run or a health check tries,
it must never be hit, and nothing about it may come back to the caller."""

from __future__ import annotations

import io
import tarfile
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from devcluster.cluster import free_port
from tests.e2e.runner_cluster import Bob, run_detail, runner_cluster, runner_id
from tests.support.http_stub import Answer, plugin_server

pytestmark = pytest.mark.e2e
IMAGE = "bob-test/busybox:latest"
QUICK = {"image": IMAGE, "steps": [{"cmd": "echo quick"}]}
SECRET = "canary-internal-secret"
# What a caller may never see of an internal service or of how a connection failed.
LEAKS = (SECRET, "Connection", "refused", "Errno", "127.0.0.1", "resolves to")


class Canary:
    """An internal service on 127.0.0.1 that counts every request, whatever its method."""

    def __init__(self) -> None:
        self.hits = 0
        canary = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                canary.hits += 1
                body = SECRET.encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_DELETE = _answer  # noqa: N815

            def log_message(self, *_args) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def closed_port() -> int:
    """A port nothing listens on, which no service of a test cluster is given either."""
    return free_port()


@pytest.fixture(scope="module")
def canary() -> Iterator[Canary]:
    c = Canary()
    yield c
    c.close()


@pytest.fixture(scope="module")
def bob(rabbitmq_available, docker_client, tmp_path_factory) -> Iterator[Bob]:
    tmp = tmp_path_factory.mktemp("ssrf")
    # Bound to every interface, so reachable from other hosts (the tests send to
    # 127.0.0.1 only); its plugins on loopback are refused unless allow-listed.
    env = {
        "BOB_API_HOST": "0.0.0.0",
        "BOB_API_AUTH": "tokens",
        "BOB_PLUGIN_ALLOWED_NETWORKS": "localhost",
    }
    runner = {"BOB_RUNNER_ID": runner_id("ssrf"), "BOB_RUNNER_PLUGIN_PRIVATE_ADDRESSES": "false"}
    with runner_cluster(tmp, [runner], env=env, plugins=True) as b:
        yield b


@pytest.fixture(scope="module")
def tally() -> Iterator[dict[str, int]]:
    counts = {"attempts": 0, "refused_at_registration": 0, "leaks": 0}
    yield counts


@pytest.fixture
def unique() -> str:
    return f"s-{uuid.uuid4().hex[:8]}"


def _leaks(text: str) -> list[str]:
    return [word for word in LEAKS if word in text]


@pytest.mark.parametrize(
    ("url", "named"),
    [
        ("http://user:pw@127.0.0.1:9/", "user-info"),
        ("http://127.0.0.1:9/#", "fragment"),
        ("http://127.0.0.1:9/?x=1", "query"),
        ("ftp://127.0.0.1:9/", "http"),
        ("file:///etc/passwd", "http"),
        ("http://169.254.169.254/latest/meta-data/", "metadata"),
        ("http://metadata.google.internal/", "metadata"),
    ],
)
def test_a_plugin_url_beyond_scheme_host_and_path_is_refused_at_registration(
    bob, unique, tally, url, named
):
    tally["attempts"] += 1
    for kind in ("resource-providers", "artifact-stores", "loggers"):
        r = bob.http.post(f"/{kind}", json={"name": unique, "url": url})
        assert r.status_code == 400, (kind, url, r.text)
        assert named in r.json()["message"] and "pw" not in r.json()["message"]
    tally["refused_at_registration"] += 1
    listed = bob.http.get("/artifact-stores", params={"name": unique}).json()["message"]
    assert listed == []


def test_the_api_fetches_no_internal_artifact_and_answers_alike_for_any_port(
    bob, unique, canary, tally
):
    bob.create_pipeline("ssrf", unique, QUICK)
    run_id = bob.start("ssrf", unique)
    answers = []
    for name, url in [
        (f"{unique}-open", canary.url),
        (f"{unique}-closed", f"http://127.0.0.1:{closed_port()}"),
        (f"{unique}-v4mapped", canary.url.replace("127.0.0.1", "[::ffff:127.0.0.1]")),
    ]:
        tally["attempts"] += 1
        assert bob.http.post(f"/artifact-stores/{name}", json={"url": url}).status_code == 202
        base = f"/pipelines/groups/ssrf/names/{unique}/runs/{run_id}/artifact-stores/{name}"
        r = bob.http.get(f"{base}/artifact/x")
        bob.http.delete(f"/artifact-stores/{name}")
        answers.append((r.status_code, r.json()["message"].replace(name, "<store>")))
        tally["leaks"] += len(_leaks(r.text))

    assert canary.hits == 0
    # An open and a closed port answer alike: no port scanning through the API.
    assert answers == [(503, "Artifact store '<store>' is unreachable")] * 3
    assert tally["leaks"] == 0


def test_a_run_reaches_no_internal_provider_or_store(bob, unique, canary, tally):
    bob.http.post("/resource-providers", json={"name": unique, "url": canary.url})
    bob.http.post("/artifact-stores", json={"name": unique, "url": canary.url})
    fetching = {
        "image": IMAGE,
        "resources": [{"name": "src", "type": "external", "provider": unique}],
        "steps": [{"cmd": "ls", "needs_resource": "src"}],
    }
    posting = {
        "image": IMAGE,
        "steps": [
            {
                "cmd": "mkdir -p out && echo x > out/x",
                "produces_artifact": {"name": "out", "path": "out", "store": unique},
            }
        ],
    }
    reasons = {}
    for kind, body in (("fetch", fetching), ("post", posting)):
        tally["attempts"] += 1
        bob.create_pipeline("ssrf", f"{unique}-{kind}", body)
        run_id = bob.start("ssrf", f"{unique}-{kind}")
        assert bob.wait_terminal(run_id, timeout=120) == "failed"
        reasons[kind] = run_detail(bob, "ssrf", f"{unique}-{kind}", run_id)["reason"]
        bob.http.delete(f"/pipelines/groups/ssrf/names/{unique}-{kind}")
    bob.http.delete(f"/resource-providers/{unique}")
    bob.http.delete(f"/artifact-stores/{unique}")

    assert canary.hits == 0
    assert f"could not reach resource provider '{unique}'" in reasons["fetch"], reasons
    assert f"could not reach artifact store '{unique}'" in reasons["post"], reasons
    assert not _leaks(reasons["fetch"] + reasons["post"]), reasons


def test_a_providers_error_body_stays_out_of_the_runs_reason(bob, unique, canary, tally):
    tally["attempts"] += 1
    with plugin_server() as provider:
        provider.routes["/bob_resource"] = Answer(500, f"stack trace: {SECRET}".encode())
        # localhost is on the allow-list: the runner may reach this one.
        url = provider.url.replace("127.0.0.1", "localhost")
        bob.http.post("/resource-providers", json={"name": unique, "url": url})
        body = {
            "image": IMAGE,
            "resources": [{"name": "src", "type": "external", "provider": unique}],
            "steps": [{"cmd": "ls", "needs_resource": "src"}],
        }
        bob.create_pipeline("ssrf", unique, body)
        run_id = bob.start("ssrf", unique)
        assert bob.wait_terminal(run_id, timeout=120) == "failed"
        asked = [p for p in provider.requests if p.startswith("/bob_resource")]
    reason = run_detail(bob, "ssrf", unique, run_id)["reason"]
    bob.http.delete(f"/pipelines/groups/ssrf/names/{unique}")
    bob.http.delete(f"/resource-providers/{unique}")

    assert asked, "the allow-listed provider was not asked"
    assert f"resource provider '{unique}' answered 500" in reason, reason
    assert SECRET not in reason
    assert canary.hits == 0


def _artifact_pipeline(store: str, artifact: str, content: str) -> dict:
    step = {
        "cmd": f"mkdir -p out && echo {content} > out/file",
        "produces_artifact": {"name": artifact, "path": "out", "store": store},
    }
    return {"image": IMAGE, "steps": [step]}


def _file_in(tar_bytes: bytes) -> str:
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        for member in tar.getmembers():
            if member.isfile() and member.name.endswith("file"):
                extracted = tar.extractfile(member)
                assert extracted is not None
                return extracted.read().decode().strip()
    return ""


def test_a_run_cannot_post_its_artifact_over_another_runs(bob, unique, tally):
    # The reference store, reached by its allow-listed name.
    store_url = bob.cluster.plugin_urls["local"].replace("127.0.0.1", "localhost")
    bob.http.post("/artifact-stores", json={"name": unique, "url": store_url})
    bob.create_pipeline("ssrf", f"{unique}-victim", _artifact_pipeline(unique, "a", "victim"))
    victim = bob.start("ssrf", f"{unique}-victim")
    assert bob.wait_terminal(victim, timeout=120) == "passed"
    # A name that would climb to another run's path is refused with the pipeline.
    refused = []
    for artifact in (f"../../{unique}-victim/{victim}/a", f"../{victim}/a", "..", "x/../a"):
        tally["attempts"] += 1
        body = _artifact_pipeline(unique, artifact, "evil")
        r = bob.http.post(f"/pipelines/groups/ssrf/names/{unique}-evil", json=body)
        refused.append(r.status_code == 400 and "produces_artifact.name" in r.text)
    # And a plain one goes under the attacker's own run, whatever it is called.
    tally["attempts"] += 1
    bob.create_pipeline("ssrf", f"{unique}-evil", _artifact_pipeline(unique, "a", "evil"))
    evil = bob.start("ssrf", f"{unique}-evil")
    assert bob.wait_terminal(evil, timeout=120) == "passed"
    bob.http.delete(f"/pipelines/groups/ssrf/names/{unique}-evil")
    path = f"/pipelines/groups/ssrf/names/{unique}-victim/runs/{victim}/artifact-stores/{unique}"
    kept = bob.http.get(f"{path}/artifact/a")
    bob.http.delete(f"/pipelines/groups/ssrf/names/{unique}-victim")
    bob.http.delete(f"/artifact-stores/{unique}")

    assert kept.status_code == 200, kept.text
    assert _file_in(kept.content) == "victim"
    assert refused == [True] * 4


def test_a_dead_plugin_no_pipeline_uses_is_listed_without_failing_health(
    bob, unique, canary, tally
):
    tally["attempts"] += 2
    dead = f"http://localhost:{closed_port()}"
    bob.http.post("/resource-providers", json={"name": f"{unique}-dead", "url": dead})
    bob.http.post("/artifact-stores", json={"name": f"{unique}-canary", "url": canary.url})
    health = bob.http.get("/can-we-build-it")
    bob.http.delete(f"/resource-providers/{unique}-dead")
    bob.http.delete(f"/artifact-stores/{unique}-canary")

    assert health.status_code == 200, health.text
    degraded = "\n".join(health.json().get("degraded", []))
    assert f"resource provider {unique}-dead: not answering" in degraded
    assert f"artifact store {unique}-canary: not answering" in degraded
    assert not _leaks(health.text)
    assert canary.hits == 0
    print(
        f"limits[ssrf]: attempts={tally['attempts']} fetched_internal={canary.hits} "
        f"refused_at_registration={tally['refused_at_registration']} "
        f"leaked_details={tally['leaks']}",
        flush=True,
    )
