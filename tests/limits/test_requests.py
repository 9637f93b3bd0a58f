"""Oversized requests and answers, and expensive reads (issue 10), against a real cluster:
an 8 MiB body (with Content-Length, and chunked) gets 413 naming the limit before it is
read; two 2.3 MB pipelines no longer push `GET /pipelines` and `/cctray.xml` over gRPC's
4 MiB answer limit; pages walk every pipeline once; and a flood of log reads at large
offsets and of /metrics does not starve the lease renewals of a running build."""

from __future__ import annotations

import json
import select
import socket
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from bob_common import pages
from tests.e2e.runner_cluster import Bob, run_detail, runner_cluster, runner_id

IMAGE = "bob-test/busybox:latest"
BODY_CAP = pages.BODY_MAX_BYTES  # the ceiling: room for the pipelines
# A pipeline posted as 1.15 MB of JSON is stored as 2.3 MB (its definition and its
# document): two of them made one gRPC answer of 4.6 MB.
BIG = 1_150_000
LEASE_S = 3
LOG_LINES = 500_000
# Clients reading at once: each waits for its answer, so the flood queues at most this
# many expensive reads in front of a lease renewal.
LOG_READERS = 100
METRICS_READERS = 8


@pytest.fixture(scope="module")
def bob(rabbitmq_available, docker_client, tmp_path_factory) -> Iterator[Bob]:
    runners = [{"BOB_RUNNER_ID": runner_id("requests"), "BOB_HEARTBEAT_S": "0.5"}]
    env = {"BOB_API_MAX_BODY_BYTES": str(BODY_CAP), "BOB_LEASE_S": str(LEASE_S)}
    with runner_cluster(tmp_path_factory.mktemp("requests"), runners, env=env) as bob:
        yield bob


def _raw_post(bob: Bob, path: str, headers: dict[str, str], chunks: Iterator[bytes]):
    """Sends a request over a plain socket, the body as it goes, and stops sending once the
    answer arrives (or the server closes): (status, body, bytes of body sent, seconds)."""
    url = urlsplit(bob.cluster.api_url)
    started = time.monotonic()
    with socket.create_connection((url.hostname, url.port), timeout=30) as sock:
        head = f"POST {path} HTTP/1.1\r\nHost: {url.hostname}:{url.port}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        sock.sendall(head.encode())
        sent = 0
        for chunk in chunks:
            if select.select([sock], [], [], 0)[0]:
                break  # the answer came: the rest is never sent
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(chunk)
        answer = b""
        while b"\r\n\r\n" not in answer or not _complete(answer):
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                break
            if not data:
                break
            answer += data
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, body.decode(errors="replace"), sent, time.monotonic() - started


def _complete(answer: bytes) -> bool:
    head, _, body = answer.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":")[1])
    return False


def _pipeline(size: int = 0) -> dict:
    body: dict = {"image": IMAGE, "steps": [{"cmd": "true"}]}
    if size:  # in values of 50,000 characters: a var's value is at most 64 KiB
        body["vars"] = {f"V{i}": "x" * 50_000 for i in range(size // 50_000)}
    return body


def test_an_8_mib_body_gets_413_naming_the_limit_with_content_length_and_chunked(bob):
    total = 8 * 1024 * 1024
    piece = b"x" * 65536
    name = f"huge-{uuid.uuid4().hex[:8]}"
    path = f"/pipelines/groups/limits/names/{name}"
    counts = {}
    for how in ("content-length", "chunked"):
        if how == "content-length":
            headers = {"Content-Type": "application/json", "Content-Length": str(total)}
            chunks = iter([piece] * (total // len(piece)))
        else:
            headers = {"Content-Type": "application/json", "Transfer-Encoding": "chunked"}
            framed = b"%x\r\n" % len(piece) + piece + b"\r\n"
            chunks = iter([framed] * (total // len(piece)) + [b"0\r\n\r\n"])
        status, body, sent, seconds = _raw_post(bob, path, headers, chunks)
        counts[how] = (status, sent, round(seconds, 2))
        assert status == 413, (how, status, body)
        assert "BOB_API_MAX_BODY_BYTES" in body and str(BODY_CAP) in body, body
        # Not read whole: what was sent before the answer is the bound and what the
        # sockets' buffers took, not 8 MiB.
        assert sent < total, (how, sent)
    print(f"limits[requests]: 8 MiB body -> (status, bytes sent, s) {counts}")
    assert bob.http.get(f"/pipelines/groups/limits/names/{name}").status_code == 404


def _walk(bob: Bob, url: str) -> tuple[list[httpx.Response], list[dict]]:
    answers, items = [], []
    while url:
        r = bob.http.get(url)
        assert r.status_code == 200, r.text
        answers.append(r)
        items += r.json()["message"]
        url = r.links.get("next", {}).get("url")
        assert (url is None) == ("X-Next-Cursor" not in r.headers)
        assert len(answers) < 1000
    return answers, items


def test_2_3_mb_pipelines_still_list_and_show_in_cctray(bob):
    group = f"big-{uuid.uuid4().hex[:6]}"
    big = ("one", "three", "two")  # three: more than one 3 MiB page holds
    for name in big:
        bob.create_pipeline(group, name, _pipeline(BIG))
    bob.create_pipeline(group, "small", _pipeline())

    answers, items = _walk(bob, f"/pipelines?group={group}")
    assert [p["name"] for p in items] == ["one", "small", "three", "two"]
    assert len(answers) >= 2  # cut by bytes, not by the default limit
    assert len(json.dumps(items[0])) > BIG and items[1] == {
        **_pipeline(),
        "group": group,
        "name": "small",
    }
    assert max(len(r.content) for r in answers) < pages.GRPC_MESSAGE_MAX_BYTES

    r = bob.http.get("/cctray.xml")
    assert r.status_code == 200, r.text
    projects = {p.get("name") for p in ET.fromstring(r.content).iter("Project")}
    assert {f"{group}:{n}" for n in (*big, "small")} <= projects
    # Everything, unfiltered, as Bob's clients ask for it.
    _, everything = _walk(bob, "/pipelines")
    assert {f"{group}:one", f"{group}:two"} <= {f"{p['group']}:{p['name']}" for p in everything}
    print(
        f"limits[requests]: {len(big)} pipelines of {BIG} B posted: "
        f"/pipelines?group in {len(answers)} pages "
        f"(largest {max(len(r.content) for r in answers)} B), cctray {len(r.content)} B "
        f"with {len(projects)} projects in one answer"
    )


def test_pages_walk_every_pipeline_once_and_the_default_page_holds_them_all(bob):
    group = f"page-{uuid.uuid4().hex[:6]}"
    names = [f"p{i:02d}" for i in range(23)]
    for name in names:
        bob.create_pipeline(group, name, _pipeline())

    answers, items = _walk(bob, f"/pipelines?group={group}&limit=5")
    assert [p["name"] for p in items] == names  # in order: no gap, no duplicate
    assert [len(r.json()["message"]) for r in answers] == [5, 5, 5, 5, 3]
    default = bob.http.get(f"/pipelines?group={group}")  # what wendy and Terraform send
    assert [p["name"] for p in default.json()["message"]] == names
    assert "X-Next-Cursor" not in default.headers and "next" not in default.links

    tray, cursors = [], None
    url: str | None = "/cctray.xml?limit=10"
    while url:
        r = bob.http.get(url)
        assert r.status_code == 200
        tray += [p.get("name") for p in ET.fromstring(r.content).iter("Project")]
        url = r.links.get("next", {}).get("url")
        cursors = (cursors or 0) + 1
    assert len(tray) == len(set(tray)) and {f"{group}:{n}" for n in names} <= set(tray)

    # Runs of a pipeline, oldest first, in pages of 2.
    started = [bob.start(group, names[0]) for _ in range(5)]
    run_pages, runs = _walk(bob, f"/pipelines/groups/{group}/names/{names[0]}/runs?limit=2")
    assert [r["run_id"] for r in runs] == started
    assert [len(r.json()["message"]) for r in run_pages] == [2, 2, 1]
    foreign = run_pages[0].headers["X-Next-Cursor"]
    other = bob.http.get(f"/pipelines/groups/{group}/names/{names[1]}/runs?cursor={foreign}")
    assert other.status_code == 404, other.text  # a cursor of another pipeline's runs

    bad = bob.http.get("/pipelines?cursor=not-a-cursor!")
    assert bad.status_code == 400 and "cursor" in bad.json()["message"], bad.text
    assert bob.http.get("/pipelines?limit=0").status_code == 400
    print(
        f"limits[requests]: {len(names)} pipelines in {len(answers)} pages of 5, "
        f"{len(runs)} runs in {len(run_pages)} pages of 2, "
        f"cctray in {cursors} pages of 10, bad cursor -> {bad.status_code}"
    )


def _walk_names(bob: Bob, path: str, field: str) -> tuple[int, list[str]]:
    answers, items = _walk(bob, path)
    return len(answers), [item[field] for item in items]


def test_plugins_tokens_and_secrets_come_in_pages_too(bob):
    tag = uuid.uuid4().hex[:6]
    made: dict[str, list[str]] = {}
    for kind in ("resource-providers", "artifact-stores", "loggers"):
        made[kind] = [f"{tag}-{i}" for i in range(7)]
        for name in made[kind]:
            body = {"name": name, "url": f"http://127.0.0.1:9/{name}"}
            r = bob.http.post(f"/{kind}", json=body)
            assert r.status_code == 202, r.text
    made["secrets"] = [f"s{tag}-{i}" for i in range(7)]
    for name in made["secrets"]:
        assert bob.http.put(f"/secrets/{name}", json={"value": "v"}).status_code == 202
    made["tokens"] = []
    for i in range(7):
        r = bob.http.post("/tokens", json={"name": f"t{tag}-{i}", "role": "read"})
        assert r.status_code == 201, r.text
        made["tokens"].append(r.json()["message"]["id"])

    counts = {}
    for kind, names in made.items():
        field = "id" if kind == "tokens" else "name"
        pages_, walked = _walk_names(bob, f"/{kind}?limit=3", field)
        whole = [item[field] for item in bob.http.get(f"/{kind}").json()["message"]]
        assert len(walked) == len(set(walked)), kind  # no duplicates
        assert set(names) <= set(walked) and walked == whole, kind  # no gaps, same order
        assert pages_ == -(-len(whole) // 3), kind
        counts[kind] = (len(walked), pages_)
    print(f"limits[requests]: (items, pages of 3) {counts}")


def test_a_flood_of_log_reads_and_metrics_does_not_starve_lease_renewals(bob):
    # A long log to read at large offsets.
    name = f"long-{uuid.uuid4().hex[:6]}"
    bob.create_pipeline("limits", name, {"image": IMAGE, "steps": [{"cmd": f"seq {LOG_LINES}"}]})
    long_run = bob.start("limits", name)
    assert bob.wait_terminal(long_run, timeout=240) == "passed"

    # A build that lives for several leases, renewing its lease every 0.5 s.
    sleeper = f"sleep-{uuid.uuid4().hex[:6]}"
    bob.create_pipeline("limits", sleeper, {"image": IMAGE, "steps": [{"cmd": "sleep 20"}]})
    run_id = bob.start("limits", sleeper)
    bob.wait_status(run_id, "running", timeout=120)

    stop = threading.Event()
    counts = {"logs": 0, "metrics": 0, "failed": 0}
    codes: dict[str, int] = {}
    lock = threading.Lock()

    def flood(path: str, what: str) -> None:
        with httpx.Client(base_url=bob.cluster.api_url, timeout=60) as client:
            while not stop.is_set():
                try:
                    code = str(client.get(path).status_code)
                except httpx.HTTPError as exc:
                    code = type(exc).__name__
                with lock:
                    counts[what if code == "200" else "failed"] += 1
                    codes[code] = codes.get(code, 0) + 1

    offset = LOG_LINES - 50
    threads = [
        threading.Thread(
            target=flood, args=(f"/pipelines/logs/runs/{long_run}/offset/{offset}/lines/50", "logs")
        )
        for _ in range(LOG_READERS)
    ] + [
        threading.Thread(target=flood, args=("/metrics", "metrics")) for _ in range(METRICS_READERS)
    ]
    started = time.monotonic()
    for t in threads:
        t.start()
    try:
        status = bob.wait_terminal(run_id, timeout=180)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=90)
    seconds = time.monotonic() - started
    detail = run_detail(bob, "limits", sleeper, run_id)
    print(
        f"limits[requests]: flood for {seconds:.0f} s with a {LEASE_S} s lease: "
        f"{counts['logs']} log reads at offset {offset}, {counts['metrics']} /metrics, "
        f"{counts['failed']} not answered in time {codes}; run {status}, "
        f"attempt {detail['attempt']}"
    )
    assert counts["logs"] > 0 and counts["metrics"] > 0
    assert (status, detail["attempt"]) == ("passed", 1), detail


def test_a_page_is_cut_by_bytes_but_always_holds_its_first_item():
    from bob_pb import entities_pb2

    big = [entities_pb2.StoredPipeline(name=str(i), document="x" * 1_000_000) for i in range(5)]
    page, more = pages.fill(big)
    assert (len(page), more) == (3, True)
    assert sum(p.ByteSize() for p in page) < pages.LIST_MAX_BYTES
    assert pages.fill(big[:1], max_bytes=10) == (big[:1], False)
    assert pages.fill([]) == ([], False)
    key = ["dev", "ünïcode/name"]
    assert pages.decode_cursor(pages.encode_cursor(key), 2) == key
    for bad in ("!!", pages.encode_cursor(["one"]), pages.encode_cursor([1, 2])):
        with pytest.raises(pages.BadCursor):
            pages.decode_cursor(bad, 2)
