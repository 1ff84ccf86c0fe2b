#!/usr/bin/env bash
# Start a throw-away PostgreSQL cluster on loopback for the multi-worker tests and print its URL.
# Installs Debian's postgresql package when it is missing. Usage: eval "$(.ci/postgres.sh)"
set -euo pipefail
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) >&2
fi
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
port=${PGPORT_TEST:-54329}
dir=$(mktemp -d /tmp/budgetnas-pg.XXXXXX)
chown postgres "$dir"
runas() { if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$*"; else sh -c "$*"; fi; }
runas "$bin/initdb -D $dir/data -A trust -U postgres" >/dev/null
runas "$bin/pg_ctl -D $dir/data -l $dir/log -o \"-p $port -k $dir -c listen_addresses=127.0.0.1\" -w start" >&2
runas "$bin/createdb -h 127.0.0.1 -p $port -U postgres budgetnas"
echo "export BUDGETNAS_TEST_POSTGRES=postgresql://postgres@127.0.0.1:$port/budgetnas"
echo "export BUDGETNAS_TEST_POSTGRES_STOP='$bin/pg_ctl -D $dir/data -m fast stop'"
