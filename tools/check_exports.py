#!/usr/bin/env python3
"""Check that libfaiss_c.so exports exactly the FAISS C API plus faissx.h.

Usage: check_exports.py CC LIBRARY INCLUDE_DIR...

* every faiss_* function declared in the system headers
  (/usr/include/faiss/c_api/**/*_c.h, macros expanded) must be exported;
* every function declared in include/faissx/faissx.h must be exported;
* nothing else may be exported (no faiss C++ symbols, no fx_ internals).
"""
import glob
import os
import re
import subprocess
import sys
import tempfile


def declared(cc, includes, headers):
    src = "#include <stdint.h>\n" + "".join(f"#include <{h}>\n" for h in headers)
    with tempfile.NamedTemporaryFile("w", suffix=".c", delete=False) as f:
        f.write(src)
        path = f.name
    try:
        args = [cc, "-E", "-P"] + [f"-I{i}" for i in includes] + [path]
        out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    finally:
        os.unlink(path)
    flat = " ".join(out.split())
    return set(re.findall(r"\b(faissx?_[A-Za-z0-9_]+)\s*\(", flat))


def exported(lib):
    out = subprocess.run(["nm", "-D", "--defined-only", lib], check=True,
                         capture_output=True, text=True).stdout
    return {line.split()[-1] for line in out.splitlines() if line.strip()}


def main():
    cc, lib, includes = sys.argv[1], sys.argv[2], sys.argv[3:]
    root = "/usr/include"
    sys_headers = sorted(os.path.relpath(p, root) for p in
                         glob.glob(f"{root}/faiss/c_api/**/*_c.h", recursive=True))
    upstream = declared(cc, includes, sys_headers)
    ours = declared(cc, includes, ["faissx/faissx.h"]) - upstream
    exp = exported(lib)
    exp_api = {s for s in exp if s.startswith(("faiss_", "faissx_"))}
    ok = True
    missing = sorted(upstream - exp)
    if missing:
        ok = False
        print("declared in the FAISS C API headers but not exported:", *missing, sep="\n  ")
    missing_ext = sorted(ours - exp)
    if missing_ext:
        ok = False
        print("declared in faissx.h but not exported:", *missing_ext, sep="\n  ")
    extra = sorted(exp_api - upstream - ours)
    if extra:
        ok = False
        print("exported but declared in no public header:", *extra, sep="\n  ")
    other = sorted(s for s in exp - exp_api if not s.startswith(("_init", "_fini")))
    if other:
        ok = False
        print("non-API symbols leak from the library:", *other[:20], sep="\n  ")
    print(f"FAISS C API: {len(upstream & exp)}/{len(upstream)} functions exported "
          f"({len(sys_headers)} headers); faissx.h extensions: {len(ours & exp)}/{len(ours)}; "
          f"other exported symbols: {len(other)}")
    if len(upstream) != 304:
        print(f"note: expected 304 declared functions in faiss 1.7.3, found {len(upstream)}")
        ok = False
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
