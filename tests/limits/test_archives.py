"""Tar bombs and archive caps, end to end: a provider serves each archive of the tar-bomb
corpus (tests/support/tar_bombs.py) to a running cluster, whose Docker and shell runners
must refuse every one with a reason naming its cap or rule, write nothing outside the
workspace, and keep their memory flat; an artifact over its cap fails its run and leaves
nothing in the store."""

from __future__ import annotations

import contextlib
import io
import tarfile
import tempfile
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.e2e.runner_cluster import Bob, run_detail, runner_cluster
from tests.support import tar_bombs

pytestmark = pytest.mark.e2e
IMAGE = "bob-test/busybox:latest"
MiB = 1 << 20
ARTIFACT_MAX = 4 * MiB
DOCKER, SHELL = (f"limits-{kind}-{uuid.uuid4().hex[:8]}" for kind in ("docker", "shell"))
START = {"docker": {}, "shell": {"json": {"runner/type": "shell"}}}
# Where escapes would land: an absolute directory that must never appear.
OUTSIDE = Path(tempfile.gettempdir()) / f"bob-limits-outside-{uuid.uuid4().hex[:8]}"
# The runner's peak memory may grow this much over the whole corpus (the pax bomb alone
# would add 64 MiB if read, the 10k entries several MB each if kept).
RSS_GROWTH_MAX_MB = 48


class BombServer:
    """A resource provider on 127.0.0.1 serving `GET /bob_resource?bomb=<name>`: a fixed
    body, or for the endless gzip bomb a stream that stops only when the reader does."""

    def __init__(self, bombs: dict[str, bytes | None]) -> None:
        self.bombs = bombs
        self.streamed_bytes = 0  # of the endless bomb, what the runners took
        state = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                url = urlsplit(self.path)
                if url.path == "/ping":
                    return self._send(b"Ack")
                name = parse_qs(url.query).get("bomb", [""])[0]
                if url.path != "/bob_resource" or name not in state.bombs:
                    self.send_error(404)
                    return None
                body = state.bombs[name]
                if body is not None:
                    return self._send(body)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-tar")
                self.end_headers()  # HTTP/1.0, no length: the body ends when we stop
                with contextlib.suppress(OSError):
                    for chunk in tar_bombs.zeros_forever():
                        self.wfile.write(chunk)
                        state.streamed_bytes += len(chunk)
                return None

            def _send(self, body: bytes) -> None:
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                with contextlib.suppress(OSError):
                    self.wfile.write(body)

            def log_message(self, *_args) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def __enter__(self) -> BombServer:
        self._thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def _good_tar() -> bytes:
    return tar_bombs.archive(("data.txt", tar_bombs.REG, b"fine\n"))


@pytest.fixture(scope="module")
def corpus() -> list[tar_bombs.Bomb]:
    return tar_bombs.corpus(str(OUTSIDE))


@pytest.fixture(scope="module")
def provider(corpus) -> Iterator[BombServer]:
    bombs = {b.name: b.body for b in corpus} | {"good": _good_tar()}
    with BombServer(bombs) as server:
        yield server


@pytest.fixture(scope="module")
def bob(rabbitmq_available, docker_client, tmp_path_factory, provider) -> Iterator[Bob]:
    caps = tar_bombs.E2E_CAPS
    env = {
        "BOB_RUNNER_ARCHIVE_MAX_BYTES": str(caps["max_bytes"]),
        "BOB_RUNNER_ARCHIVE_MAX_ENTRIES": str(caps["max_entries"]),
        "BOB_RUNNER_ARCHIVE_MAX_HEADER_BYTES": str(caps["max_header_bytes"]),
        "BOB_RUNNER_ARTIFACT_MAX_BYTES": str(ARTIFACT_MAX),
    }
    runners = [{"BOB_RUNNER_ID": DOCKER}, {"BOB_RUNNER_ID": SHELL, "BOB_RUNNER_TYPE": "shell"}]
    with runner_cluster(tmp_path_factory.mktemp("archives"), runners, plugins=True, env=env) as bob:
        for kind, name, url in (
            ("resource-providers", "bombs", provider.url),
            ("artifact-stores", "local", bob.cluster.plugin_urls["local"]),
        ):
            r = bob.http.post(f"/{kind}/{name}", json={"url": url})
            assert r.status_code == 202, r.text
        yield bob


def _pipeline(bob: Bob, name: str, bomb: str) -> None:
    bob.create_pipeline(
        "limits",
        name,
        {
            "image": IMAGE,
            "resources": [
                {"name": "res", "type": "external", "provider": "bombs", "params": {"bomb": bomb}}
            ],
            "steps": [{"cmd": "cat data.txt", "needs_resource": "res"}],
        },
    )
    bob.allow_runner_types("limits", name, ["docker", "shell"])


def _peak_rss_mb(bob: Bob, runner: str) -> float:
    """The runner process's peak resident memory so far (VmHWM), in MiB."""
    (service,) = (r for r in bob.cluster.runners if r.env.get("BOB_RUNNER_ID") == runner)
    assert service.process is not None
    status = Path(f"/proc/{service.process.pid}/status").read_text()
    (line,) = (x for x in status.splitlines() if x.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def _written_outside() -> int:
    if not OUTSIDE.exists():
        return 0
    return 1 + sum(1 for _ in OUTSIDE.rglob("*"))


def test_every_tar_bomb_is_refused_naming_its_cap_with_nothing_outside_and_memory_flat(
    bob, corpus, provider
):
    # Given each runner warmed up by a normal resource, which passes under the caps
    for kind in START:
        name = f"good-{kind}-{uuid.uuid4().hex[:6]}"
        _pipeline(bob, name, "good")
        run_id = bob.start("limits", name, **START[kind])
        assert bob.wait_terminal(run_id, timeout=120) == "passed", bob.log_lines(run_id)
        assert "fine" in bob.log_lines(run_id)
    before = {r: _peak_rss_mb(bob, r) for r in (DOCKER, SHELL)}

    # When every bomb of the corpus is served to a run on each runner
    runs = []
    for bomb in corpus:
        for kind in START:
            name = f"{bomb.name}-{kind}-{uuid.uuid4().hex[:6]}"
            _pipeline(bob, name, bomb.name)
            runs.append((bomb, kind, name, bob.start("limits", name, **START[kind])))

    # Then each run failed before its step, its reason naming the cap or rule it broke
    refused = 0
    for bomb, kind, name, run_id in runs:
        assert bob.wait_terminal(run_id, timeout=300) == "failed", (bomb.name, kind)
        reason = run_detail(bob, "limits", name, run_id)["reason"]
        assert reason.startswith("step 1 needs resource 'res': "), reason
        assert bomb.reason in reason, (bomb.name, kind, reason)
        assert "fine" not in bob.log_lines(run_id)
        refused += 1
    # And nothing was written outside, and the runners' peak memory barely moved
    written_outside = _written_outside()
    growth = max(_peak_rss_mb(bob, r) - before[r] for r in (DOCKER, SHELL))
    print(
        f"limits[archives]: bombs={len(runs)} refused={refused} "
        f"written_outside={written_outside} runner_rss_growth_mb={growth:.1f} "
        f"endless_gzip_bytes_taken={provider.streamed_bytes}"
    )
    assert written_outside == 0
    assert growth < RSS_GROWTH_MAX_MB
    # The endless bomb was read only as far as the cap, twice (once per runner), give or
    # take what socket buffers held: 16 MiB of zeros is ~16 KiB of gzip.
    assert provider.streamed_bytes < 64 * MiB


def _stored(bob: Bob, run_id: str) -> list[Path]:
    root = Path(bob.cluster.api.env["BOB_ARTIFACT_DIR"])
    # Files only: the store makes a run's directory before it takes the upload.
    return [
        p for p in root.rglob("*") if p.is_file() and (run_id in str(p) or p.name.endswith(".part"))
    ]


@pytest.mark.parametrize("kind", list(START))
def test_an_artifact_over_its_cap_fails_the_run_naming_it_and_nothing_is_stored(bob, kind):
    # Given a pipeline whose step makes an artifact over the cap, and one under it
    name = f"artifact-{kind}-{uuid.uuid4().hex[:6]}"
    size = {"big": ARTIFACT_MAX + MiB, "small": MiB}
    bob.create_pipeline(
        "limits",
        name,
        {
            "image": IMAGE,
            "vars": {"SIZE": str(size["small"])},
            "steps": [
                {
                    "cmd": "head -c $SIZE /dev/zero > out.bin",
                    "produces_artifact": {"name": "out", "path": "out.bin", "store": "local"},
                }
            ],
        },
    )
    bob.allow_runner_types("limits", name, ["docker", "shell"])
    small = bob.start("limits", name, **START[kind])
    assert bob.wait_terminal(small, timeout=120) == "passed", bob.log_lines(small)
    r = bob.http.post(
        f"/pipelines/groups/limits/names/{name}",
        json={
            "image": IMAGE,
            "vars": {"SIZE": str(size["big"])},
            "steps": [
                {
                    "cmd": "head -c $SIZE /dev/zero > out.bin",
                    "produces_artifact": {"name": "out", "path": "out.bin", "store": "local"},
                }
            ],
        },
    )
    assert r.status_code == 202, r.text

    # When the big one runs
    big = bob.start("limits", name, **START[kind])

    # Then it failed naming the cap, and the store holds nothing of it
    assert bob.wait_terminal(big, timeout=120) == "failed"
    reason = run_detail(bob, "limits", name, big)["reason"]
    assert reason == (
        f"step 1 produces artifact 'out': artifact out is larger than {ARTIFACT_MAX} bytes, "
        "headers included (BOB_RUNNER_ARTIFACT_MAX_BYTES)"
    ), reason
    stored = _stored(bob, big)
    got = bob.http.get(
        f"/pipelines/groups/limits/names/{name}/runs/{big}/artifact-stores/local/artifact/out"
    )
    print(
        f"limits[archives]: artifact_cap={ARTIFACT_MAX} executor={kind} "
        f"refused=1 stored_files={len(stored)} fetch_status={got.status_code}"
    )
    assert stored == []
    assert got.status_code == 404, got.text
    # While the small one's artifact is there, whole
    ok = bob.http.get(
        f"/pipelines/groups/limits/names/{name}/runs/{small}/artifact-stores/local/artifact/out"
    )
    assert ok.status_code == 200
    with tarfile.open(fileobj=io.BytesIO(ok.content)) as tar:
        assert [(m.name, m.size) for m in tar] == [("out.bin", size["small"])]
