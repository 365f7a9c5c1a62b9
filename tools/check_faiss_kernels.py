#!/usr/bin/env python3
"""Configure-time check for kernels/ (see docs/kernels.md).

Usage: check_faiss_kernels.py CXX...

Finds the libfaiss.a the compiler links (CXX -print-file-name=libfaiss.a)
and checks that its member distances_simd.cpp.o defines exactly the global
symbols kernels/dispatch.cpp defines (faiss 1.7.3's set). Prints the archive
path and exits 0 when it does; prints why not and exits 1 otherwise.
"""
import os
import subprocess
import sys
import tempfile

MEMBER = "distances_simd.cpp.o"

# What kernels/dispatch.cpp defines, mangled (faiss 1.7.3, x86-64 size_t).
EXPECTED = {
    "_ZN5faiss10fvec_L2sqrEPKfS1_m",
    "_ZN5faiss18fvec_inner_productEPKfS1_m",
    "_ZN5faiss15fvec_norm_L2sqrEPKfm",
    "_ZN5faiss7fvec_L1EPKfS1_m",
    "_ZN5faiss9fvec_LinfEPKfS1_m",
    "_ZN5faiss13fvec_L2sqr_nyEPfPKfS2_mm",
    "_ZN5faiss22fvec_inner_products_nyEPfPKfS2_mm",
    "_ZN5faiss21fvec_L2sqr_ny_nearestEPfPKfS2_mm",
    "_ZN5faiss34fvec_L2sqr_ny_nearest_y_transposedEPfPKfS2_S2_mmm",
    "_ZN5faiss9fvec_maddEmPKffS1_Pf",
    "_ZN5faiss20fvec_madd_and_argminEmPKffS1_Pf",
    "_ZN5faiss8fvec_addEmPKfS1_Pf",
    "_ZN5faiss8fvec_addEmPKffPf",
    "_ZN5faiss8fvec_subEmPKfS1_Pf",
    "_ZN5faiss27compute_PQ_dis_tables_dsub2EmmPKfmS1_bPf",
    "_ZN5faiss14fvec_L2sqr_refEPKfS1_m",
    "_ZN5faiss22fvec_inner_product_refEPKfS1_m",
    "_ZN5faiss19fvec_norm_L2sqr_refEPKfm",
    "_ZN5faiss11fvec_L1_refEPKfS1_m",
    "_ZN5faiss13fvec_Linf_refEPKfS1_m",
    "_ZN5faiss17fvec_L2sqr_ny_refEPfPKfS2_mm",
    "_ZN5faiss26fvec_inner_products_ny_refEPfPKfS2_mm",
    "_ZN5faiss25fvec_L2sqr_ny_nearest_refEPfPKfS2_mm",
    "_ZN5faiss30fvec_L2sqr_ny_y_transposed_refEPfPKfS2_S2_mmm",
    "_ZN5faiss38fvec_L2sqr_ny_nearest_y_transposed_refEPfPKfS2_S2_mmm",
}


def strong_symbols(obj):
    """Strong global symbols obj defines. Weak ones (W/V: inline functions
    such as FaissException's destructors, DW.ref.__gxx_personality_v0) never
    clash, and every object that uses them carries its own copy."""
    out = subprocess.run(["nm", "--defined-only", obj], check=True,
                         capture_output=True, text=True).stdout
    syms = set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        kind, name = parts[-2], parts[-1]
        if kind.isupper() and kind not in "UWV":
            syms.add(name)
    return syms


def main():
    cxx = sys.argv[1:]
    lib = subprocess.run(cxx + ["-print-file-name=libfaiss.a"], check=True,
                         capture_output=True, text=True).stdout.strip()
    lib = os.path.realpath(lib) if os.path.isabs(lib) else lib
    if not os.path.isabs(lib) or not os.path.exists(lib):
        print("libfaiss.a not found by the compiler")
        return 1
    members = subprocess.run(["ar", "t", lib], check=True, capture_output=True,
                             text=True).stdout.split()
    if MEMBER not in members:
        print(f"{lib} has no member {MEMBER}")
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        obj = os.path.join(tmp, MEMBER)
        with open(obj, "wb") as f:
            f.write(subprocess.run(["ar", "p", lib, MEMBER], check=True,
                                   capture_output=True).stdout)
        have = strong_symbols(obj)
    if have != EXPECTED:
        extra = sorted(have - EXPECTED)
        missing = sorted(EXPECTED - have)
        print(f"{lib}({MEMBER}) defines a different symbol set"
              f" (extra: {extra[:3]}, missing: {missing[:3]})")
        return 1
    print(lib)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (OSError, subprocess.CalledProcessError) as e:
        print(f"check failed: {e}")
        sys.exit(1)
