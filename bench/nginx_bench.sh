#!/usr/bin/env bash
# The same response header ("x-bench: 1") added to a ~100-byte static file
# five ways, measured side by side in one run:
#
#   plain    no header (the baseline)
#   native   nginx's add_header
#   wasm     a Proxy-Wasm plugin (bench/plugins/add_header.c)
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
# Exits 0 whether or not the targets hold (a benchmark reports, it does not
# fail); exits 1 only when it cannot measure (missing tools, nginx does not
# start, a variant does not add the header, a worker died mid-run).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD:-build/rel}
rounds=${ROUNDS:-8}
duration=${DURATION:-2}
warmup=${WARMUP:-2}
conns=${CONNS:-16}
ngx_cpu=${NGX_CPU:-0}
wrk_cpu=${WRK_CPU:-1}
module=${MODULE:-$root/$build/nginx/ngx_http_pw_module.so}
plugin=${PLUGIN:-$root/${WASM_OUT:-build/wasm}/bench_add_header.wasm}
mods=/usr/lib/nginx/modules
variants="plain native wasm lua njs"

die() { echo "nginx_bench: $*" >&2; exit 1; }

for tool in nginx wrk curl taskset python3; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool not found"
done
[ -f "$module" ] || die "$module missing: run 'make nginx-module'"
[ -f "$plugin" ] || die "$plugin missing: run 'make $plugin'"
for so in ndk_http_module ngx_http_lua_module ngx_http_js_module; do
    [ -f "$mods/$so.so" ] || die "$mods/$so.so missing (libnginx-mod-http-lua," \
                                 "libnginx-mod-http-js)"
done
[ "$(nproc)" -ge 2 ] || die "needs two cores (nginx on one, wrk on the other)"

prefix=$(mktemp -d /tmp/pw-nginx-bench.XXXXXX)
chmod 755 "$prefix"    # workers run as an unprivileged user when we are root
results="$prefix/results.tsv"

stop_all() {
    local v pid masters="" alive
    for v in $variants; do
        pid=$(cat "$prefix/$v/logs/nginx.pid" 2>/dev/null || true)
        if [ -n "$pid" ]; then
            masters="$masters $pid"
            kill -TERM "$pid" 2>/dev/null || true
        fi
    done
    # give the masters a moment to reap their workers, then clean up
    for _ in $(seq 1 25); do
        alive=0
        for pid in $masters; do
            kill -0 "$pid" 2>/dev/null && alive=1
        done
        [ $alive = 0 ] && break
        sleep 0.2
    done
    if [ -z "${KEEP:-}" ]; then
        rm -rf "$prefix"
    else
        echo "nginx_bench: kept $prefix"
    fi
}
trap stop_all EXIT
trap 'exit 130' INT TERM

# Free loopback ports: bind port 0, note what the kernel gave, release.
read -r -a ports <<<"$(python3 - <<'PY'
import socket
socks = []
for _ in range(5):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
)"

body=$(printf 'x%.0s' $(seq 1 99))

write_conf() {
    local v=$1 port=$2 dir="$prefix/$1" loads="" main="" http="" loc=""

    mkdir -p "$dir/conf" "$dir/logs" "$dir/tmp" "$dir/html"
    printf '%s\n' "$body" > "$dir/html/file.txt"

    case $v in
    plain) ;;
    native) loc='add_header x-bench 1;' ;;
    wasm)
        loads="load_module $module;"
        main="wasm { module bench_add_header $plugin; }"
        loc='proxy_wasm bench_add_header;'
        ;;
    lua)
        loads="load_module $mods/ndk_http_module.so;
load_module $mods/ngx_http_lua_module.so;"
        loc='header_filter_by_lua_block { ngx.header["x-bench"] = "1" }'
        ;;
    njs)
        loads="load_module $mods/ngx_http_js_module.so;"
        cat > "$dir/conf/bench.js" <<'JS'
function filter(r) {
    r.headersOut['x-bench'] = '1';
}

export default { filter };
JS
        http="js_import bench from $dir/conf/bench.js;"
        loc='js_header_filter bench.filter;'
        ;;
    esac

    cat > "$dir/conf/nginx.conf" <<CONF
$loads
worker_processes 1;
worker_cpu_affinity $(python3 -c "print(format(1 << $ngx_cpu, 'b'))");
pid $dir/logs/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections 1024; }
$main
http {
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
    default_type text/plain;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    $http

    server {
        listen 127.0.0.1:$port;
        root $dir/html;

        location = /file.txt {
            $loc
        }
    }
}
CONF
}

worker_pid() {
    local master
    master=$(cat "$prefix/$1/logs/nginx.pid")
    pgrep -P "$master" | head -n1
}

# utime + stime of the whole worker process (all threads), in clock ticks
cpu_ticks() {
    awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null \
        || die "worker $1 of variant $2 is gone (see $prefix/$2/logs/error.log)"
}

i=0
declare -A port worker
for v in $variants; do
    port[$v]=${ports[$i]}
    i=$((i + 1))
    write_conf "$v" "${port[$v]}"
    taskset -c "$ngx_cpu" nginx -p "$prefix/$v" -c conf/nginx.conf \
        -e "$prefix/$v/logs/error.log" \
        || { cat "$prefix/$v/logs/error.log" >&2; die "$v: nginx did not start"; }
done

# wait for each worker (the wasm one starts V8 and compiles the plugin)
for v in $variants; do
    up=0
    for _ in $(seq 1 50); do
        if curl -s -m 2 -o /dev/null "http://127.0.0.1:${port[$v]}/file.txt"
        then
            up=1
            break
        fi
        sleep 0.1
    done
    if [ $up = 0 ] || grep -q 'exited on signal' "$prefix/$v/logs/error.log"
    then
        tail -n 5 "$prefix/$v/logs/error.log" >&2
        die "$v: the worker does not answer or crashed (log above)"
    fi
    worker[$v]=$(worker_pid "$v")
    [ -n "${worker[$v]}" ] || die "$v: no worker process"
done

# The result is only real if every variant serves the file and adds the
# header (and the baseline does not).
for v in $variants; do
    hdrs=$(curl -s -m 5 -D - -o "$prefix/$v/body.out" \
           "http://127.0.0.1:${port[$v]}/file.txt") \
        || die "$v: curl failed"
    status=$(printf '%s' "$hdrs" | head -n1 | tr -d '\r')
    case $status in
    *" 200 "*|*" 200") ;;
    *) die "$v: expected 200, got '$status' (see $prefix/$v/logs/error.log)" ;;
    esac
    cmp -s "$prefix/$v/body.out" "$prefix/$v/html/file.txt" \
        || die "$v: the body is not the static file"
    n=$(printf '%s' "$hdrs" | tr -d '\r' | grep -ci '^x-bench: 1$' || true)
    if [ "$v" = plain ]; then
        [ "$n" = 0 ] || die "plain: x-bench present in the baseline"
    else
        [ "$n" = 1 ] || die "$v: expected one 'x-bench: 1', found $n:
$hdrs"
    fi
    # not fatal, but the variants then do different work per response
    if ! printf '%s' "$hdrs" | grep -qi '^content-length: 100'; then
        echo "nginx_bench: NOTE: $v drops Content-Length (sends the file" \
             "chunked); its figures include that cost"
    fi
    if [ -n "${SHOW_HEADERS:-}" ]; then
        printf '== %s\n%s\n' "$v" "$hdrs"
    fi
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
    order=""
    n=$#
    for k in $(seq 0 $((n - 1))); do
        idx=$(( (k + r - 1) % n + 1 ))
        order="$order ${!idx}"
    done
    for v in $order; do
        before=$(cpu_ticks "${worker[$v]}" "$v")
        out=$(run_wrk "$v" "$duration")
        after=$(cpu_ticks "${worker[$v]}" "$v")
        reqs=$(printf '%s\n' "$out" | awk '/requests in/ { print $1 }')
        rps=$(printf '%s\n' "$out" | awk '/^Requests\/sec/ { print $2 }')
        errs=$(printf '%s\n' "$out" \
               | awk '/Non-2xx|Socket errors/ { e = e $0 "; " } END { print e }')
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
    [ "$(worker_pid "$v")" = "${worker[$v]}" ] \
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
variants = ["plain", "native", "wasm", "lua", "njs"]
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

wasm_rps = median(x[0] for x in ratio["wasm"])
t1 = wasm_rps >= 0.95
t2 = med["wasm"][1] < med["lua"][1]
t3 = med["wasm"][1] < med["njs"][1]
print()
print("target: plugin keeps >= 95%% of native add_header throughput: "
      "%s (%.1f%%)" % ("HOLDS" if t1 else "MISSED", wasm_rps * 100))
print("target: plugin CPU/request < Lua's: %s (%.2f vs %.2f us)" % (
      "HOLDS" if t2 else "MISSED", med["wasm"][1], med["lua"][1]))
print("target: plugin CPU/request < njs's: %s (%.2f vs %.2f us)" % (
      "HOLDS" if t3 else "MISSED", med["wasm"][1], med["njs"][1]))
PY
exit 0
