#!/bin/sh
# Pin to one core so the figures are comparable round to round.
b=${BUILD:-build/rel}
if command -v taskset >/dev/null 2>&1; then
    exec taskset -c 1 "$b/bench/hostcall_bench" "$b" "$@"
fi
exec "$b/bench/hostcall_bench" "$b" "$@"
