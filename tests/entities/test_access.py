"""The access table (entities_svc/access.py): every rpc has a row, and the rules read as
the README says. The checks themselves run against real processes in
tests/security/test_identity.py."""

from __future__ import annotations

from bob_common.pki import Identity
from bob_pb import entities_pb2
from entities_svc import access

SERVICE = entities_pb2.DESCRIPTOR.services_by_name["Entities"]


def test_every_entities_rpc_has_a_row_saying_who_may_call_it():
    missing = set(SERVICE.methods_by_name) - set(access.RULES)
    assert not missing, f"add a row to entities_svc/access.py RULES for {sorted(missing)}"
    assert set(access.RULES) <= set(SERVICE.methods_by_name)


def test_the_read_tool_may_call_only_reads():
    read = {name for name, rule in access.RULES.items() if access.READ in rule.callers}
    assert read and all(name.startswith(("Get", "List")) for name in read)


def test_runner_only_rpcs_accept_only_runners_speaking_for_themselves():
    runner = Identity("runner", "r1")
    claim = entities_pb2.ClaimRunRequest(run_id="r", attempt=1, runner_id="r1")
    assert access.refusal("ClaimRun", runner, claim) is None
    assert "only for its own" in access.refusal(
        "ClaimRun", runner, entities_pb2.ClaimRunRequest(runner_id="r2")
    )
    for who in (Identity("api"), Identity("tool", "admin"), Identity("tool", "read"), None):
        assert access.refusal("ClaimRun", who, claim) is not None


def test_an_rpc_without_a_row_is_refused_to_everyone():
    for who in (Identity("api"), Identity("runner", "r1"), Identity("tool", "admin")):
        assert "no caller may" in access.refusal("Unlisted", who, object())
