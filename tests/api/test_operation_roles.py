"""The roles of the API's operations, read from openapi.yaml (the one place they are
written), and how a request's token and needed role are found. Pure: no processes."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from api_server.auth import BadCredentials, presented_token
from api_server.operation_roles import METHODS, OperationRoles, SpecError, load, operations
from bob_common import roles
from bob_common.config import ApiSettings, ConfigError
from bob_common.roles import Role

SPEC = Path(__file__).resolve().parents[2] / "api_server" / "openapi.yaml"
DOC = load(SPEC)


def _ops():
    for path, item in DOC["paths"].items():
        for method in METHODS:
            if method in item:
                yield method.upper(), path, item[method]


def test_every_operation_of_the_document_declares_the_role_it_needs():
    declared = {(m, p): op.get("x-bob-role") for m, p, op in _ops()}
    missing = [f"{m} {p}" for (m, p), role in declared.items() if role is None]
    assert not missing, f"operations without x-bob-role: {missing}"
    unknown = {k: v for k, v in declared.items() if v not in (*roles.NAMES, roles.OPEN)}
    assert not unknown, unknown
    assert len(operations(DOC)) == len(declared)


def test_the_document_declares_how_to_authenticate_and_each_refusal():
    schemes = DOC["components"]["securitySchemes"]
    assert {s["scheme"] for s in schemes.values()} == {"bearer", "basic"}
    assert DOC["security"] == [{name: []} for name in schemes]
    for method, path, op in _ops():
        role = op["x-bob-role"]
        codes = set(op["responses"])
        where = f"{method} {path}"
        if role == roles.OPEN:
            assert op.get("security") == [], f"{where} is open: it says so with security: []"
            continue
        assert "401" in codes, f"{where} may answer 401"
        assert ("403" in codes) == (role != "read"), f"{where} ({role}) and its 403"


def test_an_operation_without_a_role_or_with_an_unknown_one_stops_start_up():
    bare = {"paths": {"/x": {"get": {"operationId": "X"}}}}
    with pytest.raises(SpecError, match="GET /x .*declares no x-bob-role"):
        operations(bare)
    wrong = {"paths": {"/x": {"post": {"operationId": "X", "x-bob-role": "root"}}}}
    with pytest.raises(SpecError, match="unknown role 'root'"):
        operations(wrong)


@pytest.mark.parametrize(
    ("method", "path", "needs"),
    [
        ("GET", "/pipelines/status/runs/r-1", Role.READ),
        ("HEAD", "/pipelines/status/runs/r-1", Role.READ),
        ("GET", "/pipelines", Role.READ),
        ("POST", "/pipelines", Role.ADMIN),
        ("POST", "/pipelines/groups/g/names/n", Role.ADMIN),
        # literal segments where a template would match too
        ("POST", "/pipelines/start/groups/g/names/n", Role.OPERATE),
        ("POST", "/pipelines/pause/groups/g/names/n", Role.OPERATE),
        ("POST", "/pipelines/stop/runs/r-1", Role.OPERATE),
        ("GET", "/error", Role.ADMIN),
        ("DELETE", "/tokens/tok_0123456789ab", Role.ADMIN),
        ("GET", "/api.yaml", None),
        ("GET", "/openapi.json", None),
        ("GET", "/ui/", None),
        # unknown paths and methods: Connexion answers them, to callers with a token
        ("GET", "/nowhere", Role.READ),
        ("PUT", "/pipelines", Role.READ),
        ("GET", "/pipelines/status/runs/a/b", Role.READ),
        ("POST", "/ui/", Role.READ),
    ],
)
def test_a_requests_role_is_its_operations(method, path, needs):
    assert OperationRoles(operations(DOC)).needed(method, path) == needs


def test_open_paths_open_their_read_operations_only():
    opened = OperationRoles(operations(DOC), ["/can-we-build-it", "/metrics", "/pipelines"])
    assert opened.needed("GET", "/can-we-build-it") is None
    assert opened.needed("GET", "/metrics") is None
    assert opened.needed("GET", "/pipelines") is None
    assert opened.needed("POST", "/pipelines") == Role.ADMIN
    assert OperationRoles(operations(DOC)).needed("GET", "/metrics") == Role.READ
    with pytest.raises(SpecError, match="/healthz"):
        OperationRoles(operations(DOC), ["/healthz"])


def _basic(text: str) -> list[tuple[bytes, bytes]]:
    return [(b"authorization", b"Basic " + base64.b64encode(text.encode()))]


def test_a_token_is_read_from_bearer_or_basic_with_any_user():
    assert presented_token([]) is None
    assert presented_token([(b"Authorization", b"Bearer bob_abc")]) == "bob_abc"
    assert presented_token([(b"authorization", b"bearer  bob_abc ")]) == "bob_abc"
    assert presented_token(_basic("token:bob_abc")) == "bob_abc"
    assert presented_token(_basic("whoever:bob_a:b")) == "bob_a:b"
    assert presented_token(_basic("bob_abc:")) == "bob_abc"


@pytest.mark.parametrize(
    ("headers", "why"),
    [
        ([(b"authorization", b"Bearer")], "carries no token"),
        ([(b"authorization", b"Basic %%%")], "not base64"),
        (_basic("alice:"), "no password"),
        (_basic("alice"), "no ':'"),
        ([(b"authorization", b"Digest x")], "Unsupported authorization scheme 'Digest'"),
        ([(b"authorization", b"Bearer a"), (b"authorization", b"Bearer b")], "More than one"),
    ],
)
def test_a_malformed_authorization_is_named(headers, why):
    with pytest.raises(BadCredentials, match=why):
        presented_token(headers)


def test_roles_are_ordered_each_holding_the_rights_below_it():
    assert [r.label for r in Role] == ["read", "operate", "admin"]
    assert roles.allows(Role.ADMIN, Role.OPERATE) and roles.allows(Role.OPERATE, Role.READ)
    assert not roles.allows(Role.READ, Role.OPERATE)
    assert not roles.allows(Role.OPERATE, Role.ADMIN)
    assert roles.parse("Operate") == Role.OPERATE
    with pytest.raises(ValueError, match="one of read, operate, admin"):
        roles.parse("root")


@pytest.mark.parametrize(
    ("host", "mode"),
    [("127.0.0.1", "none"), ("127.0.0.5", "none"), ("::1", "none"), ("localhost", "none")]
    + [("0.0.0.0", "tokens"), ("10.0.0.7", "tokens"), ("bob.example", "tokens"), ("::", "tokens")],
)
def test_tokens_are_required_by_default_off_loopback(host, mode):
    assert ApiSettings.from_env({"BOB_API_HOST": host}).auth == mode


def test_no_tokens_off_loopback_is_refused_unless_explicitly_allowed():
    env = {"BOB_API_HOST": "0.0.0.0", "BOB_API_AUTH": "none"}
    with pytest.raises(ConfigError, match="BOB_API_ALLOW_UNAUTHENTICATED"):
        ApiSettings.from_env(env)
    allowed = ApiSettings.from_env({**env, "BOB_API_ALLOW_UNAUTHENTICATED": "true"})
    assert allowed.auth == "none"
    with pytest.raises(ConfigError, match="BOB_API_AUTH must be one of tokens, none"):
        ApiSettings.from_env({"BOB_API_AUTH": "maybe"})


def test_the_token_settings_are_in_the_readmes_configuration_table():
    readme = (SPEC.parents[1] / "README.md").read_text()
    table = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    for name in (
        "BOB_API_AUTH",
        "BOB_API_ALLOW_UNAUTHENTICATED",
        "BOB_API_OPEN_PATHS",
        "BOB_API_TOKEN_CACHE_S",
        "BOB_API_TOKEN_CACHE_SIZE",
    ):
        assert f"| `{name}` |" in table, name
    assert "### API tokens and roles" in readme.split("## Security", 1)[1]
