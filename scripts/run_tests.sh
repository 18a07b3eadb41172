#!/usr/bin/env bash
# Runs each test command given (a shell command line), in order, and closes with the totals over
# all of them. Every command prints its own "N passed, N failed" line (or
# pytest's "N passed in ..."); a command that fails without one counts as
# one failure. Exits non-zero if anything failed.
set -u
total_passed=0
total_failed=0
total_skipped=0
failed_groups=""
for t in "$@"; do
    echo "== $t"
    out=$(mktemp)
    bash -c "$t" 2>&1 | tee "$out"
    rc=${PIPESTATUS[0]}
    line=$(grep -E '[0-9]+ passed' "$out" | tail -1)
    p=$(echo "$line" | grep -oE '[0-9]+ passed' | grep -oE '[0-9]+' || true)
    f=$(echo "$line" | grep -oE '[0-9]+ failed' | grep -oE '[0-9]+' || true)
    s=$(echo "$line" | grep -oE '[0-9]+ skipped' | grep -oE '[0-9]+' || true)
    p=${p:-0}; f=${f:-0}; s=${s:-0}
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        f=1
    fi
    [ "$rc" -ne 0 ] && failed_groups="$failed_groups $t"
    total_passed=$((total_passed + p))
    total_failed=$((total_failed + f))
    total_skipped=$((total_skipped + s))
    rm -f "$out"
done
echo
[ -n "$failed_groups" ] && echo "failed groups:$failed_groups"
if [ "$total_skipped" -gt 0 ]; then
    echo "total: $total_passed passed, $total_failed failed, $total_skipped skipped"
else
    echo "total: $total_passed passed, $total_failed failed"
fi
[ "$total_failed" -eq 0 ]
