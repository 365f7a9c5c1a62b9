#!/usr/bin/env python3
"""Cross-checks the code against the docs: every faissx_* function and
Faissx* type include/faissx/faissx.h declares is named in docs/api.md; every
faissx-server flag (and its FAISSX_ variable) has a row in
docs/operations.md's option table, and every row a flag; every FAISSX_
variable the library reads is mentioned in docs/ or README.md, and every
FAISSX_ name the docs mention exists in the code.
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

# --- faissx-server's flags and environment variables vs docs/operations.md.
# Every flag of net/server_main.c's option table (each also read as
# FAISSX_<NAME>) has a row in operations.md's option table naming both, and
# every row names a real flag.
srv = (root / "net/server_main.c").read_text()
m = re.search(r"static const struct option options\[\] = \{(.*?)\n\};", srv, re.S)
if not m:
    sys.exit("check_docs: cannot find the option table in net/server_main.c")
flags = [f for f in re.findall(r'\{"([a-z0-9-]+)",', m.group(1))
         if f not in ("help", "version")]
if len(flags) < 10:
    sys.exit("check_docs: found only %d server flags; parse broken?" % len(flags))
ops = (root / "docs/operations.md").read_text()
m = re.search(r"^## Options\n(.*?)^## ", ops, re.S | re.M)
if not m:
    sys.exit("check_docs: docs/operations.md has no '## Options' section")
ops = m.group(1)
rows = {r.group(1): r.group(0) for r in
        re.finditer(r"^\| `--([a-z0-9-]+)[^\n]*", ops, re.M)}
server_env = {"FAISSX_" + f.upper().replace("-", "_") for f in flags}
problems = []
for f in flags:
    env = "FAISSX_" + f.upper().replace("-", "_")
    if f not in rows:
        problems.append("faissx-server --%s has no row in docs/operations.md's option table" % f)
    elif "`%s`" % env not in rows[f]:
        problems.append("docs/operations.md: the row of --%s does not name %s" % (f, env))
for f in sorted(set(rows) - set(flags)):
    problems.append("docs/operations.md documents --%s, which faissx-server does not have" % f)

# --- FAISSX_* environment variables the library reads (string literals in
# the sources) are documented somewhere in docs/ or the README, and every
# FAISSX_* name the docs mention exists in the code.
docs_text = "\n".join(p.read_text() for p in sorted((root / "docs").glob("*.md")))
docs_text += (root / "README.md").read_text()
code_files = [p for d in ("core", "net", "persist", "kernels", "transforms",
                          "binary", "include")
              for p in sorted((root / d).rglob("*"))
              if p.is_file() and p.suffix in (".c", ".cpp", ".h", ".in")]
code = "\n".join(p.read_text(errors="replace") for p in code_files)
read_env = set(re.findall(r'"(FAISSX_[A-Z0-9_]*[A-Z0-9])"', code))
if len(read_env) < 10:
    sys.exit("check_docs: found only %d FAISSX_ variables in the code; parse broken?" % len(read_env))
for v in sorted(read_env - server_env):
    if not re.search(r"\b%s\b" % v, docs_text):
        problems.append("the code reads %s, which no doc in docs/ or README.md mentions" % v)
known = set(re.findall(r"\bFAISSX_[A-Z0-9_]*[A-Z0-9]\b", code)) | server_env
for v in sorted(set(re.findall(r"\b(FAISSX_[A-Z0-9_]*[A-Z0-9])\b(?!\*)", docs_text)) - known):
    problems.append("the docs mention %s, which the code does not define or read" % v)
if problems:
    print("\n".join(problems))
    sys.exit(1)
print("check_docs: %d server flags and %d FAISSX_ variables, all documented"
      % (len(flags), len(read_env | server_env)))
