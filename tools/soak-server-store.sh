#!/bin/sh
# Soak faissx-server's durable store (not part of CI):
#  1. kill -9 the server (--data-dir) at random moments while clients add
#     acknowledged batches, restart it on the same data directory, and check
#     after each round that every acknowledged vector is present exactly
#     once (tests/test_server_store.c, kill9_under_load_...);
#  2. the embedded store's power-loss rounds under every sync policy
#     (tests/test_powerloss.c).
#   tools/soak-server-store.sh [ROUNDS [SEED]]   default 200 rounds, seed = time
# ROUNDS is at most 1000 for part 1 (ids must stay exact in float32).
# Needs a built tree (build/); runs the test binaries directly.
set -eu
cd "$(dirname "$0")/.."
rounds=${1:-200}
seed=${2:-$(date +%s)}
for f in build/faissx-server build/tests/test_server_store \
         build/tests/server_store_helper build/tests/test_powerloss; do
    [ -x "$f" ] || {
        echo "soak-server-store: $f is missing: build first (ninja -C build)" >&2
        exit 2
    }
done
server_rounds=$rounds
[ "$server_rounds" -le 1000 ] || server_rounds=1000
echo "soak-server-store: $server_rounds kill -9 rounds, $rounds power-loss rounds per policy, seed $seed"
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
FAISSX_SERVER_BIN=$PWD/build/faissx-server \
FAISSX_SERVER_STORE_HELPER=$PWD/build/tests/server_store_helper \
FAISSX_SOAK_ROUNDS=$server_rounds FAISSX_SOAK_SEED=$seed \
    build/tests/test_server_store \
    --filter 'server_store/kill9_under_load_loses_no_acknowledged_write' \
    --verbose --timeout 36000
FAISSX_SOAK_ROUNDS=$rounds FAISSX_SOAK_SEED=$seed \
    build/tests/test_powerloss --verbose --timeout 36000
echo "soak-server-store: passed (seed $seed)"
