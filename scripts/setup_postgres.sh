#!/usr/bin/env bash
# Starts Debian's PostgreSQL without systemd and makes the role and database that the
# tests and benchmarks use (BOB_TEST_PG_URL's default). Idempotent; run as root.
#
# The role may create databases: each test gets a database of its own, copied from a
# migrated template (tests/pg_databases.py). Its password is no secret: the cluster only
# takes password logins on loopback (Debian's pg_hba.conf), and it is for tests only.
set -euo pipefail
role=${BOB_TEST_PG_ROLE:-bob_test}
password=${BOB_TEST_PG_PASSWORD:-bob_test}

version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
# Debian's package makes the cluster "main"; a machine where it was dropped gets it back.
pg_lsclusters -h | awk '{print $1 "/" $2}' | grep -qx "$version/main" \
  || pg_createcluster "$version" main >/dev/null

if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  echo "setup: starting PostgreSQL $version"
  # A session of its own, like dockerd: stopping `make run` never stops the database.
  # Its output to a file, so that no pipe of the caller's (make's, CI's) stays open.
  log=/var/log/postgresql/bob-setup.log
  mkdir -p /var/log/postgresql
  if ! setsid pg_ctlcluster "$version" main start </dev/null >"$log" 2>&1; then
    cat "$log" >&2
    exit 1
  fi
  for _ in $(seq 1 60); do
    pg_isready -q -h 127.0.0.1 -p 5432 && break
    sleep 1
  done
  pg_isready -q -h 127.0.0.1 -p 5432
fi

as_postgres() { runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 "$@"; }
as_postgres -v role="$role" -v password="$password" <<'SQL'
SELECT format('CREATE ROLE %I LOGIN CREATEDB PASSWORD %L', :'role', :'password')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'role') \gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'role', :'role')
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'role') \gexec
SQL
