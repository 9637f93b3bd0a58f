"""devcluster's free_port(), which every test cluster takes its services' ports from."""

from __future__ import annotations

import socket

from devcluster.cluster import free_port


def test_a_port_is_never_handed_out_twice_and_is_free_when_handed_out():
    # Given many ports asked for in a row, as the clusters of a test session ask
    ports = [free_port() for _ in range(3000)]
    # Then no two are the same (the kernel alone gives a port it just let go of again:
    # two services of one cluster were once told to listen on the same one)
    assert len(set(ports)) == len(ports)
    # And each can be listened on
    with socket.socket() as s:
        s.bind(("127.0.0.1", ports[-1]))
