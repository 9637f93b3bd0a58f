"""Runners as their heartbeats describe them, with their node (Bob's cluster info)."""

from __future__ import annotations

from entities_svc import runners
from entities_svc.runners import Heartbeat, Node

NODE = Node("build-1", 8, 0.25, 3 * 2**30, 2**34)


def test_a_heartbeat_records_the_runners_node(database):
    runners.record_heartbeats([Heartbeat("docker-1", "docker", 2, ("r-1",), 1_000, NODE)])

    [seen] = runners.list_runners()

    assert seen == Heartbeat("docker-1", "docker", 2, ("r-1",), 1_000, NODE)


def test_a_heartbeat_without_a_node_keeps_the_node_last_described(database):
    runners.record_heartbeats([Heartbeat("docker-1", "docker", 2, (), 1_000, NODE)])
    runners.record_heartbeats([Heartbeat("docker-1", "docker", 2, (), 2_000)])
    runners.record_heartbeats([Heartbeat("shell-1", "shell", 1, (), 3_000)])

    found = {beat.runner_id: beat for beat in runners.list_runners()}

    assert (found["docker-1"].at_ms, found["docker-1"].node) == (2_000, NODE)
    assert found["shell-1"].node is None


def test_an_older_heartbeat_does_not_replace_the_node_of_a_newer_one(database):
    older = Node("build-1", 8, 0.9, 1, 2**34)
    runners.record_heartbeats(
        [
            Heartbeat("docker-1", "docker", 2, (), 2_000, NODE),
            Heartbeat("docker-1", "docker", 2, (), 1_000, older),
        ]
    )
    runners.record_heartbeats([Heartbeat("docker-1", "docker", 2, (), 1_500, older)])

    assert runners.list_runners()[0].node == NODE
