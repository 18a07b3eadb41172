#!/usr/bin/env bash
# The same response header ("x-bench: 1") added to a ~100-byte static file
# six ways, measured side by side in one run:
#
#   plain    no header (the baseline)
#   native   nginx's add_header
#   wasm     a Proxy-Wasm plugin (bench/plugins/add_header.c) on V8
#   wasm_aot the same plugin on the w2c engine (compiled ahead of time)
#   lua      header_filter_by_lua_block
#   njs      js_header_filter
#
# Each variant is its own nginx (one worker pinned to core $NGX_CPU, only
# the modules it needs loaded), all running at once on free loopback ports.
# wrk runs pinned to core $WRK_CPU against one variant at a time; variants
# alternate round by round (the order rotates every round) so machine noise
# spreads evenly. Per round we record wrk's req/s and the worker's CPU time
# (utime+stime from /proc/PID/stat) per request.
#
#   ROUNDS=8 DURATION=2 WARMUP=2 CONNS=16 bench/nginx_bench.sh
#
# More, shorter rounds beat fewer long ones here: other load on the machine
# comes and goes within seconds, and what a round compares should run close
# together in time.
#
# KEEP=1 keeps the temp prefix (configs, logs); SHOW_HEADERS=1 prints each
# variant's response headers; NGX_CPU/WRK_CPU choose the cores; MODULE and
# PLUGIN replace the paths of ngx_http_pw_module.so and the plugin.
#
# Each target is judged within rounds: the median of per-round ratios
# (wasm over native for throughput, wasm over Lua or njs for CPU), with how
# many rounds agree; the medians of the absolute figures are printed too.
#
# Exits 0 whether or not the targets hold (a benchmark reports, it does not
# fail); exits 1 only when it cannot measure (missing tools, nginx does not
# start, a variant does not add the header, a worker died mid-run).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
BENCH_NAME=nginx_bench
. "$root/bench/lib.sh"
build=${BUILD:-build/rel}
rounds=${ROUNDS:-8}
duration=${DURATION:-2}
warmup=${WARMUP:-2}
conns=${CONNS:-16}
ngx_cpu=${NGX_CPU:-0}
wrk_cpu=${WRK_CPU:-1}
module=${MODULE:-$root/$build/nginx/ngx_http_pw_module.so}
plugin=${PLUGIN:-$root/${WASM_OUT:-build/wasm}/bench_add_header.wasm}
variants=$bench_header_variants

bench_need nginx wrk curl taskset python3
bench_need_built "$module" "$plugin"
bench_header_need
bench_need_cores "nginx on one, wrk on the other"

bench_setup nginx-bench
results="$prefix/results.tsv"

read -r -a ports <<<"$(bench_free_ports 6)"

i=0
declare -A port worker
for v in $variants; do
    port[$v]=${ports[$i]}
    i=$((i + 1))
    bench_header_conf "$v" "$prefix/$v" "${port[$v]}" "worker_processes 1;
worker_cpu_affinity $(bench_affinity "$ngx_cpu");"
    bench_start "$v" "$prefix/$v" taskset -c "$ngx_cpu"
done

# wait for each worker (the wasm one starts V8 and compiles the plugin)
for v in $variants; do
    bench_wait_up "http://127.0.0.1:${port[$v]}/file.txt" \
        "$prefix/$v/logs/error.log" \
        || die "$v: the worker does not answer or crashed (log above)"
    worker[$v]=$(bench_worker "$prefix/$v")
    [ -n "${worker[$v]}" ] || die "$v: no worker process"
done

# The result is only real if every variant serves the file and adds the
# header (and the baseline does not).
for v in $variants; do
    bench_header_check "$v" "$prefix/$v" "${port[$v]}"
done
echo "nginx_bench: every variant serves the file; x-bench: 1 present" \
     "(absent in plain)"

run_wrk() {
    taskset -c "$wrk_cpu" wrk -t1 -c"$conns" -d"${2}s" \
        "http://127.0.0.1:${port[$1]}/file.txt"
}

# warm up: V8 tiers the plugin up, LuaJIT compiles, caches fill
for v in $variants; do
    run_wrk "$v" "$warmup" >/dev/null
done

clk=$(getconf CLK_TCK)
printf 'round\tvariant\treqs\trps\tcpu_us_per_req\terrors\n' > "$results"
set -- $variants
for r in $(seq 1 "$rounds"); do
    # rotate the order so no variant always runs first or last
    order=$(bench_rotate "$r" "$@")
    for v in $order; do
        before=$(bench_cpu_ticks "${worker[$v]}" "$v")
        out=$(run_wrk "$v" "$duration")
        after=$(bench_cpu_ticks "${worker[$v]}" "$v")
        reqs=$(printf '%s\n' "$out" | wrk_reqs)
        rps=$(printf '%s\n' "$out" | wrk_rps)
        errs=$(printf '%s\n' "$out" | wrk_errs)
        [ -n "$reqs" ] && [ "$reqs" -gt 0 ] \
            || die "$v: wrk made no requests:
$out"
        us=$(awk -v d=$((after - before)) -v c="$clk" -v n="$reqs" \
             'BEGIN { printf "%.3f", d * 1e6 / c / n }')
        printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$r" "$v" "$reqs" "$rps" "$us" \
            "${errs:--}" >> "$results"
    done
    echo "nginx_bench: round $r/$rounds done"
done

for v in $variants; do
    [ "$(bench_worker "$prefix/$v")" = "${worker[$v]}" ] \
        || die "$v: the worker was replaced during the run (a crash?)"
done

for v in $variants; do
    if grep -E '\[(alert|crit|emerg)\]' "$prefix/$v/logs/error.log"; then
        echo "nginx_bench: WARNING: $v logged the errors above"
    fi
done

echo
echo "nginx_bench: ${rounds} rounds x ${duration}s, wrk -t1 -c${conns}," \
     "nginx worker on cpu ${ngx_cpu}, wrk on cpu ${wrk_cpu}"
python3 - "$results" <<'PY'
import sys
from statistics import median

rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])][1:]
variants = ["plain", "native", "wasm", "wasm_aot", "lua", "njs"]
data = {}
for rnd, v, reqs, rps, us, errs in rows:
    data.setdefault(v, {})[int(rnd)] = (float(rps), float(us), errs)
rounds = sorted(data["native"])

med = {v: (median(data[v][r][0] for r in rounds),
           median(data[v][r][1] for r in rounds)) for v in variants}
# per-round ratio to native add_header, measured in the same round
ratio = {v: [(data[v][r][0] / data["native"][r][0],
              data[v][r][1] / data["native"][r][1]) for r in rounds]
         for v in variants}

print()
best = {v: min(data[v][r][1] for r in rounds) for v in variants}
print("%-7s %10s %10s %9s %9s %10s %10s" % ("variant", "req/s",
      "cpu us/req", "best cpu", "vs plain", "rps/native", "cpu/native"))
for v in variants:
    print("%-7s %10.0f %10.2f %9.2f %9.3f %10.3f %10.3f" % (
        v, med[v][0], med[v][1], best[v], med[v][1] / med["plain"][1],
        median(x[0] for x in ratio[v]), median(x[1] for x in ratio[v])))
print("req/s, cpu us/req: medians over rounds; best cpu: the lowest round"
      " (other load only\never adds to it); vs plain: median cpu/req over"
      " plain's; rps/native,\ncpu/native: medians of the per-round ratios"
      " to native add_header")

print()
print("per-round throughput ratio to native:")
print("%-7s " % "round" + " ".join("%7d" % r for r in rounds))
for v in variants:
    print("%-7s " % v + " ".join("%7.3f" % x[0] for x in ratio[v]))
print()
print("per-round cpu-per-request ratio to native:")
print("%-7s " % "round" + " ".join("%7d" % r for r in rounds))
for v in variants:
    print("%-7s " % v + " ".join("%7.3f" % x[1] for x in ratio[v]))

bad = [(v, r, data[v][r][2]) for v in variants for r in rounds
       if data[v][r][2] != "-"]
for v, r, e in bad:
    print("WARNING: %s round %d: wrk reported errors: %s" % (v, r, e))

# Each verdict compares within rounds (the variants of a round run close
# together in time), as the throughput ratio to native does: the median of
# the per-round ratios, with how many rounds agree.
for w, engine in (("wasm", "V8"), ("wasm_aot", "w2c")):
    w_rps = median(x[0] for x in ratio[w])
    print()
    print("target (%s, engine %s): plugin keeps >= 95%% of native add_header "
          "throughput: %s (%.1f%%, %d of %d rounds at 95%% or more)" % (
          w, engine, "HOLDS" if w_rps >= 0.95 else "MISSED", w_rps * 100,
          sum(x[0] >= 0.95 for x in ratio[w]), len(rounds)))
    for peer, name in (("lua", "Lua"), ("njs", "njs")):
        per = [data[w][r][1] / data[peer][r][1] for r in rounds]
        m = median(per)
        print("target (%s, engine %s): plugin CPU/request < %s's: %s "
              "(%s/%s per round: median %.3f, lower in %d of %d rounds; "
              "medians %.2f vs %.2f us)"
              % (w, engine, name, "HOLDS" if m < 1 else "MISSED", w, peer, m,
                 sum(x < 1 for x in per), len(rounds), med[w][1],
                 med[peer][1]))
PY
exit 0
