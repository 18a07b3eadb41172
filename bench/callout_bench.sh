#!/usr/bin/env bash
# What one HTTP callout per request costs in nginx: the same ~100-byte
# static file served two ways by one nginx (one worker pinned to $NGX_CPU):
#
#   plain    no plugin (the baseline)
#   callout  examples/callout_auth.c: each request paused on a
#            proxy_http_call to upstream "auth", resumed on its 200
#
# The callee is a third server block of the same nginx (return 200 on
# another port), so nginx does the callee's work too, as a local sidecar
# would on the same core. wrk (pinned to $WRK_CPU) alternates between the
# variants round by round, as bench/nginx_bench.sh does: per round and
# variant one run with one connection (median latency, wrk --latency) and
# one with $CONNS connections (req/s).
#
#   ROUNDS=6 DURATION=2 WARMUP=2 CONNS=16 bench/callout_bench.sh
#
# KEEP=1 keeps the temp prefix; NGX_CPU/WRK_CPU choose the cores; MODULE
# and PLUGIN replace the paths of ngx_http_pw_module.so and the plugin.
# Exits 0 whatever the numbers; 1 only when it cannot measure.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
BENCH_NAME=callout_bench
. "$root/bench/lib.sh"
rounds=${ROUNDS:-6}
duration=${DURATION:-2}
warmup=${WARMUP:-2}
conns=${CONNS:-16}
ngx_cpu=${NGX_CPU:-0}
wrk_cpu=${WRK_CPU:-1}
module=${MODULE:-$root/${BUILD:-build/rel}/nginx/ngx_http_pw_module.so}
plugin=${PLUGIN:-$root/${WASM_OUT:-build/wasm}/callout_auth.wasm}
variants="plain callout"
authz="Authorization: Bearer good"

bench_need nginx wrk curl taskset python3
bench_need_built "$module" "$plugin"
bench_need_cores "nginx on one, wrk on the other"

bench_setup callout-bench
results="$prefix/results.tsv"

read -r p_plain p_callout p_auth <<<"$(bench_free_ports 3)"
declare -A port=([plain]=$p_plain [callout]=$p_callout)

d=$prefix
mkdir -p "$d/html"
printf 'x%.0s' $(seq 1 99) > "$d/html/file.txt"
echo >> "$d/html/file.txt"
bench_conf "$d" "load_module $module;
worker_processes 1;
worker_cpu_affinity $(bench_affinity "$ngx_cpu");
wasm { module auth $plugin; }" "    upstream auth { server 127.0.0.1:$p_auth; }

    server {
        listen 127.0.0.1:$p_plain;
        root $d/html;
        location = /file.txt { }
    }
    server {
        listen 127.0.0.1:$p_callout;
        root $d/html;
        location = /file.txt { proxy_wasm auth; }
    }
    server {
        listen 127.0.0.1:$p_auth;
        # buffered: a write per 64k of log, not per call
        access_log $d/logs/auth.log combined buffer=64k flush=100ms;
        location = /auth {
            if (\$http_authorization != \"Bearer good\") { return 403; }
            return 200;
        }
    }" 4096
bench_start "" "$d" taskset -c "$ngx_cpu"

url() { echo "http://127.0.0.1:${port[$1]}/file.txt"; }
status() { curl -s -m 5 -o "$d/body.out" -w '%{http_code}' "$@" || true; }
calls() { sleep 0.3; wc -l < "$d/logs/auth.log" 2>/dev/null || echo 0; }

bench_wait_up "$(url plain)" "$d/logs/error.log" \
    || die "nginx does not answer or crashed (log above)"
worker=$(bench_worker "$d")
[ -n "$worker" ] || die "no worker process (see $d/logs/error.log)"

# Only real if the plugin calls the callee once per request and the answer
# decides: 200 with the good token, 403 when the callee says no.
[ "$(status "$(url plain)")" = 200 ] || die "plain: no 200"
c0=$(calls)
[ "$(status -H "$authz" "$(url callout)")" = 200 ] \
    || die "callout: no 200 (see $d/logs/error.log)"
cmp -s "$d/body.out" "$d/html/file.txt" || die "callout: body is not the file"
[ "$(status -H "Authorization: Bearer bad" "$(url callout)")" = 403 ] \
    || die "callout: a refusal of the callee did not give 403"
c1=$(calls)
[ "$c1" -eq $((c0 + 2)) ] || die "the callee saw $((c1 - c0)) calls, not 2"
echo "callout_bench: plain 200; callout 200 (403 when the callee refuses);" \
     "the callee saw one call per request"

run_wrk() {    # variant connections seconds
    taskset -c "$wrk_cpu" wrk -t1 -c"$2" -d"${3}s" --latency -H "$authz" \
        "$(url "$1")"
}

for v in $variants; do run_wrk "$v" "$conns" "$warmup" >/dev/null; done

calls_before=$(calls)
callout_reqs=0
printf 'round\tvariant\tp50_us\trps\terrors\n' > "$results"
for r in $(seq 1 "$rounds"); do
    # alternate which variant runs first
    order=$(bench_rotate "$r" $variants)
    for v in $order; do
        lat=$(run_wrk "$v" 1 "$duration")
        thr=$(run_wrk "$v" "$conns" "$duration")
        p50=$(printf '%s\n' "$lat" | awk '$1 == "50%" {
                  v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v)
                  print v * (u == "s" ? 1e6 : u == "ms" ? 1e3 : 1) }')
        rps=$(printf '%s\n' "$thr" | wrk_rps)
        errs=$(printf '%s\n%s\n' "$lat" "$thr" | wrk_errs)
        [ -n "$p50" ] && [ -n "$rps" ] || die "$v: no wrk figures:
$lat
$thr"
        if [ "$v" = callout ]; then
            n=$(printf '%s\n%s\n' "$lat" "$thr" | wrk_reqs)
            callout_reqs=$((callout_reqs + n))
        fi
        printf '%s\t%s\t%s\t%s\t%s\n' "$r" "$v" "$p50" "$rps" "${errs:--}" \
            >> "$results"
    done
    echo "callout_bench: round $r/$rounds done"
done

[ "$(bench_worker "$d")" = "$worker" ] \
    || die "the worker was replaced during the run (a crash?)"
seen=$(( $(calls) - calls_before ))
echo "callout_bench: the callee saw $seen calls for $callout_reqs requests"
[ "$seen" -ge "$callout_reqs" ] \
    || die "fewer calls than requests: the callout did not always happen"
if grep -E '\[(alert|crit|emerg|error)\]' "$d/logs/error.log"; then
    echo "callout_bench: WARNING: nginx logged the errors above"
fi

echo
echo "callout_bench: $rounds rounds x ${duration}s; latency: wrk -c1," \
     "req/s: wrk -c$conns; nginx on cpu $ngx_cpu, wrk on cpu $wrk_cpu"
python3 - "$results" <<'PY'
import sys
from statistics import median

rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])][1:]
d = {}
for rnd, v, p50, rps, errs in rows:
    d.setdefault(v, {})[int(rnd)] = (float(p50), float(rps), errs)
rounds = sorted(d["plain"])
med = {v: (median(d[v][r][0] for r in rounds),
           median(d[v][r][1] for r in rounds)) for v in d}

print("%-8s %12s %10s" % ("variant", "p50 us (c1)", "req/s"))
for v in ("plain", "callout"):
    print("%-8s %12.1f %10.0f" % (v, med[v][0], med[v][1]))
print("added latency per request: %.1f us (median with - median without;"
      " median of per-round\n  differences: %.1f us)" % (
      med["callout"][0] - med["plain"][0],
      median(d["callout"][r][0] - d["plain"][r][0] for r in rounds)))
print("req/s ratio callout/plain: %.3f (medians; median of per-round"
      " ratios: %.3f)" % (med["callout"][1] / med["plain"][1],
      median(d["callout"][r][1] / d["plain"][r][1] for r in rounds)))
for v in d:
    for r in rounds:
        if d[v][r][2] != "-":
            print("WARNING: %s round %d: wrk errors: %s" % (v, r, d[v][r][2]))
PY
exit 0
