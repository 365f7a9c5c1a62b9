#!/bin/sh
# Install into a scratch DESTDIR and build a FAISS C program against it the
# three ways the README promises: pkg-config, plain -lfaiss_c, static.
set -eu
BUILD=$1
SRC=$2
D=$(mktemp -d)
trap 'rm -rf "$D"' EXIT
CC=${CC:-cc}

meson install -C "$BUILD" --no-rebuild --destdir "$D/root" --quiet
pc=$(find "$D/root" -name faiss_c.pc | head -n 1)
[ -n "$pc" ] || { echo "faiss_c.pc was not installed"; exit 1; }
[ -n "$(find "$D/root" -name faissx.pc)" ] || { echo "faissx.pc was not installed"; exit 1; }
[ -f "$(find "$D/root" -path '*include/faissx/faissx.h' | head -n 1)" ] || { echo "faissx.h missing"; exit 1; }
pcdir=$(dirname "$pc")
prefix=$(PKG_CONFIG_PATH=$pcdir pkg-config --variable=prefix faiss_c)
root="$D/root$prefix"
libdir=$(dirname "$(find "$D/root" -name 'libfaiss_c.so' | head -n 1)")
export PKG_CONFIG_PATH=$pcdir

echo "== pkg-config (shared)"
# shellcheck disable=SC2046
$CC "$SRC/examples/example_c.c" $(pkg-config --define-variable=prefix="$root" --cflags --libs faiss_c) -lm -o "$D/ex_pc"
(cd "$D" && LD_LIBRARY_PATH=$libdir OMP_NUM_THREADS=1 ./ex_pc "$D/a.faiss" >/dev/null)

echo "== plain -lfaiss_c"
$CC "$SRC/examples/example_c.c" -I"$root/include" -L"$libdir" -lfaiss_c -lm -o "$D/ex_plain"
(cd "$D" && LD_LIBRARY_PATH=$libdir OMP_NUM_THREADS=1 ./ex_plain "$D/b.faiss" >/dev/null)

echo "== static libfaiss_c.a"
$CC "$SRC/examples/example_c.c" -I"$root/include" "$libdir/libfaiss_c.a" \
    -lfaiss -lopenblas -l:libnng.a -lmbedtls -lmbedx509 -lmbedcrypto -lgomp -lstdc++ -lm -lpthread -o "$D/ex_static"
if ldd "$D/ex_static" | grep -q faiss_c; then echo "static build still links libfaiss_c.so"; exit 1; fi
(cd "$D" && OMP_NUM_THREADS=1 ./ex_static "$D/c.faiss" >/dev/null)

echo "== the shared library is self-contained"
if ldd "$libdir/libfaiss_c.so" | grep -q 'libfaiss\.so'; then echo "libfaiss_c.so needs libfaiss.so"; exit 1; fi
echo "install test: OK"
