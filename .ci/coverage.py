#!/usr/bin/env python3
"""Per-crate line coverage from `cargo llvm-cov --json --summary-only`, and the gate.

Usage: coverage.py REPORT.json MIN_PERCENT
Test code (tests/, benches/, the testing harness modules) is already left out
of the report by --ignore-filename-regex in .ci/run.
"""
import json
import os
import sys

report, minimum = sys.argv[1], float(sys.argv[2])
root = os.getcwd() + os.sep
files = json.load(open(report))["data"][0]["files"]
crates = {}
for f in files:
    name = f["filename"]
    if not name.startswith(root):
        continue  # dependencies
    crate = name[len(root):].split(os.sep, 1)[0]
    lines = f["summary"]["lines"]
    count, covered = crates.get(crate, (0, 0))
    crates[crate] = (count + lines["count"], covered + lines["covered"])

total_count = sum(c for c, _ in crates.values())
total_covered = sum(c for _, c in crates.values())
print(f"{'crate':<24} {'lines':>8} {'covered':>8} {'%':>7}")
for crate, (count, covered) in sorted(crates.items()):
    pct = 100.0 * covered / count if count else 100.0
    print(f"{crate:<24} {count:>8} {covered:>8} {pct:>6.1f}%")
total = 100.0 * total_covered / total_count if total_count else 0.0
print(f"{'workspace':<24} {total_count:>8} {total_covered:>8} {total:>6.1f}%")
if total < minimum:
    print(f"FAIL: line coverage {total:.1f}% is below {minimum:.0f}%")
    sys.exit(1)
print(f"line coverage {total:.1f}% >= {minimum:.0f}%")
