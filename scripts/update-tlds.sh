#!/usr/bin/env bash
# Regenerates dns/src/tlds.txt: the public top-level domains (the ICANN section of the
# Public Suffix List, from Debian's `publicsuffix` package, IDNs in their xn-- form) plus the
# special-use names resolvers treat specially (RFC 6761, 6762, 7686, ICANN's .internal). meshd
# refuses networks named like one, and dotted task names ending in one (see dns/src/public.rs).
set -euo pipefail
list=${1:-/usr/share/publicsuffix/public_suffix_list.dat}
out="$(dirname "$0")/../dns/src/tlds.txt"
python3 - "$list" > "$out" <<'PY'
import sys
tlds = set()
icann = False
for line in open(sys.argv[1], encoding="utf-8"):
    line = line.strip()
    if "BEGIN ICANN DOMAINS" in line: icann = True
    if "END ICANN DOMAINS" in line: icann = False
    if not icann or not line or line.startswith("//"): continue
    label = line.lstrip("!*.").split(".")[-1]
    tlds.add(label.encode("idna").decode("ascii").lower())
tlds |= {"local", "localhost", "test", "invalid", "example", "onion", "internal", "alt"}
print("\n".join(sorted(tlds)))
PY
echo "$(wc -l < "$out") names in $out"
