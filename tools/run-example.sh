#!/bin/sh
# The main job: set up a fresh Debian 12 machine, build faissx, and run the
# embedded example (build an IVF index, search it, write it to disk, read it
# back, check the answers are identical).
set -eu
cd "$(dirname "$0")/.."
sh tools/deps.sh
[ -d build ] || meson setup build
ninja -C build
mkdir -p build/run
cd build/run
OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE} ../examples/example_c example_ivf.faiss
