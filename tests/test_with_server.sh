#!/bin/bash
# tests/with_server.sh takes its port as the C fixture does: every port of
# the range but one is claimed by a live process (this script), so the
# server must get that one; the claim names with_server.sh while it runs
# and is gone after; a stale claim (its process gone) is taken over.
#   test_with_server.sh WITH_SERVER_SH SERVER_BIN
set -u
ws=$1
server=$2
dir=$(mktemp -d)
shared=/tmp/faissx-test-ports-$(id -u) # where the other suites claim
mkdir -p "$shared"
free=""
trap 'rm -rf "$dir"; [ -z "$free" ] || rm -f "$shared/$free"' EXIT
fail() {
    echo "FAIL: $*" >&2
    exit 1
}

lo=20000
hi=$(awk '{print $1}' /proc/sys/net/ipv4/ip_local_port_range)
[ $((hi - lo)) -ge 1000 ] || fail "unusual ip_local_port_range: $hi"

# The one left free: a port nothing listens on now, held against the
# other suites' servers (claimed where they claim) while this test runs.
for ((p = lo + 4321; p < hi; p++)); do
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null &&
        (set -C; echo $$ >"$shared/$p") 2>/dev/null; then
        free=$p
        break
    fi
done
[ -n "$free" ] || fail "no port free to leave unclaimed"
for ((p = lo; p < hi; p++)); do
    [ "$p" = "$free" ] || echo $$ >"$dir/$p"
done

# The program reports the URL it was given, the claim of the port while
# it runs, and its parent (with_server.sh).
out=$(FXT_PORT_CLAIM_DIR=$dir "$ws" "$server" sh -c \
    'echo "$FAISSX_SERVER $(cat "$1/${FAISSX_SERVER##*:}") $PPID"' sh "$dir") ||
    fail "with_server.sh failed: $out"
set -- $out
[ "$1" = "tcp://127.0.0.1:$free" ] ||
    fail "the server got $1, claimed by another process (the free port was $free)"
[ "$2" = "$3" ] || fail "the claim of port $free names $2, not with_server.sh ($3)"
[ ! -e "$dir/$free" ] || fail "the claim of port $free outlived with_server.sh"

# A stale claim: a pid that cannot exist.
echo 999999999 >"$dir/$free"
out=$(FXT_PORT_CLAIM_DIR=$dir "$ws" "$server" sh -c 'echo "$FAISSX_SERVER"') ||
    fail "with_server.sh failed over a stale claim: $out"
[ "$out" = "tcp://127.0.0.1:$free" ] ||
    fail "the stale claim of port $free was not taken over: $out"
[ ! -e "$dir/$free" ] || fail "the taken-over claim outlived with_server.sh"

# All ports held by live processes: a clear refusal, no server.
echo $$ >"$dir/$free"
if out=$(FXT_PORT_CLAIM_DIR=$dir "$ws" "$server" true 2>&1); then
    fail "with_server.sh ran with every port claimed"
fi
case $out in
*"no free test port"*) ;;
*) fail "unexpected message with every port claimed: $out" ;;
esac
echo "ok"
