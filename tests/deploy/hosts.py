"""Test hosts for `make deploy`: network namespaces on a bridge of their own, each with its
own mount and UTS namespace (hostname) and its own `sshd`, so that Ansible reaches them
over SSH as it reaches VMs and each host's install stays its own.

Layout of one instance (index K, picked free at `up`, so that two people can hold hosts at
the same time):

- bridge `bobhK-br` with 10.231.K.1/24 (the machine's side: the controller reaches the hosts
  through it); hosts at 10.231.K.11, .12, ...; no route beyond the subnet (the hosts need
  none: the project goes to them as wheels, Debian's packages are already on the machine).
  An iptables FORWARD rule (commented `bobhK`) lets host-to-host traffic over the bridge
  pass docker's FORWARD DROP policy (br_netfilter hands bridged packets to iptables).
- each host: netns `bobhK-NAME` (also its hostname), a veth pair (`bobhKvI` on the bridge,
  `eth0` inside), and one long-lived process — its sshd — started as
  `ip netns exec NS unshare --mount --uts --propagation private sh -c 'mounts; exec sshd -D'`;
  SSH sessions are sshd's children, so they land in the host's mounts.
- private to each host (directories under /var/tmp/bobhK-*/NAME bound over the paths):
  * /etc: a copy of the machine's whole /etc (useradd/groupadd write /etc/passwd+ and rename
    it over /etc/passwd, which a bind-mounted single file cannot take), with /etc/hostname
    and /etc/hosts naming every host of the instance (RabbitMQ needs its own name to
    resolve) and /etc/postgresql emptied (the machine's cluster config names a data
    directory the host does not have: a host starts without a PostgreSQL cluster, as
    `pg_createcluster` has not been run there);
  * /opt/bob, /var/lib/bob, /var/log/bob, /var/lib/rabbitmq, /var/log/rabbitmq,
    /var/lib/postgresql, /var/log/postgresql, /var/log/supervisor, /home, /tmp: empty at
    start (owner and mode copied from the machine's directory where it has one);
  * /run: a tmpfs (sshd's privilege separation dir, /run/postgresql, supervisor's socket and
    pid files), holding the machine's /run/docker.sock bound in.
- shared with the machine: /usr (the installed Debian packages), /var/lib/dpkg, /root, the
  process table (a host's processes are the machine's; `ip netns pids` finds them) and the
  Docker engine: runner hosts use this machine's dockerd through /var/run/docker.sock (the
  test hosts' compromise: one engine for all, so a deploy to them must not manage dockerd).

Mount points the machine lacks (/opt/bob, /var/lib/bob, ...) are created empty on the
machine and removed at `down` when no other instance is up.

Everything an instance made is removed by `down` (the context manager calls it, also after
a failure): its processes (every pid in its namespaces), namespaces, links, temporary
directory and state file. `python -m tests.deploy.hosts down` removes the leftovers of
crashed runs (instances whose owning process is gone, and anything named bobh* without a
state file).

CLI: `python -m tests.deploy.hosts up N [--names a,b,c]` prints the hosts, the key and an
inventory skeleton and leaves them up; `down [K | --all]` removes them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

PREFIX = "bobh"
STATE_DIR = Path("/run/bob-test-hosts")
TMP_BASE = Path("/var/tmp")
MAX_INSTANCES = 40
SUBNET = "10.231.{k}.0/24"
BRIDGE_ADDR = "10.231.{k}.1"
HOST_ADDR = "10.231.{k}.{i}"
FIRST_HOST = 11

# Directories each host gets empty and private (mode and owner as the machine's, if any).
PRIVATE_DIRS = (
    "/opt/bob",
    "/var/lib/bob",
    "/var/log/bob",
    "/var/lib/rabbitmq",
    "/var/log/rabbitmq",
    "/var/lib/postgresql",
    "/var/log/postgresql",
    "/var/log/supervisor",
    "/home",
)
DOCKER_SOCK = "/run/docker.sock"
NAME_RE = re.compile(r"^[a-z][a-z0-9]{0,7}$")


class HostsError(RuntimeError):
    """A host could not be brought up or a command on it failed; the message says why."""


def _sh(*args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise HostsError(f"{shlex.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
    return done


@dataclass
class Host:
    name: str  # the inventory name, e.g. "core"
    netns: str  # also its hostname: bobhK-NAME
    address: str
    veth: str  # the machine's end, on the bridge
    root: Path  # its private directories on the machine
    pid: int = 0  # its sshd, the process that keeps its namespaces

    @property
    def hostname(self) -> str:
        return self.netns


def _pid_alive(pid: int, started: str | None) -> bool:
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return started is None or stat_line.rsplit(")", 1)[1].split()[19] == started


def _start_time(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except OSError:
        return None


class TestHosts:
    """N test hosts; `with TestHosts(["core", "run1"]) as hosts:` brings them up and always
    down. `owner_pid=None` (the CLI) marks hosts kept until an explicit `down`."""

    __test__ = False  # not a pytest class

    def __init__(self, names: Sequence[str], *, owner_pid: int | None = -1) -> None:
        if not names or len(set(names)) != len(names):
            raise HostsError(f"host names must be distinct and at least one: {list(names)}")
        for name in names:
            if not NAME_RE.match(name):
                raise HostsError(f"host name {name!r}: 1-8 of [a-z0-9], starting with a letter")
        self.names = list(names)
        self.owner_pid = os.getpid() if owner_pid == -1 else owner_pid
        self.index = -1
        self.dir = Path()
        self.hosts: dict[str, Host] = {}
        self.key = Path()
        self.known_hosts = Path()
        # The hosts' sshd processes, reaped at down (the CLI leaves them to init).
        self._procs: list[subprocess.Popen[bytes]] = []

    # ---- naming
    @property
    def bridge(self) -> str:
        return f"{PREFIX}{self.index}-br"

    @property
    def bridge_address(self) -> str:
        return BRIDGE_ADDR.format(k=self.index)

    @property
    def subnet(self) -> str:
        return SUBNET.format(k=self.index)

    def __getitem__(self, name: str) -> Host:
        return self.hosts[name]

    def __iter__(self) -> Iterator[Host]:
        return iter(self.hosts.values())

    # ---- lifecycle
    def __enter__(self) -> TestHosts:
        self.up()
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()

    def up(self) -> None:
        cleanup_stale()
        self.index = _reserve_index(self.owner_pid)
        try:
            self._up()
        except BaseException:
            self.down()
            raise

    def _up(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{self.index}-", dir=TMP_BASE))
        self._save_state()
        self.key = self.dir / "id_ed25519"
        _sh(
            "ssh-keygen",
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "bob-test-hosts",
            "-f",
            str(self.key),
        )
        (self.dir / "authorized_keys").write_text(Path(f"{self.key}.pub").read_text())
        for i, name in enumerate(self.names):
            self.hosts[name] = Host(
                name=name,
                netns=f"{PREFIX}{self.index}-{name}",
                address=HOST_ADDR.format(k=self.index, i=FIRST_HOST + i),
                veth=f"{PREFIX}{self.index}v{i}",
                root=self.dir / name,
            )
        self._save_state()
        _sh("ip", "link", "add", self.bridge, "type", "bridge")
        # br_netfilter (docker loads it) hands bridged packets to iptables, whose FORWARD
        # policy docker sets to DROP: let this bridge's host-to-host traffic through.
        _sh("iptables", "-I", "FORWARD", *_forward_rule(self.index))
        _sh("ip", "addr", "add", f"{self.bridge_address}/24", "dev", self.bridge)
        _sh("ip", "link", "set", self.bridge, "up")
        known = []
        for host in self.hosts.values():
            known.append(self._make_host(host))
        self.known_hosts = self.dir / "known_hosts"
        self.known_hosts.write_text("".join(known))
        _note_mount_points()
        for host in self.hosts.values():
            self._start_host(host)
        self._save_state()
        for host in self.hosts.values():
            self._await_ssh(host)

    def _make_host(self, host: Host) -> str:
        """Its network and private directories; returns its known_hosts line."""
        peer = f"{host.veth}p"
        _sh("ip", "netns", "add", host.netns)
        _sh("ip", "link", "add", host.veth, "type", "veth", "peer", "name", peer)
        _sh("ip", "link", "set", host.veth, "master", self.bridge)
        _sh("ip", "link", "set", host.veth, "up")
        _sh("ip", "link", "set", peer, "netns", host.netns)
        inside = ("ip", "netns", "exec", host.netns, "ip")
        _sh(*inside, "link", "set", peer, "name", "eth0")
        _sh(*inside, "addr", "add", f"{host.address}/24", "dev", "eth0")
        _sh(*inside, "link", "set", "eth0", "up")
        _sh(*inside, "link", "set", "lo", "up")

        host.root.mkdir()
        etc = host.root / "etc"
        _sh("cp", "-a", "/etc", str(etc))
        (etc / "hostname").write_text(f"{host.hostname}\n")
        lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"]
        lines += [f"{h.address}\t{h.hostname} {h.name}" for h in self.hosts.values()]
        lines.append(f"{self.bridge_address}\t{PREFIX}{self.index}-machine")
        (etc / "hosts").write_text("\n".join(lines) + "\n")
        pg_etc = etc / "postgresql"
        if pg_etc.is_dir():
            for child in pg_etc.iterdir():
                shutil.rmtree(
                    child
                ) if child.is_dir() and not child.is_symlink() else child.unlink()
        for path in (*PRIVATE_DIRS, "/tmp"):
            private = host.root / path.strip("/").replace("/", "-")
            private.mkdir()
            _copy_owner_mode(Path(path), private)
        _sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host.root / "ssh_host_key"))
        (host.root / "sshd_config").write_text(
            "\n".join(
                [
                    f"ListenAddress {host.address}",
                    "Port 22",
                    f"HostKey {host.root / 'ssh_host_key'}",
                    "PidFile none",
                    "PermitRootLogin prohibit-password",
                    "PubkeyAuthentication yes",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "UsePAM no",
                    # The key lives under /var/tmp (world-writable): no ownership walk.
                    "StrictModes no",
                    f"AuthorizedKeysFile {self.dir / 'authorized_keys'}",
                    "Subsystem sftp internal-sftp",
                    "PrintMotd no",
                    # Ansible's ControlPersist and long deploy tasks: generous limits.
                    "MaxSessions 50",
                    "MaxStartups 50:30:100",
                    "ClientAliveInterval 0",
                    "",
                ]
            )
        )
        pub = (host.root / "ssh_host_key.pub").read_text().split()
        return f"{host.address} {pub[0]} {pub[1]}\n"

    def _boot_script(self, host: Host) -> str:
        """Runs inside the host's fresh mount and UTS namespaces, then becomes its sshd."""
        q = shlex.quote
        root = host.root
        steps = [
            "set -e",
            f"hostname {q(host.hostname)}",
            f"mount --bind {q(str(root / 'etc'))} /etc",
        ]
        for path in PRIVATE_DIRS:
            steps.append(f"mkdir -p {q(path)}")  # on the machine if it lacks it; see down()
            src = root / path.strip("/").replace("/", "-")
            steps.append(f"mount --bind {q(str(src))} {q(path)}")
        # /run: keep the docker socket across the tmpfs by binding it to a file of ours first.
        keep_sock = root / "docker.sock"
        if Path(DOCKER_SOCK).exists():
            keep_sock.touch()
            steps.append(f"mount --bind {DOCKER_SOCK} {q(str(keep_sock))}")
        steps += [
            "mount -t tmpfs -o mode=0755,size=256m tmpfs-bob-host /run",
            "mkdir -p /run/sshd /run/lock && chmod 1777 /run/lock",
            "install -d -o postgres -g postgres -m 2775 /run/postgresql 2>/dev/null || true",
        ]
        if keep_sock.exists():
            steps.append(f"touch {DOCKER_SOCK} && mount --bind {q(str(keep_sock))} {DOCKER_SOCK}")
        steps += [
            f"mount --bind {q(str(root / 'tmp'))} /tmp",
            f"exec /usr/sbin/sshd -D -e -f {q(str(root / 'sshd_config'))} "
            f"-E {q(str(root / 'sshd.log'))}",
        ]
        return "\n".join(steps)

    def _start_host(self, host: Host) -> None:
        log = open(host.root / "boot.log", "wb")  # noqa: SIM115 - handed to the child
        with log:
            proc = subprocess.Popen(
                ["ip", "netns", "exec", host.netns]
                + ["unshare", "--mount", "--uts", "--propagation", "private"]
                + ["sh", "-c", self._boot_script(host)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C meant for pytest does not reach sshd first
            )
        host.pid = proc.pid
        self._procs.append(proc)

    def _await_ssh(self, host: Host) -> None:
        deadline = time.monotonic() + 30
        last = ""
        while time.monotonic() < deadline:
            done = self.ssh(host.name, "hostname", check=False, timeout=15)
            if done.returncode == 0 and done.stdout.strip() == host.hostname:
                return
            last = done.stderr.strip()
            time.sleep(0.2)
        boot = (host.root / "boot.log").read_text(errors="replace")
        sshd = (
            (host.root / "sshd.log").read_text(errors="replace")
            if (host.root / "sshd.log").exists()
            else ""
        )
        raise HostsError(
            f"host {host.name}: ssh did not answer in 30s: {last}\nboot: {boot}\nsshd: {sshd}"
        )

    def down(self) -> None:
        if self.index >= 0:
            teardown(self.index)
            for proc in self._procs:
                with contextlib.suppress(Exception):
                    proc.wait(timeout=5)
            self.index = -1

    def _save_state(self) -> None:
        state = {
            "index": self.index,
            "owner_pid": self.owner_pid,
            "owner_started": _start_time(self.owner_pid) if self.owner_pid else None,
            "dir": str(self.dir),
            "hosts": {
                h.name: {"netns": h.netns, "address": h.address, "veth": h.veth, "pid": h.pid}
                for h in self.hosts.values()
            },
        }
        path = STATE_DIR / f"{self.index}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=1))
        tmp.replace(path)

    # ---- using the hosts
    def ssh_args(self, name: str) -> list[str]:
        host = self.hosts[name]
        return [
            "ssh",
            "-i",
            str(self.key),
            "-o",
            f"UserKnownHostsFile={self.known_hosts}",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=5",
            f"root@{host.address}",
        ]

    def ssh(
        self, name: str, command: str, *, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Runs `command` on host `name` over SSH, as Ansible would."""
        return _sh(*self.ssh_args(name), command, check=check, timeout=timeout)

    def run(
        self, name: str, command: str, *, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Runs `command` in host `name`'s namespaces without SSH (works while it is cut off)."""
        host = self.hosts[name]
        return _sh(
            "nsenter", "-t", str(host.pid), "-m", "-u", "-n", "--", "sh", "-c", command,
            check=check, timeout=timeout,
        )  # fmt: skip

    def cut(self, name: str) -> None:
        """Cuts host `name` off the network: its port on the bridge goes down, so packets to
        and from it are dropped (connections hang as on a real partition, none is reset)."""
        _sh("ip", "link", "set", self.hosts[name].veth, "down")

    def restore(self, name: str) -> None:
        _sh("ip", "link", "set", self.hosts[name].veth, "up")

    @contextlib.contextmanager
    def partitioned(self, name: str) -> Iterator[None]:
        self.cut(name)
        try:
            yield
        finally:
            self.restore(name)

    def pids(self, name: str) -> list[int]:
        """Every process in host `name`'s network namespace (its sshd, its services)."""
        return _netns_pids(self.hosts[name].netns)

    # ---- for people and inventories
    def inventory(self, groups: dict[str, Sequence[str]] | None = None) -> str:
        """An INI inventory: every host with its address, key and known_hosts; `groups` maps
        a group (role) to host names."""
        lines = ["[all]"]
        lines += [f"{h.name} ansible_host={h.address}" for h in self.hosts.values()]
        lines += [
            "",
            "[all:vars]",
            "ansible_user=root",
            # /root is shared with the machine: its login PATH may name another python.
            "ansible_python_interpreter=/usr/bin/python3",
            f"ansible_ssh_private_key_file={self.key}",
            f"ansible_ssh_common_args='-o UserKnownHostsFile={self.known_hosts} "
            "-o StrictHostKeyChecking=yes'",
        ]
        for group, members in (groups or {}).items():
            lines += ["", f"[{group}]", *members]
        return "\n".join(lines) + "\n"

    def describe(self) -> str:
        out = [
            f"instance {self.index}: bridge {self.bridge} {self.bridge_address}/24, dir {self.dir}",
            f"key: {self.key} (user root)",
            f"known_hosts: {self.known_hosts}",
        ]
        for h in self.hosts.values():
            out.append(
                f"  {h.name:8} {h.address:14} netns {h.netns} veth {h.veth} sshd pid {h.pid}"
            )
        out.append(f"ssh: {shlex.join(self.ssh_args(self.names[0]))}")
        return "\n".join(out)


def _copy_owner_mode(model: Path, target: Path) -> None:
    try:
        st = model.stat()
    except OSError:
        return
    os.chown(target, st.st_uid, st.st_gid)
    os.chmod(target, stat.S_IMODE(st.st_mode))


def _netns_pids(netns: str) -> list[int]:
    done = _sh("ip", "netns", "pids", netns, check=False)
    return [int(p) for p in done.stdout.split()] if done.returncode == 0 else []


def _reserve_index(owner_pid: int | None) -> int:
    """The lowest free instance index, reserved by creating its state file exclusively."""
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    links = _sh("ip", "-o", "link", "show").stdout
    routes = _sh("ip", "route", "show").stdout
    for k in range(MAX_INSTANCES):
        if f" {PREFIX}{k}-br" in links or f" {PREFIX}{k}v" in links:
            continue
        if SUBNET.format(k=k).rsplit(".", 1)[0] + "." in routes:
            continue
        try:
            fd = os.open(STATE_DIR / f"{k}.json", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            continue
        with os.fdopen(fd, "w") as f:
            json.dump({"index": k, "owner_pid": owner_pid, "hosts": {}}, f)
        return k
    raise HostsError(f"no free test-host instance among {MAX_INSTANCES}")


def _kill_all(netns_names: Sequence[str]) -> None:
    """SIGTERM then SIGKILL every process in those namespaces, until none is left."""
    for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 10.0)):
        pids = [p for ns in netns_names for p in _netns_pids(ns)]
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not any(_netns_pids(ns) for ns in netns_names):
                return
            time.sleep(0.1)
    left = {ns: _netns_pids(ns) for ns in netns_names}
    raise HostsError(f"processes survive SIGKILL in test hosts: {left}")


def _forward_rule(k: int) -> list[str]:
    bridge = f"{PREFIX}{k}-br"
    return [
        "-i",
        bridge,
        "-o",
        bridge,
        "-m",
        "comment",
        "--comment",
        f"{PREFIX}{k}",
        "-j",
        "ACCEPT",
    ]


def _remove_forward_rules(k: int) -> None:
    while _sh("iptables", "-D", "FORWARD", *_forward_rule(k), check=False).returncode == 0:
        pass


def teardown(k: int) -> None:
    """Removes instance k: processes, namespaces, links, its directory, its state file."""
    state_path = STATE_DIR / f"{k}.json"
    state: dict = {}
    with contextlib.suppress(OSError, ValueError):
        state = json.loads(state_path.read_text())
    netns = [ns for ns in _all_netns() if ns.startswith(f"{PREFIX}{k}-")]
    _kill_all(netns)
    for ns in netns:
        _sh("ip", "netns", "del", ns, check=False)
    for link in _all_links():
        if link.startswith((f"{PREFIX}{k}v", f"{PREFIX}{k}-")):
            _sh("ip", "link", "del", link, check=False)
    _remove_forward_rules(k)
    dirs = [Path(state["dir"])] if state.get("dir") else []
    dirs += list(TMP_BASE.glob(f"{PREFIX}{k}-*"))
    for d in set(dirs):
        _remove_dir(d)
    state_path.unlink(missing_ok=True)
    if not list(STATE_DIR.glob("*.json")):
        # No instance is up: the empty mount points made on the machine can go.
        for path in PRIVATE_DIRS:
            with contextlib.suppress(OSError):
                if Path(path).is_dir() and not any(Path(path).iterdir()):
                    _remove_mount_point(Path(path))


def _remove_mount_point(path: Path) -> None:
    """Only what an instance created (recorded at its up), never the machine's own."""
    if str(path) in _created_mount_points():
        path.rmdir()
        _forget_mount_point(str(path))


def _created_mount_points() -> set[str]:
    with contextlib.suppress(OSError):
        return set((STATE_DIR / "mount-points").read_text().split())
    return set()


def _forget_mount_point(path: str) -> None:
    left = _created_mount_points() - {path}
    (STATE_DIR / "mount-points").write_text("".join(f"{p}\n" for p in sorted(left)))


def _note_mount_points() -> None:
    """Records which mount points a host's boot will create on the machine."""
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    missing = {p for p in PRIVATE_DIRS if not Path(p).exists()}
    if missing:
        left = _created_mount_points() | missing
        (STATE_DIR / "mount-points").write_text("".join(f"{p}\n" for p in sorted(left)))


def _remove_dir(d: Path) -> None:
    if not d.is_dir():
        return
    mounted = [
        line.split()[4]
        for line in Path("/proc/self/mountinfo").read_text().splitlines()
        if line.split()[4].startswith(str(d))
    ]
    if mounted:
        raise HostsError(f"not removing {d}: mounts under it in this namespace: {mounted}")
    shutil.rmtree(d)


def _all_netns() -> list[str]:
    return [line.split()[0] for line in _sh("ip", "netns", "list").stdout.splitlines() if line]


def _all_links() -> list[str]:
    out = _sh("ip", "-o", "link", "show").stdout
    return [line.split(":")[1].strip().split("@")[0] for line in out.splitlines()]


def _instances_in_use() -> dict[int, dict]:
    found: dict[int, dict] = {}
    for path in STATE_DIR.glob("*.json"):
        with contextlib.suppress(OSError, ValueError):
            state = json.loads(path.read_text())
            found[int(state["index"])] = state
    return found


def _leftover_indexes() -> set[int]:
    """Instances that exist on the machine (by name), with or without a state file."""
    pattern = re.compile(rf"^{PREFIX}(\d+)[-v]")
    names = _all_netns() + _all_links() + [p.name for p in TMP_BASE.glob(f"{PREFIX}*")]
    found = {int(m.group(1)) for n in names if (m := pattern.match(n))}
    return found | set(_forward_rule_indexes())


def _forward_rule_indexes() -> list[int]:
    rules = _sh("iptables", "-S", "FORWARD", check=False).stdout
    return [int(k) for k in re.findall(rf"--comment \"?{PREFIX}(\d+)\"? ", rules)]


def cleanup_stale() -> list[int]:
    """Tears down instances whose owner died (a crashed test run) and orphans without a
    state file; leaves hosts brought up by hand (no owner) and live owners' alone."""
    states = _instances_in_use()
    removed = []
    for k in sorted(_leftover_indexes() | set(states)):
        state = states.get(k)
        if state is not None:
            owner = state.get("owner_pid")
            if owner is None or _pid_alive(owner, state.get("owner_started")):
                continue
        teardown(k)
        removed.append(k)
    return removed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.deploy.hosts", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="bring up N hosts and leave them up")
    up.add_argument("count", type=int)
    up.add_argument("--names", help="comma-separated host names (default h1..hN)")
    down = sub.add_parser("down", help="remove hosts")
    down.add_argument("index", type=int, nargs="?", help="the instance to remove")
    down.add_argument("--all", action="store_true", help="every instance, also live ones")
    sub.add_parser("list", help="instances and their hosts")
    args = parser.parse_args(argv)

    if args.command == "up":
        names = args.names.split(",") if args.names else [f"h{i + 1}" for i in range(args.count)]
        if len(names) != args.count:
            parser.error(f"--names has {len(names)} names, count is {args.count}")
        hosts = TestHosts(names, owner_pid=None)
        hosts.up()
        print(hosts.describe())
        print("\n# inventory skeleton (add the role groups):")
        print(hosts.inventory())
        print(f"# remove with: python -m tests.deploy.hosts down {hosts.index}")
        return 0
    if args.command == "list":
        for k, state in sorted(_instances_in_use().items()):
            print(f"instance {k} owner {state.get('owner_pid')} dir {state.get('dir')}")
            for name, h in state.get("hosts", {}).items():
                print(f"  {name:8} {h['address']:14} netns {h['netns']} sshd pid {h['pid']}")
        return 0
    if args.all:
        targets = sorted(_leftover_indexes() | set(_instances_in_use()))
    elif args.index is not None:
        targets = [args.index]
    else:
        targets = cleanup_stale()
        print(f"removed stale instances: {targets or 'none'}")
        return 0
    for k in targets:
        teardown(k)
    print(f"removed instances: {targets or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
