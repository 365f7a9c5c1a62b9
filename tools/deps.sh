#!/bin/sh
# Install what faissx needs on Debian 12 (bookworm). Idempotent.
set -eu
PKGS="build-essential clang cmake meson ninja-build pkg-config python3
      libfaiss-dev libopenblas-dev liblapack-dev
      libnng-dev libmbedtls-dev libuv1-dev libcriterion-dev
      python3-faiss python3-numpy openssl"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "installing:$missing"
    $SUDO apt-get update -q
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends $missing
fi
