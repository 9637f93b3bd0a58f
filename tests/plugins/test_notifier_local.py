"""The reference notifier as a real process: it records each JSON object POSTed to it, in
order, serves them back, keeps them across a restart, and refuses what is not one."""

from __future__ import annotations

import httpx

from tests.plugins.processes import plugin_process


def _notifier(tmp_path, path):
    return plugin_process(
        "bob_plugins.notifier_local",
        "BOB_NOTIFIER_PORT",
        tmp_path / "notifier.log",
        BOB_NOTIFIER_FILE=str(path),
    )


def test_records_what_it_is_posted_and_serves_it_back_across_a_restart(tmp_path):
    path = tmp_path / "data" / "notifications.jsonl"
    first = {"id": "n-1", "run_id": "r-1", "status": "passed", "pipeline": {"group": "g"}}
    second = {"id": "n-2", "run_id": "r-2", "status": "failed", "reason": "exit 1 ✗"}
    with _notifier(tmp_path, path) as url:
        assert httpx.get(f"{url}/bob_notification").json() == {"message": []}
        for document in (first, second):
            r = httpx.post(f"{url}/bob_notification", json=document)
            assert r.status_code == 200, r.text
        assert httpx.get(f"{url}/bob_notification").json()["message"] == [first, second]

        for bad in (b"[1, 2]", b"not json", b"x" * (300 * 1024)):
            r = httpx.post(f"{url}/bob_notification", content=bad)
            assert r.status_code == 400, r.text
    assert path.stat().st_mode & 0o077 == 0  # its owner's only

    with _notifier(tmp_path, path) as url:
        assert httpx.get(f"{url}/bob_notification").json()["message"] == [first, second]
