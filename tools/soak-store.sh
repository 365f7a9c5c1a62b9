#!/bin/sh
# Soak the durable store's crash test: kill -9 the writer (tests/store_helper)
# at random moments for many rounds, reopening and checking after each that
# every acknowledged vector is present exactly once (not part of CI).
#   tools/soak-store.sh [ROUNDS [SEED]]     default 1000 rounds, seed = time
# Needs a built tree (build/); runs the test binary directly.
set -eu
cd "$(dirname "$0")/.."
rounds=${1:-1000}
seed=${2:-$(date +%s)}
[ -x build/tests/test_store ] && [ -x build/tests/store_helper ] || {
    echo "soak-store: build first (ninja -C build)" >&2
    exit 2
}
echo "soak-store: $rounds rounds, seed $seed"
FAISSX_STORE_HELPER=$PWD/build/tests/store_helper \
FAISSX_SOAK_ROUNDS=$rounds FAISSX_SOAK_SEED=$seed \
OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 \
    build/tests/test_store --filter 'store/crash_kill9_loses_no_acknowledged_write' \
    --verbose=0 --timeout 36000
echo "soak-store: $rounds rounds passed (seed $seed)"
