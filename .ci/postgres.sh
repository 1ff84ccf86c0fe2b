#!/usr/bin/env bash
# Start a throw-away PostgreSQL cluster on loopback for the multi-worker tests and print shell lines
# that export its URL and the command that stops it. Installs Debian's postgresql when missing.
# Usage: pg_env=$(.ci/postgres.sh) && eval "$pg_env"
set -euo pipefail
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) >&2
fi
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
dir=$(mktemp -d /tmp/budgetnas-pg.XXXXXX)
# PostgreSQL refuses to run as root: run its tools as the postgres user when we are root.
if [ "$(id -u)" = 0 ]; then chown postgres "$dir"; as_pg="su postgres -s /bin/sh -c"; else as_pg="sh -c"; fi
$as_pg "$bin/initdb -D $dir/data -A trust -U postgres" >/dev/null
$as_pg "$bin/pg_ctl -D $dir/data -l $dir/log -o '-p $port -k $dir -c listen_addresses=127.0.0.1' -w start" >&2
$as_pg "$bin/createdb -h 127.0.0.1 -p $port -U postgres budgetnas"
echo "export BUDGETNAS_TEST_POSTGRES=postgresql://postgres@127.0.0.1:$port/budgetnas"
echo "export BUDGETNAS_TEST_POSTGRES_STOP=\"$as_pg '$bin/pg_ctl -D $dir/data -m fast stop'\""
# tests/test_faults.py stops the server mid-search and starts it again with this
echo "export BUDGETNAS_TEST_POSTGRES_START=\"$as_pg \\\"$bin/pg_ctl -D $dir/data -l $dir/log -o '-p $port -k $dir -c listen_addresses=127.0.0.1' -w start\\\"\""
