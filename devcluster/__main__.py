"""`make run`: entities, the API server on :7777, one runner and the reference plugins
(git resource provider on :8001, local artifact store on :8002, local logger on :8003,
local notifier on :8004), in the foreground, their logs interleaved and prefixed by
service. Entities serves mutual TLS with the certificates in data/pki (created at the
first start). Ctrl-C stops them all cleanly."""

from __future__ import annotations

import os
import signal
import sys
import threading

from bob_common.broker_users import ProvisionError
from devcluster import broker
from devcluster.cluster import Cluster

PKI_DIR = "data/pki"


def main() -> int:
    try:
        # Each service its own broker user, never guest (devcluster/broker.py).
        queue_urls = broker.queue_urls(os.environ)
    except ProvisionError as exc:
        print(f"could not create the broker users: {exc}", flush=True)
        return 1
    # The cluster's CA and certificates are kept in data/pki (renewed when due), so the
    # runner keeps its id across restarts and tools keep their certificate.
    cluster = Cluster({}, plugins=True, queue_urls=queue_urls, pki_dir=PKI_DIR)
    stopping = threading.Event()

    def on_signal(_signum, _frame) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        cluster.start()
        print(f"Bob is up: {cluster.api_url} (Ctrl-C stops it)", flush=True)
        print(f"  the web page for runs at {cluster.api_url}/, the API at /ui/", flush=True)
        if key_file := cluster.entities.env.get("BOB_SECRETS_KEY_FILE"):
            print(f"  secrets are encrypted with the key in {key_file}", flush=True)
        for name, url in cluster.plugin_urls.items():
            print(f"  reference plugin {name!r} at {url} (register it: see README)", flush=True)
        while not stopping.wait(0.5):
            dead = [s.name for s in cluster.services if not s.alive]
            if dead:
                print(f"{', '.join(dead)} exited; stopping the cluster", flush=True)
                return_code = 1
                break
        else:
            return_code = 0
    except RuntimeError as exc:
        print(f"start-up failed: {exc}", flush=True)
        return_code = 1
    finally:
        print("stopping...", flush=True)
        cluster.stop()
    return return_code


if __name__ == "__main__":
    sys.exit(main())
