"""The run statuses and orders every service shares: they are the wire's enums, value for
value, so they cannot drift from the protos."""

from __future__ import annotations

import pytest

from bob_common.run_states import CLAIMED, TERMINAL, Order, RunStatus, status_name
from bob_pb import entities_pb2, messages_pb2


def _unprefixed(name: str, prefixes: tuple[str, ...]) -> str:
    for prefix in prefixes:
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name


@pytest.mark.parametrize(
    ("shared", "wire", "prefixes"),
    [
        (RunStatus, messages_pb2.RunStatus, ("RUN_STATUS_",)),
        (Order, entities_pb2.RunOrder, ("RUN_ORDER_", "ORDER_")),
    ],
)
def test_each_enum_has_the_names_and_numbers_of_its_proto_enum(shared, wire, prefixes):
    assert {member.name: member.value for member in shared} == {
        _unprefixed(name, prefixes): number for name, number in wire.items()
    }


def test_a_protobuf_field_takes_a_shared_status_and_reads_back_equal():
    changed = messages_pb2.StatusChanged(status=RunStatus.STOPPED)

    assert changed.status == messages_pb2.STOPPED == RunStatus.STOPPED
    assert RunStatus(changed.status) is RunStatus.STOPPED


def test_a_status_from_the_wire_is_found_in_the_shared_sets():
    assert messages_pb2.PASSED in TERMINAL
    assert messages_pb2.PAUSED in CLAIMED and messages_pb2.PENDING not in CLAIMED


@pytest.mark.parametrize(
    ("status", "name"),
    [(RunStatus.INITIALIZED, "initialized"), (messages_pb2.FAILED, "failed"), (42, "42")],
)
def test_status_name_is_lower_case_and_the_number_for_an_unknown_status(status, name):
    assert status_name(status) == name
