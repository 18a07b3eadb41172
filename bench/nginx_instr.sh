#!/usr/bin/env bash
# User-space instructions per request of the five ways bench/nginx_bench.sh
# adds "x-bench: 1" to a ~100-byte static file (plain, native add_header,
# wasm plugin bench/plugins/add_header.c, lua, njs; and wasm_as, the same
# plugin written with the AssemblyScript SDK), counted by valgrind's
# callgrind: a deterministic companion to nginx_bench.sh's wall-clock and
# CPU-time figures, which swing with other load on the machine (and this
# machine has no hardware counters for perf).
#
# Per variant, one at a time: nginx runs in the foreground under
# `valgrind --tool=callgrind` with `master_process off` (one process: the
# module's V8 runs in it, so every instruction of the request is in the
# count, V8's background threads included); wrk warms it up for $WARM
# seconds; callgrind_control -z zeroes the counters; a Python client sends
# $N minimal GETs (a Host header only) one after the other on one
# keep-alive connection (each answer must be 200 with the file and one
# x-bench: 1, none for plain);
# callgrind_control -d dumps; nginx stops. The figure is the dump's
# "summary:" (instructions executed between zero and dump, in all threads)
# divided by $N.
#
#   WARM=10 N=2000 bench/nginx_instr.sh
#
# What it counts: user-space instructions of nginx and everything it
# runs in-process (our module, V8 and its compiled plugin, LuaJIT, njs),
# idle waiting between requests included (next to nothing). What it does
# not: kernel time (the system calls are the same in every variant:
# strace -c on the worker over 2000 keep-alive requests counts 7 per
# request in each, recvfrom, openat, newfstatat, pread64, writev, close,
# epoll_wait), cache misses, branch mispredictions, memory stalls,
# and anything valgrind does differently from the CPU (it serializes
# threads). So read it as "how much work the filter adds", not as time:
# "extra over native" is the cost of the way of adding the header beyond
# nginx's own add_header, the ratio is of the whole user-space request.
#
# WARM is long because V8 compiles the plugin first with Liftoff and tiers
# hot functions up to TurboFan later, slowly under valgrind: with
# v8_threads 0 (the default) that compilation runs on the worker in turns
# of about 2 ms of wall time every 1024 calls, which under valgrind is
# little work per turn. Too short a warm-up counts Liftoff code and the
# compilation itself; the table is then followed by a WARNING giving the
# instructions per request spent compiling. The default leaves a margin
# for a busier machine (the tier-up runs on wall time, the count does
# not).
#
# VARIANTS="native wasm" picks variants (plain native wasm lua njs
# wasm_as);
# ANNOTATE=1 prints the wasm variant's top functions by inclusive cost
# (callgrind_annotate); KEEP=1 keeps the temp prefix (configs, logs,
# callgrind.out.*); CONNS sets wrk's connections during the warm-up;
# MODULE and PLUGIN replace the module and plugin paths.
#
# Exits 0 whatever the figures; 1 only when it cannot measure (missing
# tools, nginx does not start, a variant does not add the header, a
# request fails, no dump).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
BENCH_NAME=nginx_instr
. "$root/bench/lib.sh"
build=${BUILD:-build/rel}
warm=${WARM:-10}
nreq=${N:-2000}
conns=${CONNS:-4}
module=${MODULE:-$root/$build/nginx/ngx_http_pw_module.so}
plugin=${PLUGIN:-$root/${WASM_OUT:-build/wasm}/bench_add_header.wasm}
plugin_as=${PLUGIN_AS:-$root/${WASM_OUT:-build/wasm}/bench_as_add_header.wasm}
variants=${VARIANTS:-$bench_header_variants wasm_as}
# valgrind ends slowly: it writes the profile at exit
BENCH_STOP_WAIT=60

bench_need nginx wrk curl python3 valgrind callgrind_control \
    callgrind_annotate
bench_need_built "$module" "$plugin"
[ -f "$plugin_as" ] || die "$plugin_as missing: run 'make $plugin_as'"
bench_header_need
for v in $variants; do
    case " $bench_header_variants wasm_as " in
    *" $v "*) ;;
    *) die "unknown variant $v (one of: $bench_header_variants)" ;;
    esac
done

bench_setup nginx-instr

# the file of the last dump made by callgrind_control -d (the one at
# exit has no number and says Trigger: Program termination)
summary() {
    local f
    f=$(grep -lE '^desc: Trigger: (dump|Client Request)' \
        "$1"/callgrind.out.* 2>/dev/null | sort -V | tail -n1 || true)
    [ -n "$f" ] || return 1
    echo "$f"
}

declare -A instr jit comp
for v in $variants; do
    dir=$prefix/$v
    port=$(bench_free_ports 1)
    bench_header_conf "$v" "$dir" "$port" "master_process off;
daemon off;"
    mkdir -p "$dir/logs" "$dir/tmp"
    bench_started="$bench_started $dir"
    valgrind --tool=callgrind --smc-check=all-non-file \
        --callgrind-out-file="$dir/callgrind.out" \
        --log-file="$dir/logs/valgrind.log" \
        nginx -p "$dir" -c conf/nginx.conf -e "$dir/logs/error.log" \
        </dev/null >"$dir/logs/stdout.log" 2>&1 &
    vpid=$!

    # V8 under valgrind takes ~20 s to start
    bench_wait_up "http://127.0.0.1:$port/file.txt" "$dir/logs/error.log" \
        1200 || die "$v: nginx does not answer under valgrind (log above)"
    bench_header_check "$v" "$dir" "$port"

    wrk -t1 -c"$conns" -d"${warm}s" "http://127.0.0.1:$port/file.txt" \
        > "$dir/logs/wrk.log"
    [ "$(wrk_reqs < "$dir/logs/wrk.log")" -gt 0 ] \
        || die "$v: the warm-up made no requests"

    out=$(callgrind_control -z "$vpid" 2>&1) \
        || die "$v: callgrind_control -z failed: $out"
    python3 - "$port" "$nreq" "$v" <<'PY' || die "$v: the requests failed"
import socket
import sys

port, n, variant = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
want = 0 if variant == "plain" else 1
req = b"GET /file.txt HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
s = socket.create_connection(("127.0.0.1", port), timeout=60)
buf = b""
for i in range(n):
    s.sendall(req)
    while b"\r\n\r\n" not in buf:
        d = s.recv(65536)
        if not d:
            sys.exit("request %d: connection closed" % i)
        buf += d
    head, buf = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    hdrs = [l.split(":", 1) for l in lines[1:]]
    clen = [int(v) for k, v in hdrs if k.lower() == "content-length"]
    xb = [v.strip() for k, v in hdrs if k.lower() == "x-bench"]
    if (not lines[0].startswith("HTTP/1.1 200 ") or clen != [100]
            or xb != ["1"] * want):
        sys.exit("request %d: %r" % (i, head))
    while len(buf) < 100:
        d = s.recv(65536)
        if not d:
            sys.exit("request %d: connection closed in the body" % i)
        buf += d
    if buf[:100] != b"x" * 99 + b"\n":
        sys.exit("request %d: not the file" % i)
    buf = buf[100:]
s.close()
PY
    out=$(callgrind_control -d "$vpid" 2>&1) \
        || die "$v: callgrind_control -d failed: $out"
    bench_stop "$dir"
    wait "$vpid" || true

    f=$(summary "$dir") || die "$v: no dump from callgrind_control -d" \
                               "(see $dir/logs/valgrind.log)"
    total=$(awk '/^summary:/ { print $2 }' "$f")
    [ -n "$total" ] || die "$v: no summary: line in $f"
    instr[$v]=$total
    # code generated at run time has no object file: V8's compiled wasm
    # (and JS), LuaJIT's traces
    jit[$v]=$(callgrind_annotate --auto=no --threshold=100 "$f" \
        | awk '/^ *[0-9,]+ \([ 0-9.]+%\) +[?][?][?]:0x[0-9a-f]+( [[][?][?][?][]])? *$/ {
                   n = $1; gsub(/,/, "", n); s += n }
               END { print s + 0 }')
    # V8 compiling wasm during the count: tier-up not over (v8_threads 0
    # runs it on the worker in 2 ms turns, slow under valgrind)
    comp[$v]=$(callgrind_annotate --inclusive=yes --auto=no --threshold=100 \
                   "$f" \
        | awk '/WasmCompilationUnit::ExecuteCompilation/ {
                   n = $1; gsub(/,/, "", n); s += n }
               END { print s + 0 }')
    if grep -E '\[(alert|crit|emerg)\]' "$dir/logs/error.log"; then
        echo "nginx_instr: WARNING: $v logged the errors above"
    fi
    echo "nginx_instr: $v: $total instructions for $nreq requests"
done

echo
echo "nginx_instr: user-space instructions per request (callgrind, one" \
     "process, $nreq requests on one keep-alive connection after ${warm}s" \
     "of wrk -c$conns)"
for v in $variants; do
    printf '%s %s %s %s\n' "$v" "${instr[$v]}" "${jit[$v]}" "${comp[$v]}"
done | python3 -c '
import sys
n = int(sys.argv[1])
rows = [(v, int(t) / n, int(j) / n, int(c) / n)
        for v, t, j, c in (l.split() for l in sys.stdin)]
native = {r[0]: r[1] for r in rows}.get("native")
print("%-7s %12s %10s %12s %10s" % ("variant", "instr/req", "/native",
                                     "over native", "jit code"))
for v, x, j, c in rows:
    if native:
        print("%-7s %12.0f %10.3f %+12.0f %10.0f" % (v, x, x / native,
                                                   x - native, j))
    else:
        print("%-7s %12.0f %10s %12s %10.0f" % (v, x, "-", "-", j))
print("jit code: of instr/req, those in code generated at run time (the"
      " plugin compiled\nby V8 with the batch and shim modules, LuaJIT"
      " traces)")
for v, x, j, c in rows:
    if c > 0:
        print("WARNING: %s: V8 was still compiling wasm (tier-up) during the"
              " count:\n%.0f of its instr/req; raise WARM" % (v, c))
' "$nreq"

if [ -n "${ANNOTATE:-}" ] && [ -n "${instr[wasm]:-}" ]; then
    echo
    echo "nginx_instr: wasm, top functions by inclusive cost over $nreq" \
         "requests (without main and nginx's event loop, ~100%):"
    callgrind_annotate --inclusive=yes --auto=no \
        "$(summary "$prefix/wasm")" \
        | awk '/^ *[0-9,]+ \([0-9.]+%\) / {
                   p = $2; gsub(/[(%)]/, "", p)
                   if (p + 0 < 95 && ++n <= 40) print }'
fi
exit 0
