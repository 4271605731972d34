#!/usr/bin/env bash
# replicas.sh: three `castor serve` replicas on one PostgreSQL behind HAProxy
# (deploy/haproxy.cfg, the documented configuration) and the cross-replica
# cases of replicas.test.mjs: state created on one replica read, continued
# and deleted on another; a live run followed and cancelled from another
# replica; background jobs taken over after kill -9 of their replica; the balancer's health checks and conversation
# stickiness; kill -9 of a replica (every acknowledged id stays retrievable);
# the database stopped and restarted under load (503 JSON errors, then
# recovery without a restart). Starts its own PostgreSQL through
# scripts/with-pg.sh when CST_TEST_PG is not set.
# Env: CASTOR (the binary), CST_SHARED (fixtures).
set -euo pipefail
: "${CASTOR:?set CASTOR to the castor binary}"
: "${CST_SHARED:?set CST_SHARED to the shared fixtures dir}"
HERE="$(cd "$(dirname "$0")" && pwd)"
if [ -z "${CST_TEST_PG:-}" ]; then
  exec bash "$HERE/../../scripts/with-pg.sh" bash "$0" "$@"
fi
command -v haproxy >/dev/null || { echo "haproxy is required (apt-get install haproxy)"; exit 1; }
command -v node >/dev/null || { echo "node is required"; exit 1; }
source "$HERE/lib.bash"
e2e_npm
STORIES="$CST_SHARED/models/stories260K.gguf"
[ -f "$STORIES" ] || { echo "missing fixture $STORIES"; exit 1; }

TMP="$(mktemp -d)"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT
printf 'replica-key-1\nreplica-key-2\n' > "$TMP/keys"
# one thought-signature key for all replicas (docs/deploy.md)
export CASTOR_SIGNATURE_KEY="$(node -e 'console.log(require("crypto").randomBytes(32).toString("hex"))')"

# a free loopback port for the balancer (the kernel's choice)
LB_PORT="$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')"

# live runs shared through the store: a short lease (taken over 3 s after a
# replica dies) and a decode slow enough to observe runs while they are live
# (20 ms a token); the tests wait on states, never on fixed sleeps
export CASTOR_LEASE_S=3 CST_FAULT=decode_sleep_ms:20
start_replica() { # N -> writes $TMP/rN.port, appends the pid to $TMP/pids
  local n=$1
  "$CASTOR" serve -m "$STORIES" --api-keys "$TMP/keys" --host 127.0.0.1 --port 0 --port-file "$TMP/r$n.port" \
    --data-dir "$TMP/d$n" --store "$CST_TEST_PG" -c 256 -np 2 -t 1 --max-output 32 "${@:2}" > "$TMP/r$n.log" 2>&1 &
  echo $! > "$TMP/r$n.pid"
  PIDS+=("$!")
}
# replica 3 queues one request at most: a background job beyond goes to the shared queue
start_replica 1; start_replica 2; start_replica 3 --max-queue 1
for n in 1 2 3; do
  for _ in $(seq 200); do [ -f "$TMP/r$n.port" ] && break; sleep 0.1; done
  [ -f "$TMP/r$n.port" ] || { echo "replica $n did not start:"; cat "$TMP/r$n.log"; exit 1; }
done
export CASTOR_R1="127.0.0.1:$(cat "$TMP/r1.port")" CASTOR_R2="127.0.0.1:$(cat "$TMP/r2.port")"
export CASTOR_R3="127.0.0.1:$(cat "$TMP/r3.port")" CASTOR_LB_BIND="127.0.0.1:$LB_PORT"
haproxy -f "$HERE/../../deploy/haproxy.cfg" -db > "$TMP/haproxy.log" 2>&1 &
PIDS+=("$!")
HAPROXY_PID=$!
for _ in $(seq 100); do curl -s -o /dev/null "http://$CASTOR_LB_BIND/health" && break; sleep 0.1; done
echo "replicas $CASTOR_R1 $CASTOR_R2 $CASTOR_R3 behind haproxy on $CASTOR_LB_BIND (pid $HAPROXY_PID)"

export CASTOR_LB="http://$CASTOR_LB_BIND" CASTOR_KEY=replica-key-1 REPLICA_TMP="$TMP"
export REPLICA_PIDS="$(cat "$TMP/r1.pid") $(cat "$TMP/r2.pid") $(cat "$TMP/r3.pid")"
rc=0
node --test --test-concurrency=1 "$HERE"/replicas.test.mjs || rc=$?
if [ $rc -ne 0 ]; then
  for n in 1 2 3; do echo "--- replica $n log (tail)"; tail -20 "$TMP/r$n.log"; done
  echo "--- haproxy log (tail)"; tail -20 "$TMP/haproxy.log"
fi
exit $rc
