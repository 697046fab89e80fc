#!/usr/bin/env bash
# Compares two builds of meshd side by side: runs the benchmark binary's SUITEs against the
# binaries in BASE_DIR and in NEW_DIR (meshd, meshctl), taking turns (A B, then B A, ...) for
# ROUNDS rounds, keeps every run's tables under OUT_DIR, and prints the median and min-max of each
# table row's numbers per build. Run as root after `cargo build --release --workspace --bins`.
#
#   scripts/bench-ab.sh BASE_DIR NEW_DIR ROUNDS OUT_DIR SUITE...
set -euo pipefail
base=$1 new=$2 rounds=$3 out=$4
shift 4
bench="$(dirname "$0")/../target/release/bench"
[ -n "${CARGO_TARGET_DIR:-}" ] && bench="$CARGO_TARGET_DIR/release/bench"
mkdir -p "$out"
for round in $(seq 1 "$rounds"); do
  if [ $((round % 2)) -eq 1 ]; then order="base new"; else order="new base"; fi
  for which in $order; do
    dir=$base; [ "$which" = new ] && dir=$new
    for suite in "$@"; do
      echo "round $round: $which $suite" >&2
      MESHD_BIN_DIR="$dir" "$bench" "$suite" > "$out/$suite-$which-$round.md" 2>"$out/$suite-$which-$round.log"
    done
  done
done
python3 - "$out" "$@" <<'PY'
import re, statistics, sys, glob, os
out, suites = sys.argv[1], sys.argv[2:]
def rows(path):
    for line in open(path):
        cells = [c.strip() for c in line.strip().strip('|').split('|')]
        if len(cells) < 2 or set(line.strip()) <= set('|-'):
            continue
        nums = [float(m) for c in cells[1:] for m in re.findall(r'^[\d.]+', c)]
        if nums:
            yield cells[0], nums
for suite in suites:
    print(f"\n### {suite}\n")
    print("| row | column | base median (min-max) | new median (min-max) | new / base |")
    print("|---|---|---|---|---|")
    table = {}
    for which in ("base", "new"):
        for path in sorted(glob.glob(os.path.join(out, f"{suite}-{which}-*.md"))):
            for name, nums in rows(path):
                for i, n in enumerate(nums):
                    table.setdefault((name, i), {}).setdefault(which, []).append(n)
    for (name, i), runs in table.items():
        if "base" not in runs or "new" not in runs:
            continue
        b, n = runs["base"], runs["new"]
        mb, mn = statistics.median(b), statistics.median(n)
        ratio = f"{mn / mb:.3f}" if mb else "-"
        print(f"| {name} | {i} | {mb:g} ({min(b):g}-{max(b):g}) | {mn:g} ({min(n):g}-{max(n):g}) | {ratio} |")
PY
