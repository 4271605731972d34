#!/usr/bin/env bash
# with-pg.sh CMD [ARGS...]: run CMD against a throwaway PostgreSQL server.
# initdb into a fresh temporary directory, start it with pg_ctl on a unix
# socket in that directory (no TCP port, so parallel runs never collide),
# create the database "castor" (user "castor", trust auth), run CMD with
#   CST_TEST_PG  = postgresql:///castor?host=DIR&user=castor
#   CST_PG_DIR   = DIR (the socket directory; data in DIR/data)
#   CST_PG_BIN   = the server's bin directory (pg_ctl, createdb, psql)
# and always stop the server and remove the directory, even when CMD fails.
# PostgreSQL refuses to run as root: as root the server runs as the
# "postgres" user (Debian's package creates it); CMD still runs as the caller.
# CST_PG_FSYNC=on keeps fsync (benchmarks); tests run with fsync=off.
# Exit status: CMD's.
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: with-pg.sh CMD [ARGS...]" >&2; exit 2; }
BIN="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)"
if [ -z "$BIN" ] || [ ! -x "$BIN/initdb" ]; then
  echo "with-pg: PostgreSQL server binaries not found (apt-get install postgresql)" >&2
  exit 1
fi
PGT="$(mktemp -d /tmp/cst-pg.XXXXXX)"
as_pg() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
[ "$(id -u)" -eq 0 ] && chown postgres "$PGT"
chmod 755 "$PGT"
cleanup() {
  as_pg "$BIN/pg_ctl" -D "$PGT/data" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$PGT"
}
trap cleanup EXIT
if ! as_pg "$BIN/initdb" -D "$PGT/data" -A trust -U castor -E UTF8 --no-sync >"$PGT/initdb.log" 2>&1; then
  echo "with-pg: initdb failed:" >&2
  cat "$PGT/initdb.log" >&2
  exit 1
fi
fsync="${CST_PG_FSYNC:-off}"
cat >>"$PGT/data/postgresql.conf" <<EOF
listen_addresses = ''
unix_socket_directories = '$PGT'
max_connections = 300
fsync = $fsync
synchronous_commit = $fsync
full_page_writes = $fsync
EOF
if ! as_pg "$BIN/pg_ctl" -D "$PGT/data" -l "$PGT/server.log" -w -t 60 start >/dev/null; then
  echo "with-pg: the server did not start:" >&2
  cat "$PGT/server.log" >&2 || true
  exit 1
fi
as_pg "$BIN/createdb" -h "$PGT" -U castor castor
export CST_TEST_PG="postgresql:///castor?host=$PGT&user=castor"
export CST_PG_DIR="$PGT" CST_PG_BIN="$BIN"
echo "with-pg: PostgreSQL $("$BIN/postgres" --version | awk '{print $3}') on $PGT (fsync=$fsync)"
rc=0
"$@" || rc=$?
exit $rc
