"""The token-role matrix: every operation of the document the API serves (GET /api.yaml,
so an operation added later is covered without touching this test), called by each of
four callers (no token, a read, an operate and an admin token) against a running
cluster in BOB_API_AUTH=tokens mode. Each answer must be the one its `x-bob-role`
implies: 401 without a token, 403 with a role too low, and otherwise anything but
401/403 (allowed: harmless parameters name nothing that exists, so most allowed calls
answer 404 or 400, and nothing is changed). The counts are printed, and repeated in the
terminal summary."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest
import yaml

from bob_common.config import ApiSettings
from tests.e2e.runner_cluster import Bob, runner_cluster, runner_id

pytestmark = pytest.mark.e2e

METHODS = ("get", "put", "post", "delete", "patch")
LEVELS = {"read": 1, "operate": 2, "admin": 3}
CALLERS = (None, "read", "operate", "admin")
SHOWN: list[str] = []


class _Summary:
    """Repeats the matrix's counts at the end of the session (pytest hides what a passing
    test prints), as the fault tests do with their figures."""

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if SHOWN:
            terminalreporter.section("token-role matrix")
            for line in SHOWN:
                terminalreporter.write_line(line)


@pytest.fixture(scope="module")
def bob(rabbitmq_available, docker_client, tmp_path_factory, pytestconfig) -> Iterator[Bob]:
    if not pytestconfig.pluginmanager.has_plugin("token-role-matrix"):
        pytestconfig.pluginmanager.register(_Summary(), "token-role-matrix")
    tmp = tmp_path_factory.mktemp("matrix")
    with runner_cluster(
        tmp, [{"BOB_RUNNER_ID": runner_id("matrix")}], env={"BOB_API_AUTH": "tokens"}
    ) as b:
        yield b


def _value(parameter: dict) -> str:
    """A harmless value its schema accepts, naming nothing that exists."""
    schema = parameter.get("schema", {})
    if schema.get("type") == "integer":
        return str(max(schema.get("minimum", 1), 1))
    if schema.get("pattern", "").startswith("^tok_"):
        return "tok_000000000000"
    return "matrix-none"


def _operations(doc: dict) -> Iterator[tuple[str, str, dict]]:
    for path, item in doc["paths"].items():
        for method in METHODS:
            if method in item:
                yield method.upper(), path, item[method]


def _url(path: str, op: dict) -> str:
    for parameter in op.get("parameters", []):
        if parameter.get("in") == "path":  # query parameters may be $refs
            path = path.replace("{" + parameter["name"] + "}", _value(parameter))
    return path


def _expected(op: dict, path: str, open_paths: tuple[str, ...], caller: str | None) -> str:
    needs = op["x-bob-role"]
    if needs == "open" or (needs == "read" and path in open_paths):
        return "allowed"
    if caller is None:
        return "401"
    return "allowed" if LEVELS[caller] >= LEVELS[needs] else "403"


def _observed(http: httpx.Client, method: str, url: str, op: dict, secret: str | None) -> str:
    headers = {"Authorization": f"Bearer {secret}"} if secret else {}
    body = op.get("requestBody", {})
    kwargs: dict = {"json": {}} if body.get("required") else {}
    # Streamed, and closed once the status is known: GET /events never ends by itself.
    with http.stream(method, url, headers=headers, **kwargs) as r:
        status = r.status_code
    return str(status) if status in (401, 403) else "allowed"


def test_every_operation_answers_each_role_as_its_x_bob_role_says(bob):
    # Given a token of each role, and the document the API serves
    secrets: dict[str | None, str | None] = {None: None}
    for role in ("read", "operate", "admin"):
        r = bob.http.post(
            "/tokens", json={"name": f"matrix-{role}-{os.urandom(3).hex()}", "role": role}
        )
        assert r.status_code == 201, r.text
        secrets[role] = r.json()["message"]["secret"]
    doc = yaml.safe_load(bob.http.get("/api.yaml").text)
    open_paths = ApiSettings.from_env(bob.cluster.api.env).open_paths
    ops = list(_operations(doc))
    assert len(ops) >= 40, "the document's operations"

    # When each caller calls each operation
    counts: Counter[str] = Counter()
    wrong = []
    with httpx.Client(base_url=bob.cluster.api_url, timeout=30) as http:
        for method, path, op in ops:
            url = _url(path, op)
            for caller in CALLERS:
                expected = _expected(op, path, open_paths, caller)
                observed = _observed(http, method, url, op, secrets[caller])
                counts[observed] += 1
                if observed != expected:
                    who = caller or "no token"
                    wrong.append(f"{method} {url} ({op['x-bob-role']}) by {who}: {observed}")

    # Then every answer is the one its role implies
    line = (
        f"roles matrix: {len(CALLERS)} callers x {len(ops)} operations: "
        f"allowed={counts['allowed']} 401={counts['401']} 403={counts['403']}"
    )
    print(f"\n{line}", flush=True)
    SHOWN.append(line)
    assert not wrong, "\n".join(wrong)
    assert counts["allowed"] and counts["401"] and counts["403"], line
