#!/bin/sh
# Set up a fresh Debian 12 machine, build faissx, and run every test:
#   1. the normal build's suites (C API vs faiss C++, errors, exports, install);
#   2. the C API, remote and durable-store (persist) suites again under
#      AddressSanitizer + UBSan (LeakSanitizer on);
#   3. the multi-threaded client test under ThreadSanitizer, against a
#      TSan-built server (only those two programs are built);
#   4. faissx consumed as a meson subproject.
# Prints a final "N passed, N failed" line.
set -u
cd "$(dirname "$0")/.."
sh tools/deps.sh || exit 1
pass=0
fail=0
step() { # name, command...
    name=$1
    shift
    echo "=== $name"
    if "$@"; then pass=$((pass + 1)); echo "=== $name: passed"; else fail=$((fail + 1)); echo "=== $name: FAILED"; fi
}

build() {
    [ -d build ] || meson setup build || return 1
    ninja -C build
}
unit() { meson test -C build --no-rebuild --print-errorlogs --num-processes 2; }

asan_build() {
    [ -d build-asan ] || meson setup build-asan -Db_sanitize=address,undefined \
        -Db_lundef=false -Dbench=false || return 1
    ninja -C build-asan
}
asan_unit() {
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1:fast_unwind_on_malloc=0 \
    UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    LSAN_OPTIONS=suppressions=$(pwd)/tests/lsan.supp:print_suppressions=0:fast_unwind_on_malloc=0 \
        meson test -C build-asan --no-rebuild --print-errorlogs --num-processes 2 --suite capi --suite remote --suite persist
}

# ThreadSanitizer: test_mt_client (8 threads on one connection, on a pool,
# and through a server restart) and the server it talks to, both built with
# -fsanitize=thread; any report fails the run (halt_on_error, and the test
# fails on a report in the server's log). tests/tsan.supp: third-party code
# only. One OpenMP thread: libgomp is not instrumented.
tsan_build() {
    [ -d build-tsan ] || meson setup build-tsan -Db_sanitize=thread \
        -Db_lundef=false -Dbench=false -Dexamples=false || return 1
    ninja -C build-tsan tests/test_mt_client faissx-server
}
tsan_unit() {
    TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:suppressions=$(pwd)/tests/tsan.supp \
    OMP_NUM_THREADS=1 \
        meson test -C build-tsan --no-rebuild --print-errorlogs --num-processes 1 \
            --timeout-multiplier 3 mt-shared mt-pool mt-reconnect mt-reconfigure
}

step "build" build && step "tests" unit
step "asan+ubsan build" asan_build && step "asan+ubsan tests" asan_unit
step "tsan build" tsan_build && step "tsan tests" tsan_unit
step "meson subproject" sh tools/test-subproject.sh
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
