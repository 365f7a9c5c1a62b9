#!/usr/bin/env python3
"""Check linker maps (ld -Map) for the kernel substitution (docs/kernels.md).

Usage: check_kernel_link.py substituted|faiss MAP...

substituted: every map loads kernels/dispatch.cpp.o and never libfaiss.a's
member distances_simd.cpp.o; faiss: the reverse.
"""
import re
import sys


def main():
    mode, maps = sys.argv[1], sys.argv[2:]
    ok = True
    for path in maps:
        with open(path, errors="replace") as f:
            text = f.read()
        faiss_member = re.search(r"libfaiss\.a\(distances_simd\.cpp\.o\)", text) is not None
        ours = re.search(r"dispatch\.cpp\.o", text) is not None
        if mode == "substituted":
            good = ours and not faiss_member
        else:
            good = faiss_member and not ours
        print(f"{path}: dispatch.cpp.o {'loaded' if ours else 'absent'}, "
              f"libfaiss.a(distances_simd.cpp.o) {'loaded' if faiss_member else 'absent'}"
              f" -> {'ok' if good else 'WRONG'}")
        ok = ok and good
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
