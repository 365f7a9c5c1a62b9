#!/bin/bash
# Run a test program as a remote client: start faissx-server on a free
# loopback port, export FAISSX_SERVER, run the program, stop the server and
# require a clean exit from both.
#   with_server.sh SERVER_BIN PROGRAM [ARGS...]
#
# Ports are taken as tests/server_fixture.c takes them, since meson runs
# this script next to the Criterion suites' fixtures:
#  - below the kernel's ephemeral range (ip_local_port_range), which it
#    hands out as the local ends of the suites' outgoing connections;
#  - claimed in the per-user directory the fixtures share (a file per port
#    holding the claimer's pid, created exclusively; a claim whose process
#    is gone is taken over), so no other suite's server picks ours, even
#    while ours is restarting or not yet listening;
#  - ready only when the listening socket is the server's own (a server
#    that failed to bind exits, but until then another process listening
#    there would answer a probe).
set -u
server=$1
shift

claim_dir=${FXT_PORT_CLAIM_DIR:-/tmp/faissx-test-ports-$(id -u)}
mkdir -p "$claim_dir" && chmod 700 "$claim_dir" 2>/dev/null
claimed=""
log=$(mktemp)
cleanup() {
    rm -f "$log"
    for p in $claimed; do rm -f "$claim_dir/$p"; done
}
trap cleanup EXIT

# 0 when this script ($$) now holds the claim on port $1. No subshells:
# a scan of the whole range must stay cheap.
claim() {
    local f=$claim_dir/$1 owner ok
    for _ in 1 2; do
        set -C # the claim file is created exclusively (O_EXCL)
        { echo $$ >"$f"; } 2>/dev/null && ok=1 || ok=0
        set +C
        if [ $ok = 1 ]; then
            claimed="$claimed $1"
            return 0
        fi
        # Held: by a live process, or left by one that is gone.
        owner=""
        { read -r owner <"$f"; } 2>/dev/null
        if [ -z "$owner" ]; then
            [ -e "$f" ] && return 1 # being written: its claimer is alive
            continue                # released meanwhile: try again
        fi
        [ -d "/proc/$owner" ] && return 1
        # Stale. Taken over under the directory's lock, re-read there, so
        # two takers cannot both remove it (the second would remove the
        # first one's fresh claim).
        flock "$claim_dir/.takeover" sh -c \
            '[ "$(cat "$1" 2>/dev/null)" = "$2" ] && rm -f "$1"; exit 0' \
            sh "$f" "$owner"
    done
    return 1
}

# 0 when the socket listening on 127.0.0.1:$2 is one of process $1's.
listens_on() {
    local hex inode
    hex=$(printf '%04X' "$2")
    inode=$(awk -v p=":$hex" '$2 == "0100007F" p && $4 == "0A" {print $10; exit}' \
        /proc/net/tcp 2>/dev/null)
    [ -n "$inode" ] || return 1
    for fd in /proc/"$1"/fd/*; do
        [ "$(readlink "$fd" 2>/dev/null)" = "socket:[$inode]" ] && return 0
    done
    return 1
}

lo=20000
hi=$(awk '{print $1}' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null)
[ -n "$hi" ] || hi=32768
if [ $((hi - lo)) -lt 1000 ]; then # an unusual port range
    lo=10000
    [ "$hi" -gt 11000 ] || hi=20000
fi

up=0
span=$((hi - lo))
for attempt in 1 2 3 4 5 6 7 8 9 10; do
    # A port no other test process holds: a few random picks, then every
    # port of the range in turn.
    port=""
    r=$(((RANDOM * 32768 + RANDOM + $$ * 7919 + attempt * 104729) % span))
    for ((t = 0; t < 64 + span; t++)); do
        if [ $t -lt 64 ]; then
            p=$((lo + (RANDOM * 32768 + RANDOM) % span))
        else
            p=$((lo + (r + t) % span))
        fi
        if claim "$p"; then port=$p; break; fi
    done
    if [ -z "$port" ]; then
        echo "with_server.sh: no free test port in $lo..$((hi - 1)) (claims in $claim_dir)" >&2
        exit 1
    fi
    env -u FAISSX_SERVER "$server" --listen "tcp://127.0.0.1:$port" --log-level warn 2>"$log" &
    pid=$!
    # Until the server listens or exits: no fixed deadline short enough to
    # lose a slow start (ASan on a loaded machine); 120 s at most.
    start=$SECONDS
    while [ $((SECONDS - start)) -lt 120 ]; do
        if ! kill -0 "$pid" 2>/dev/null; then break; fi
        if listens_on "$pid" "$port"; then up=1; break; fi
        sleep 0.02
    done
    [ "$up" = 1 ] && break
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    echo "with_server.sh: faissx-server did not listen on port $port (attempt $attempt); log:" >&2
    cat "$log" >&2
done
if [ "$up" != 1 ]; then
    echo "with_server.sh: faissx-server did not start" >&2
    exit 1
fi
FAISSX_SERVER="tcp://127.0.0.1:$port" "$@"
rc=$?
kill -TERM "$pid"
wait "$pid"
src=$?
if [ "$src" != 0 ]; then
    echo "with_server.sh: faissx-server exited with status $src; log:" >&2
    cat "$log" >&2
    [ "$rc" = 0 ] && rc=1
fi
exit $rc
