#!/usr/bin/env python3
"""Cross-checks include/faissx/faissx.h against docs/api.md: every faissx_*
function and Faissx* type the header declares must be named in api.md.
Usage: python3 tools/check_docs.py [REPO_ROOT]. Exit 1 and a list if not."""
import re
import sys
from pathlib import Path

root = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent)
hdr = (root / "include/faissx/faissx.h").read_text()
hdr = re.sub(r"/\*.*?\*/", " ", hdr, flags=re.S)  # declarations only
hdr = re.sub(r"//[^\n]*", " ", hdr)
doc = (root / "docs/api.md").read_text()

declared = set(re.findall(r"\b(faissx_[A-Za-z0-9_]+)\s*\(", hdr))
declared |= set(re.findall(r"\b(Faissx[A-Za-z0-9_]+)\b", hdr))
if len(declared) < 20:
    sys.exit("check_docs: found only %d declarations; header parse broken?" % len(declared))
documented = set(re.findall(r"\b([Ff]aissx_?[A-Za-z0-9_]+)\b", doc))
missing = sorted(declared - documented)
if missing:
    print("declared in include/faissx/faissx.h but not in docs/api.md:")
    for m in missing:
        print("  " + m)
    sys.exit(1)
print("check_docs: %d faissx declarations, all in docs/api.md" % len(declared))
