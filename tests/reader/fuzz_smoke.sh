#!/bin/sh
# A short, bounded run of each libFuzzer target of tests/reader (make fuzz),
# so `make test` exercises them. Needs clang's libFuzzer runtime (Debian
# package libclang-rt-14-dev); skipped with a reason when it is missing.
set -u
cd "$(dirname "$0")/../.."

probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n)'\
'{ return 0; }\n' > "$probe/p.c"
if ! clang -fsanitize=fuzzer,address,undefined "$probe/p.c" \
        -o "$probe/p" 2>/dev/null; then
    echo "SKIP fuzz_wasm, fuzz_map: clang -fsanitize=fuzzer does not link" \
         "(install libclang-rt-14-dev)"
    echo "0 passed, 0 failed, 2 skipped"
    exit 0
fi

if ! make --no-print-directory -s fuzz >"$probe/build.log" 2>&1; then
    cat "$probe/build.log"
    echo "0 passed, 1 failed"
    exit 1
fi

passed=0
failed=0
for t in wasm map; do
    mkdir -p "$probe/corpus_$t"
    # new inputs go to the scratch corpus, the seeds stay as they are
    if build/fuzz/fuzz_$t -runs=20000 -seed=1 -max_len=4096 \
            -max_total_time=20 -artifact_prefix=build/fuzz/crash-$t- \
            "$probe/corpus_$t" build/fuzz/seeds_$t >"$probe/$t.log" 2>&1
    then
        echo "ok   fuzz_$t ($(grep -o 'Done [0-9]* runs' "$probe/$t.log"))"
        passed=$((passed + 1))
    else
        tail -n 40 "$probe/$t.log"
        echo "(crash input, if any: build/fuzz/crash-$t-*)"
        echo "FAIL fuzz_$t"
        failed=$((failed + 1))
    fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
