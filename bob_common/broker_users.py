"""Each service reaches RabbitMQ as a user of its own, with the least permissions its part
of the topology (topology.py) needs; never as guest. The one table of those permissions,
and the creation of a vhost and its users with `rabbitmqctl` (`make run`; the deploy
reuses the table).

RabbitMQ grants, per user and vhost, three regular expressions over exchange and queue
names (https://www.rabbitmq.com/docs/access-control): `configure` to declare or delete,
`write` to publish to an exchange or bind a queue (the queue's side), `read` to consume
or get from a queue or bind to an exchange (the exchange's side). A passive declare
needs none; declaring a queue with a dead-letter exchange needs `write` on that exchange
and `read` on the queue.

- entities owns the topology: it declares all of it, publishes jobs, controls, dead
  letters and error reports, and consumes the run events and the dead jobs.
- a runner of type T declares and consumes its job queue bob.jobs.T only (dead-lettered
  to bob.jobs-dead), and its exclusive control queue bob.control.<runner id> bound to
  bob.control (exclusive: no other connection may touch it); it publishes run events and
  error reports. It cannot bind to bob.jobs
  (nor take other types' jobs), declare or delete anything else, publish through the
  default exchange (which reaches every queue), or read the events of others.
- the API declares nothing and publishes nothing: it reads bob.errors (GET /error), and
  the depths it shows come from passive declares, which need no permission.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from bob_common import runner_types, topology

# Who reaches the broker: a service, or a runner of one type.
ENTITIES = "entities"
API = "api"
USER_PREFIX = "bob-"
NOTHING = "^$"


@dataclass(frozen=True)
class Permissions:
    configure: str
    write: str
    read: str


def _only(*names: str) -> str:
    """A pattern that matches exactly these names (and names matching the raw patterns
    given as `re:<pattern>`)."""
    parts = [n[3:] if n.startswith("re:") else re.escape(n) for n in names]
    return "^(" + "|".join(parts) + ")$"


# Runners' own control queues (topology.control_queue_name).
_CONTROL_QUEUES = r"re:bob\.control\..+"


def runner_permissions(runner_type: str) -> Permissions:
    jobs = topology.job_queue_name(runner_type)
    return Permissions(
        configure=_only(jobs, _CONTROL_QUEUES),
        write=_only(
            topology.EVENTS_EXCHANGE,
            topology.ERRORS_EXCHANGE,
            # The job queue's dead-letter exchange: declaring the queue needs it.
            topology.DEAD_JOBS_EXCHANGE,
            _CONTROL_QUEUES,
        ),
        read=_only(jobs, topology.CONTROL_EXCHANGE, _CONTROL_QUEUES),
    )


PERMISSIONS: dict[str, Permissions] = {
    ENTITIES: Permissions(configure=r"^bob\..*", write=r"^bob\..*", read=r"^bob\..*"),
    API: Permissions(configure=NOTHING, write=NOTHING, read=_only(topology.ERRORS_QUEUE)),
}


def runner_service(runner_type: str) -> str:
    """The service name of a runner type's user: runners of one type share it."""
    return "runner" if runner_type == runner_types.DEFAULT else f"runner-{runner_type}"


def table(runner_types_: Iterable[str]) -> dict[str, Permissions]:
    """Service name -> its permissions, for entities, the API and these runner types."""
    found = dict(PERMISSIONS)
    for runner_type in runner_types_:
        found[runner_service(runner_type)] = runner_permissions(runner_type)
    return found


class ProvisionError(RuntimeError):
    """rabbitmqctl failed or is missing; the message says which command and why."""


def _rabbitmqctl(*args: str, stdin: str | None = None) -> str:
    try:
        done = subprocess.run(
            ["rabbitmqctl", "-q", *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (FileNotFoundError, subprocess.TimeoutExpired) as exc:
        raise ProvisionError(f"rabbitmqctl {args[0]}: {exc}") from exc
    if done.returncode != 0:
        raise ProvisionError(f"rabbitmqctl {args[0]} failed: {done.stderr.strip()}")
    return done.stdout


def _existing_users() -> set[str]:
    rows = json.loads(_rabbitmqctl("list_users", "--formatter", "json") or "[]")
    return {row["user"] for row in rows}


def load_passwords(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    return dict(json.loads(path.read_text()))


def _save_passwords(path: Path, passwords: dict[str, str]) -> None:
    """Written owner-only from the start (never readable by others, even for a moment)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.with_suffix(".tmp"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(passwords, out, indent=2, sort_keys=True)
    os.chmod(path.with_suffix(".tmp"), 0o600)
    os.replace(path.with_suffix(".tmp"), path)


def provision(
    vhost: str,
    runner_types_: Iterable[str],
    passwords_file: Path,
    *,
    host: str = "127.0.0.1:5672",
    user_prefix: str = USER_PREFIX,
) -> dict[str, str]:
    """Creates `vhost` and a user per service (`<prefix><service>`, e.g. bob-entities)
    with the permissions of the table, by `rabbitmqctl` on this machine. Passwords are
    generated once and kept in `passwords_file` (owner-only), so a restart reuses them;
    a user that exists is given its kept password again and the table's permissions, so
    the broker always matches the table. Answers service name -> its BOB_QUEUE_URL."""
    wanted = table(runner_types_)
    passwords = load_passwords(passwords_file)
    for service in wanted:
        passwords.setdefault(f"{user_prefix}{service}", secrets.token_urlsafe(24))
    _save_passwords(passwords_file, passwords)
    if vhost not in _rabbitmqctl("list_vhosts", "name").split():
        _rabbitmqctl("add_vhost", vhost)
    existing = _existing_users()
    urls = {}
    for service, perms in wanted.items():
        user = f"{user_prefix}{service}"
        password = passwords[user]
        # The password on stdin, not in the command line that `ps` shows.
        if user in existing:
            _rabbitmqctl("change_password", user, stdin=password + "\n")
        else:
            _rabbitmqctl("add_user", user, stdin=password + "\n")
        _rabbitmqctl("set_permissions", "-p", vhost, user, perms.configure, perms.write, perms.read)
        urls[service] = queue_url(user, password, vhost, host)
    return urls


def queue_url(user: str, password: str, vhost: str, host: str = "127.0.0.1:5672") -> str:
    user, password, vhost = (quote(text, safe="") for text in (user, password, vhost))
    return f"amqp://{user}:{password}@{host}/{vhost}"


def delete_users(services: Iterable[str], *, user_prefix: str = USER_PREFIX) -> None:
    """Deletes the users of these services (tests' clusters clean up with it)."""
    for service in services:
        try:
            _rabbitmqctl("delete_user", f"{user_prefix}{service}")
        except ProvisionError:
            pass
