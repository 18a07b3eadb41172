#!/bin/sh
# Plays each example plugin's scenario through pwrun and prints the reports.
set -e
b=${BUILD:-build/rel}
for s in examples/scenarios/*.json; do
    name=$(basename "$s" .json)
    echo "=== $name: $(sed -n 's/.*"comment": "\(.*\)",*$/\1/p' "$s" | head -1)"
    echo "    $b/pwrun build/wasm/$name.wasm $s"
    "$b/pwrun" "build/wasm/$name.wasm" "$s"
    echo
done
echo "Each report above is what the plugin did. Try your own scenario:"
echo "  $b/pwrun build/wasm/http_headers.wasm examples/scenarios/http_headers.json"
echo "The scenario format: docs/PWRUN.md"
