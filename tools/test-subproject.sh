#!/bin/sh
# faissx as a meson subproject of another project: dependency('faissx')
# resolves through meson.override_dependency, and a FAISS C program links.
set -eu
SRC=$(cd "$(dirname "$0")/.." && pwd)
D=$(mktemp -d)
trap 'rm -rf "$D"' EXIT
mkdir -p "$D/consumer/subprojects"
ln -s "$SRC" "$D/consumer/subprojects/faissx"
cp "$SRC/examples/example_c.c" "$D/consumer/main.c"
cat > "$D/consumer/meson.build" <<'MESON'
project('consumer', 'c', default_options: ['buildtype=release'])
subproject('faissx')
faissx = dependency('faissx')
executable('consumer', 'main.c', dependencies: faissx)
MESON
cd "$D/consumer"
meson setup b --wrap-mode=nodownload >/dev/null
ninja -C b >/dev/null
cd b && OMP_NUM_THREADS=1 ./consumer sub.faiss | tail -n 1
