#!/bin/bash
# Run a test program as a remote client: start faissx-server on a free
# loopback port, export FAISSX_SERVER, run the program, stop the server and
# require a clean exit from both.
#   with_server.sh SERVER_BIN PROGRAM [ARGS...]
set -u
server=$1
shift
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for attempt in 1 2 3 4 5 6 7 8 9 10; do
    port=$((20000 + (RANDOM * 32768 + RANDOM + $$ + attempt * 7919) % 30000))
    # A port someone already listens on would pass the probe below while
    # our server fails to bind: skip it.
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then continue; fi
    env -u FAISSX_SERVER "$server" --listen "tcp://127.0.0.1:$port" --log-level warn 2>"$log" &
    pid=$!
    up=0
    for _ in $(seq 1 300); do
        if ! kill -0 "$pid" 2>/dev/null; then break; fi
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then up=1; break; fi
        sleep 0.02
    done
    [ "$up" = 1 ] && break
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
done
if [ "$up" != 1 ]; then
    echo "with_server.sh: faissx-server did not start:" >&2
    cat "$log" >&2
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
