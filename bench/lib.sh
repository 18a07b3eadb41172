# shellcheck shell=bash disable=SC2034,SC2154
# Shared by the nginx benchmarks (nginx_bench.sh, nginx_instr.sh,
# shared_bench.sh, callout_bench.sh); sourced, not run. The script sets
# BENCH_NAME (the prefix of its messages) before sourcing this file and
# runs under `set -euo pipefail`.
#
# One nginx per directory under a temp prefix: DIR/conf/nginx.conf,
# DIR/logs/{nginx.pid,error.log}, DIR/tmp, DIR/html. bench_start records
# every DIR it starts; on exit all of them are stopped and the prefix is
# removed (KEEP=1 keeps it).

bench_mods=/usr/lib/nginx/modules
bench_started=""

die() { echo "$BENCH_NAME: $*" >&2; exit 1; }

# bench_need TOOL...: each must be on PATH
bench_need() {
    local tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null 2>&1 || die "$tool not found"
    done
}

# bench_need_built MODULE PLUGIN: the module and the plugin exist
bench_need_built() {
    [ -f "$1" ] || die "$1 missing: run 'make nginx-module'"
    [ -f "$2" ] || die "$2 missing: run 'make $2'"
}

# bench_need_cores WHY: at least two cores
bench_need_cores() {
    [ "$(nproc)" -ge 2 ] || die "needs two cores ($1)"
}

# bench_setup TAG: a fresh temp prefix in $prefix, stopped and removed on
# exit
bench_setup() {
    prefix=$(mktemp -d "/tmp/pw-$1.XXXXXX")
    chmod 755 "$prefix"  # workers run as an unprivileged user when we are root
    trap bench_cleanup EXIT
    trap 'exit 130' INT TERM
}

# bench_stop DIR...: TERM each nginx started in DIR, wait up to
# $BENCH_STOP_WAIT seconds (default 5) for all of them to exit
bench_stop() {
    local d pid pids="" alive tries
    for d in "$@"; do
        pid=$(cat "$d/logs/nginx.pid" 2>/dev/null || true)
        if [ -n "$pid" ]; then
            pids="$pids $pid"
            kill -TERM "$pid" 2>/dev/null || true
        fi
    done
    # give the masters a moment to reap their workers
    tries=$(( ${BENCH_STOP_WAIT:-5} * 5 ))
    for _ in $(seq 1 "$tries"); do
        alive=0
        for pid in $pids; do
            kill -0 "$pid" 2>/dev/null && alive=1
        done
        [ $alive = 0 ] && break
        sleep 0.2
    done
}

bench_cleanup() {
    # shellcheck disable=SC2086
    [ -z "$bench_started" ] || bench_stop $bench_started
    if [ -z "${KEEP:-}" ]; then
        rm -rf "$prefix"
    else
        echo "$BENCH_NAME: kept $prefix"
    fi
}

# bench_free_ports N: N free loopback ports (bind port 0, note what the
# kernel gave, release)
bench_free_ports() {
    python3 -c '
import socket, sys
s = [socket.socket() for _ in range(int(sys.argv[1]))]
for x in s: x.bind(("127.0.0.1", 0))
print(" ".join(str(x.getsockname()[1]) for x in s))' "$1"
}

# bench_affinity CPU: the worker_cpu_affinity mask of one core
bench_affinity() {
    python3 -c "print(format(1 << $1, 'b'))"
}

# bench_conf DIR MAIN HTTP [WORKER_CONNECTIONS]: DIR's directories and
# DIR/conf/nginx.conf. MAIN: top-level directives (load_module,
# worker_processes, wasm {} ...); HTTP: inside http {} after the settings
# every bench shares (no access log, long keep-alive, temp paths in DIR).
bench_conf() {
    local dir=$1
    mkdir -p "$dir/conf" "$dir/logs" "$dir/tmp" "$dir/html"
    cat > "$dir/conf/nginx.conf" <<CONF
$2
pid $dir/logs/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections ${4:-1024}; }
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
$3
}
CONF
}

# bench_start NAME DIR [CMD...]: start DIR's nginx (as an argument of CMD,
# e.g. taskset -c 0); it is stopped on exit. NAME: for the message if it
# does not start
bench_start() {
    local name=$1 dir=$2
    shift 2
    bench_started="$bench_started $dir"
    "$@" nginx -p "$dir" -c conf/nginx.conf -e "$dir/logs/error.log" \
        || { cat "$dir/logs/error.log" >&2;
             die "${name:+$name: }nginx did not start"; }
}

# bench_wait_up URL LOG [TRIES]: true once URL answers (every 0.1 s, 50
# tries by default) and LOG shows no crashed worker; else prints the end
# of LOG and fails
bench_wait_up() {
    local up=0
    for _ in $(seq 1 "${3:-50}"); do
        if curl -s -m 2 -o /dev/null "$1"; then
            up=1
            break
        fi
        sleep 0.1
    done
    if [ $up = 0 ] || grep -q 'exited on signal' "$2"; then
        tail -n 5 "$2" >&2
        return 1
    fi
}

# bench_workers DIR: the worker pids of DIR's nginx, sorted, one line
bench_workers() {
    pgrep -P "$(cat "$1/logs/nginx.pid")" | sort | tr '\n' ' '
}

# bench_worker DIR: the first worker pid of DIR's nginx
bench_worker() {
    pgrep -P "$(cat "$1/logs/nginx.pid")" | head -n1
}

# bench_cpu_ticks PID WHAT: utime + stime of the whole process (all
# threads), in clock ticks
bench_cpu_ticks() {
    awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null \
        || die "worker $1 of variant $2 is gone (see" \
               "$prefix/$2/logs/error.log)"
}

# bench_rotate R ITEM...: the items rotated by R - 1 (round R's order, so
# that no item always runs first or last)
bench_rotate() {
    local r=$1 k idx n order=""
    shift
    n=$#
    for k in $(seq 0 $((n - 1))); do
        idx=$(( (k + r - 1) % n + 1 ))
        order="$order ${!idx}"
    done
    echo "$order"
}

# From wrk's output on stdin: requests made; requests/s; errors reported
wrk_reqs() { awk '/requests in/ { s += $1 } END { print s }'; }
wrk_rps() { awk '/^Requests\/sec/ { print $2 }'; }
wrk_errs() { awk '/Non-2xx|Socket errors/ { e = e $0 "; " } END { print e }'; }

# ---- the x-bench response header added five ways (nginx_bench.sh,
# nginx_instr.sh); the scripts set $module and $plugin ----

bench_header_variants="plain native wasm wasm_aot lua njs"

bench_header_need() {
    local so
    for so in ndk_http_module ngx_http_lua_module ngx_http_js_module; do
        [ -f "$bench_mods/$so.so" ] \
            || die "$bench_mods/$so.so missing (libnginx-mod-http-lua," \
                   "libnginx-mod-http-js)"
    done
}

# bench_header_conf VARIANT DIR PORT PROCESS: the variant's nginx.conf
# and its ~100-byte html/file.txt; PROCESS: process directives
# (worker_processes ...; or master_process off; ...)
bench_header_conf() {
    local v=$1 dir=$2 loads="" main="" http="" loc=""

    mkdir -p "$dir/conf" "$dir/html"
    printf '%s\n' "$(printf 'x%.0s' $(seq 1 99))" > "$dir/html/file.txt"

    case $v in
    plain) ;;
    native) loc='add_header x-bench 1;' ;;
    wasm)
        loads="load_module $module;"
        main="wasm { module bench_add_header $plugin; }"
        loc='proxy_wasm bench_add_header;'
        ;;
    wasm_aot)
        # the same plugin on the w2c engine (compiled ahead of time)
        loads="load_module $module;"
        main="wasm { engine w2c; engine_cache $dir/wasm_cache;
    module bench_add_header $plugin; }"
        loc='proxy_wasm bench_add_header;'
        ;;
    wasm_as)
        # the same plugin from the AssemblyScript SDK ($plugin_as)
        loads="load_module $module;"
        main="wasm { module bench_as $plugin_as; }"
        loc="proxy_wasm bench_as 'on' root_id=bench_as;"
        ;;
    lua)
        loads="load_module $bench_mods/ndk_http_module.so;
load_module $bench_mods/ngx_http_lua_module.so;"
        loc='header_filter_by_lua_block { ngx.header["x-bench"] = "1" }'
        ;;
    njs)
        loads="load_module $bench_mods/ngx_http_js_module.so;"
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

    bench_conf "$dir" "$loads
$4
$main" "    $http
    server {
        listen 127.0.0.1:$3;
        root $dir/html;

        location = /file.txt {
            $loc
        }
    }"
}

# bench_header_check VARIANT DIR PORT: the variant serves the file and
# adds exactly one x-bench: 1 (plain: none); SHOW_HEADERS=1 prints them
bench_header_check() {
    local v=$1 dir=$2 hdrs status n
    hdrs=$(curl -s -m 5 -D - -o "$dir/body.out" \
           "http://127.0.0.1:$3/file.txt") \
        || die "$v: curl failed"
    status=$(printf '%s' "$hdrs" | head -n1 | tr -d '\r')
    case $status in
    *" 200 "*|*" 200") ;;
    *) die "$v: expected 200, got '$status' (see $dir/logs/error.log)" ;;
    esac
    cmp -s "$dir/body.out" "$dir/html/file.txt" \
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
        echo "$BENCH_NAME: NOTE: $v drops Content-Length (sends the file" \
             "chunked); its figures include that cost"
    fi
    if [ -n "${SHOW_HEADERS:-}" ]; then
        printf '== %s\n%s\n' "$v" "$hdrs"
    fi
}
