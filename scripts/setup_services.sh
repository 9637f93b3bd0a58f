#!/usr/bin/env bash
# Installs and starts what the cluster and its tests need on a fresh Debian machine, as root:
# RabbitMQ, the Docker engine, busybox-static (the source of the local test image), git,
# openssh-server, python3-venv and supervisor (the deploy tests' hosts), Chromium with its
# driver (the web page's browser test) and PostgreSQL (with the role and database the tests
# use).
# Idempotent: what is installed or running already is left alone.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)

need=()
command -v rabbitmq-server >/dev/null || need+=(rabbitmq-server)
command -v dockerd >/dev/null || need+=(docker.io)
[ -x /bin/busybox ] || need+=(busybox-static)
# The reference git resource provider (bob_plugins.resource_git) runs git.
command -v git >/dev/null || need+=(git)
# The deploy tests' hosts (tests/deploy/hosts.py) each run their own sshd in a namespace;
# the machine's own ssh service is not needed (policy-rc.d, where present, keeps it off).
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
# What `make deploy` installs on those hosts, which have no internet and share this
# machine's /usr: the virtualenv module and the process supervisor of hosts without systemd.
dpkg -s python3-venv >/dev/null 2>&1 || need+=(python3-venv)
command -v supervisord >/dev/null || need+=(supervisor)
# The web page's browser test (tests/page) drives Debian's headless Chromium through its
# WebDriver.
[ -x /usr/bin/chromium ] || need+=(chromium)
[ -x /usr/bin/chromedriver ] || need+=(chromium-driver)
# entities' tests and benchmarks run on PostgreSQL beside SQLite.
command -v pg_ctlcluster >/dev/null && ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 \
  || need+=(postgresql)
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

if ! rabbitmqctl -q status >/dev/null 2>&1; then
  echo "setup: starting RabbitMQ"
  rabbitmq-server -detached
fi
# await_startup waits for the node itself; the first call may race the node's boot.
for _ in $(seq 1 60); do
  rabbitmqctl -q await_startup >/dev/null 2>&1 && break
  sleep 1
done
rabbitmqctl -q await_startup >/dev/null

if ! timeout 20 docker info >/dev/null 2>&1 && pgrep -x dockerd >/dev/null; then
  # Running but not answering: Debian's 20.10 can deadlock in libnetwork under heavy
  # container churn (moby#42545, e.g. a container rename waiting on a network's lock for
  # ever); only a restart brings it back.
  echo "setup: dockerd does not answer; restarting it"
  pkill -x dockerd || true
  for _ in $(seq 1 30); do pgrep -x dockerd >/dev/null || break; sleep 1; done
  pkill -9 -x dockerd 2>/dev/null || true
  sleep 1
fi
if ! timeout 20 docker info >/dev/null 2>&1; then
  echo "setup: starting dockerd"
  mkdir -p /var/log
  # A session of its own: Ctrl-C in the terminal of `make run` (which ran this script)
  # stops Bob, never the engine that other work on this machine uses.
  setsid nohup dockerd >/var/log/dockerd.log 2>&1 < /dev/null &
  for _ in $(seq 1 60); do
    timeout 20 docker info >/dev/null 2>&1 && break
    sleep 1
  done
  timeout 20 docker info >/dev/null
fi

bash "$here/scripts/setup_postgres.sh"

"$here/.venv/bin/python" -m devcluster.test_image
