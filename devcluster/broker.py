"""`make run`'s broker users: a vhost `bob` and a user of its own for each service, with
the permissions of bob_common/broker_users.py, created at the first start. Passwords are
generated then and kept in data/broker-users.json (owner-only; data/ is not in git).

    python -m devcluster.broker runner-shell   # that service's BOB_QUEUE_URL, e.g. to
                                               # start a shell runner beside `make run`
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path

from bob_common import broker_users, runner_types

VHOST = "bob"
PASSWORDS = Path("data/broker-users.json")
# Runner types whose users `make run` creates: the default one it starts, and the shell
# type the README starts beside it.
RUNNER_TYPES = (runner_types.DEFAULT, "shell")


def queue_urls(
    env: Mapping[str, str],
    *,
    vhost: str = VHOST,
    passwords: Path = PASSWORDS,
    user_prefix: str = broker_users.USER_PREFIX,
) -> dict[str, str] | None:
    """Each service's BOB_QUEUE_URL, its users created or brought up to the table; None
    when BOB_QUEUE_URL is set, which names the broker and user for every service."""
    if env.get("BOB_QUEUE_URL"):
        return None
    kinds = {*RUNNER_TYPES, runner_types.canonical(env.get("BOB_RUNNER_TYPE", ""))}
    return broker_users.provision(vhost, sorted(kinds), passwords, user_prefix=user_prefix)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    user = f"{broker_users.USER_PREFIX}{argv[0]}"
    password = broker_users.load_passwords(PASSWORDS).get(user)
    if password is None:
        print(f"no user {user} in {PASSWORDS}: run `make run` first", file=sys.stderr)
        return 1
    print(broker_users.queue_url(user, password, VHOST))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
