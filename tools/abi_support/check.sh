#!/bin/sh
# Fails when docs/ABI_SUPPORT.md differs from the hostcall table.
set -e
gen=${1:-${BUILD:-build/rel}/gen_abi_support}
if "$gen" | diff -u docs/ABI_SUPPORT.md - >/dev/null; then
    echo "1 passed, 0 failed"
else
    "$gen" | diff -u docs/ABI_SUPPORT.md - | head -20
    echo "docs/ABI_SUPPORT.md is stale: run make docs"
    echo "0 passed, 1 failed"
    exit 1
fi
