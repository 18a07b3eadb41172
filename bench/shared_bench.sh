#!/usr/bin/env bash
# Shared state across nginx workers, measured from inside the workers by
# a Proxy-Wasm plugin (bench/plugins/shared.c):
#
# 1. proxy_get_shared_data / proxy_set_shared_data per call. Each request
#    runs a loop of $OPS calls (one 16-byte value under one key) and times
#    the loop with the host's clock; the same loop with an empty body
#    ("none") and with proxy_get_current_time_nanoseconds ("clock", a bare
#    hostcall) is the same-run baseline. Two nginx run side by side:
#    "single", one worker pinned to core $NGX_CPU with wrk pinned to
#    $WRK_CPU; and "two", two workers pinned to cores 0 and 1 that share
#    the key (the same zone, the same lock), both loaded at once by wrk
#    (connections spread by reuseport; wrk then shares the two cores). The
#    (nginx, op) runs alternate round by round in a rotating order. Per
#    request ns/op = loop time / $OPS; we report medians (per round, then
#    over rounds), the 10th percentile (the runs the scheduler left alone)
#    and contended/single as the median of per-round ratios. For the
#    two-worker runs, "overlap" is the share of a worker's loop time during
#    which the other worker was in its loop too: contention really
#    happened.
#
# 2. Cross-worker queue wake-up. In "two", root context "consume"
#    registers a queue in on_configure (each worker registers it; the last
#    registration owns it). $SAMPLES sequential requests, each on a new
#    connection, hit "produce", which enqueues the time and its worker's
#    pid (ngx.pid); the owner's on_queue_ready logs now - that time. A
#    sample is cross-worker when the producer's pid is not the pid of the
#    worker that logged the wake-up. Same-worker samples (a posted event)
#    are reported apart.
#
#   ROUNDS=3 DURATION=2 WARMUP=1 OPS=2000 SAMPLES=200 bench/shared_bench.sh
#
# CONNS (single) and CONNS2 (two workers) set wrk's connections; KEEP=1
# keeps the temp prefix; NGX_CPU/WRK_CPU pick the cores of the single
# case; MODULE and PLUGIN override the module and plugin paths.
#
# Exits 0 whatever the figures (a benchmark reports); exits 1 only when it
# cannot measure (missing tools, nginx does not start, a loop's calls fail,
# no samples, a worker died).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
BENCH_NAME=shared_bench
. "$root/bench/lib.sh"
build=${BUILD:-build/rel}
rounds=${ROUNDS:-3}
duration=${DURATION:-2}
warmup=${WARMUP:-1}
ops=${OPS:-2000}
samples=${SAMPLES:-200}
conns=${CONNS:-8}
conns2=${CONNS2:-16}
ngx_cpu=${NGX_CPU:-0}
wrk_cpu=${WRK_CPU:-1}
module=${MODULE:-$root/$build/nginx/ngx_http_pw_module.so}
plugin=${PLUGIN:-$root/${WASM_OUT:-build/wasm}/bench_shared.wasm}
instances="single two"
modes="none clock get set"

bench_need nginx wrk curl taskset python3
bench_need_built "$module" "$plugin"
bench_need_cores "two workers contending"

load0=$(cut -d' ' -f1-3 /proc/loadavg)
bench_setup shared-bench
results="$prefix/results.tsv"

read -r -a ports <<<"$(bench_free_ports 2)"

write_conf() {
    local v=$1 port=$2 dir="$prefix/$1" workers affinity locs="" m

    mkdir -p "$dir/html"
    echo ok > "$dir/html/file.txt"

    if [ "$v" = single ]; then
        workers=1
        affinity=$(bench_affinity "$ngx_cpu")
    else
        workers=2
        affinity="01 10"
    fi

    for m in $modes; do
        locs="$locs
        location = /$m {
            alias $dir/html/file.txt;
            proxy_wasm bench_shared '$m $ops';
        }"
    done
    if [ "$v" = two ]; then
        locs="$locs
        location = /consume {
            alias $dir/html/file.txt;
            proxy_wasm bench_shared 'consume shared_bench_q';
        }
        location = /produce {
            alias $dir/html/file.txt;
            proxy_wasm bench_shared 'produce bench_shared shared_bench_q';
        }"
    fi

    bench_conf "$dir" "load_module $module;
worker_processes $workers;
worker_cpu_affinity $affinity;
wasm {
    module bench_shared $plugin;
}" "
    server {
        listen 127.0.0.1:$port reuseport;
        $locs
    }"
}

i=0
declare -A port workers
for v in $instances; do
    port[$v]=${ports[$i]}
    i=$((i + 1))
    write_conf "$v" "${port[$v]}"
    bench_start "$v" "$prefix/$v"
done

for v in $instances; do
    bench_wait_up "http://127.0.0.1:${port[$v]}/none" \
        "$prefix/$v/logs/error.log" \
        || die "$v: the workers do not answer or crashed (log above)"
    workers[$v]=$(bench_workers "$prefix/$v")
done

# every op must really run (and succeed) in every nginx
for v in $instances; do
    for m in $modes; do
        st=$(curl -s -m 5 -o /dev/null -w '%{http_code}' \
             "http://127.0.0.1:${port[$v]}/$m") || die "$v /$m: curl failed"
        [ "$st" = 200 ] || die "$v /$m: status $st (see $prefix/$v/logs)"
    done
    sleep 0.1
    for m in $modes; do
        grep -q "shared_bench: op=$m n=$ops ns=[0-9]* start=[0-9]* fails=0" \
            "$prefix/$v/logs/error.log" \
            || { tail -n 5 "$prefix/$v/logs/error.log" >&2;
                 die "$v: op $m did not run or its calls failed"; }
    done
done
echo "shared_bench: every op runs in both nginx (workers: single" \
     "${workers[single]}, two ${workers[two]})"

run_wrk() {
    local v=$1 m=$2 d=$3
    if [ "$v" = single ]; then
        taskset -c "$wrk_cpu" wrk -t1 -c"$conns" -d"${d}s" \
            "http://127.0.0.1:${port[$v]}/$m"
    else
        wrk -t2 -c"$conns2" -d"${d}s" "http://127.0.0.1:${port[$v]}/$m"
    fi
}

logsize() { stat -c %s "$prefix/$1/logs/error.log"; }

# "NOW_NS RUN_NS WAIT_NS..." : the wall clock, then each worker's time on
# a CPU and waiting for one (/proc/PID/schedstat): whether the two workers
# really ran at once
oncpu() {
    local w out
    out=$(date +%s%N)
    for w in ${workers[$1]}; do
        out="$out $(cut -d' ' -f1,2 "/proc/$w/schedstat" 2>/dev/null \
                    || die "worker $w of $1 is gone")"
    done
    echo "$out"
}

for v in $instances; do
    for m in $modes; do
        run_wrk "$v" "$m" "$warmup" >/dev/null
    done
done

pairs=""
for v in $instances; do
    for m in $modes; do
        pairs="$pairs $v:$m"
    done
done

printf 'round\tinst\tmode\tfrom\tto\treqs\toncpu\terrors\n' > "$results"
set -- $pairs
for r in $(seq 1 "$rounds"); do
    order=$(bench_rotate "$r" "$@")
    for p in $order; do
        v=${p%%:*}
        m=${p#*:}
        sleep 0.1
        from=$(logsize "$v")
        s0=$(oncpu "$v")
        out=$(run_wrk "$v" "$m" "$duration")
        s1=$(oncpu "$v")
        sleep 0.1
        to=$(logsize "$v")
        share=$(awk -v a="$s0" -v b="$s1" 'BEGIN {
                    n = split(a, x); split(b, y); s = ""; t = y[1] - x[1]
                    for (i = 2; i < n; i += 2)
                        s = s (i > 2 ? "/" : "") \
                            sprintf("%.2f(w%.2f)", (y[i] - x[i]) / t,
                                    (y[i + 1] - x[i + 1]) / t)
                    print s }')
        reqs=$(printf '%s\n' "$out" | wrk_reqs)
        errs=$(printf '%s\n' "$out" | wrk_errs)
        [ -n "$reqs" ] && [ "$reqs" -gt 0 ] \
            || die "$v /$m: wrk made no requests:
$out"
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$r" "$v" "$m" "$from" \
            "$to" "$reqs" "$share" "${errs:--}" >> "$results"
    done
    echo "shared_bench: round $r/$rounds done"
done

# ---- 2. queue wake-ups: sequential producers on fresh connections ----
wake_from=$(logsize two)
python3 - "${port[two]}" "$samples" <<'PY' || die "producer requests failed"
import http.client, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
for i in range(n):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    c.request("GET", "/produce")
    r = c.getresponse()
    r.read()
    c.close()
    if r.status != 200:
        sys.exit("status %d" % r.status)
    time.sleep(0.003)   # let the consumer go idle again
PY
sleep 0.3
wake_to=$(logsize two)

for v in $instances; do
    [ "$(bench_workers "$prefix/$v")" = "${workers[$v]}" ] \
        || die "$v: a worker was replaced during the run (a crash?)"
    if grep -E '\[(alert|crit|emerg)\]|shared_bench: (bad|cannot|no |enq)' \
        "$prefix/$v/logs/error.log"
    then
        echo "shared_bench: WARNING: $v logged the errors above"
    fi
done

echo
echo "shared_bench: load average at start: $load0;" \
     "at end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "shared_bench: ${rounds} rounds x ${duration}s per (nginx, op), $ops" \
     "calls per request; single: worker on cpu $ngx_cpu, wrk -t1" \
     "-c$conns on cpu $wrk_cpu; two: workers on cpus 0 and 1, wrk -t2" \
     "-c$conns2 unpinned"
python3 - "$results" "$prefix" "$ops" "$wake_from" "$wake_to" \
    "$samples" <<'PY' || die "no usable samples"
import re
import sys
from bisect import bisect_right
from statistics import median

results, prefix, ops = sys.argv[1], sys.argv[2], int(sys.argv[3])
wake_from, wake_to, nsamples = int(sys.argv[4]), int(sys.argv[5]), \
    int(sys.argv[6])
modes = ["none", "clock", "get", "set"]
insts = ["single", "two"]
OP = re.compile(rb"\[warn\] (\d+)#\d+: .*shared_bench: op=(\w+) n=(\d+) "
                rb"ns=(\d+) start=(\d+) fails=(\d+)")
WAKE = re.compile(rb"\[warn\] (\d+)#\d+: .*shared_bench: wake ns=(-?\d+) "
                  rb"from=(\d+)")

logs = {v: open("%s/%s/logs/error.log" % (prefix, v), "rb").read()
        for v in insts}


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100.0 * len(xs)))]


def med(xs):
    return median(xs) if xs else float("nan")


def overlaps(reqs):
    """For each request (pid, start, ns): the share of its loop time
    during which another worker was in its loop too."""
    by = {}
    for pid, start, ns in reqs:
        by.setdefault(pid, []).append((start, start + ns))
    # a worker's loops never overlap each other: sorted by start, they
    # are sorted by end too
    others = {pid: sorted(iv for p, ivs in by.items() if p != pid
                          for iv in ivs) for pid in by}
    ends = {pid: [e for _, e in ivs] for pid, ivs in others.items()}
    out = []
    for pid, start, ns in reqs:
        s, e, both = start, start + ns, 0
        ivs = others[pid]
        for j in range(bisect_right(ends[pid], s), len(ivs)):
            os_, oe = ivs[j]
            if os_ >= e:
                break
            both += min(e, oe) - max(s, os_)
        out.append(both / ns if ns else 0.0)
    return out


rows = [l.rstrip("\n").split("\t") for l in open(results)][1:]
per = {}        # (inst, mode) -> {round: [ns/op]}, also (inst, mode, part)
split = {}      # (inst, mode) -> {round: {pid: requests}}
errors = []
oncpu = {}      # (inst, mode) -> {round: "share/share"}
for rnd, v, m, frm, to, reqs, share, errs in rows:
    rnd = int(rnd)
    chunk = logs[v][int(frm):int(to)]
    xs, ivs, pids = [], [], {}
    for mt in OP.finditer(chunk):
        pid, mode, n, ns, start, fails = mt.groups()
        if mode.decode() != m:
            continue
        if int(fails):
            sys.exit("%s %s: %s calls failed" % (v, m, fails.decode()))
        xs.append(int(ns) / int(n))
        ivs.append((int(pid), int(start), int(ns)))
        pids[int(pid)] = pids.get(int(pid), 0) + 1
    if not xs:
        sys.exit("%s %s round %d: no samples logged" % (v, m, rnd))
    per.setdefault((v, m), {})[rnd] = xs
    split.setdefault((v, m), {})[rnd] = pids
    oncpu.setdefault((v, m), {})[rnd] = share
    if v == "two" and m != "none":
        ov = overlaps(ivs)
        per.setdefault((v, m, "both"), {})[rnd] = \
            [x for x, o in zip(xs, ov) if o >= 0.9]
        per.setdefault((v, m, "alone"), {})[rnd] = \
            [x for x, o in zip(xs, ov) if o <= 0.1]
    if errs != "-":
        errors.append("%s /%s round %d: %s" % (v, m, rnd, errs))

rounds = sorted(per[("single", "none")])
mid = {k: med([med(r[x]) for x in rounds if r[x]]) for k, r in per.items()}
p10 = {k: pct([y for x in rounds for y in r[x]], 10) for k, r in per.items()
       if any(r[x] for x in rounds)}
cnt = {k: sum(len(r[x]) for x in rounds) for k, r in per.items()}


def ratio(a, b):
    xs = [med(per[a][x]) / med(per[b][x]) for x in rounds
          if per[a][x] and per[b][x]]
    return med(xs)


print()
print("1. ns per call inside a worker: median of per-round medians [p10 over"
      " all requests] (requests)")
print("%-5s | %-24s | %-24s | %-17s | %-17s | %s" % (
    "op", "single worker", "two workers, all", "two, both looping",
    "two, other idle", "both/single"))
for m in modes:
    s, t = ("single", m), ("two", m)
    line = "%-5s | %6.1f [%6.1f] (%6d) | %6.1f [%6.1f] (%6d) | " % (
        m, mid[s], p10[s], cnt[s], mid[t], p10[t], cnt[t])
    if m == "none":
        line += "%-17s | %-17s |" % ("-", "-")
    else:
        b, a = ("two", m, "both"), ("two", m, "alone")
        line += "%6.1f (%8d) | %6.1f (%8d) | %6.2f" % (
            mid[b], cnt[b], mid[a], cnt[a], ratio(b, s))
    print(line)
print("""both looping: requests whose loop had the other worker in its loop
for >= 90% of the time (the contended case); other idle: <= 10%.
both/single: median over rounds of the ratio of the round's medians. The
clock row has no shared state: its ratio is what two busy workers on two
cores cost by themselves.""")
for m in ("get", "set"):
    net1 = mid[("single", m)] - mid[("single", "clock")]
    net2 = mid[("two", m, "both")] - mid[("two", "clock", "both")]
    print("%s beyond a bare hostcall (minus the clock loop): single %.1f ns,"
          " contended %.1f ns (x%.2f)" % (m, net1, net2, net2 / net1
                                           if net1 > 0 else float("nan")))

print()
print("per-round median ns/op:")
print("%-17s " % "round" + " ".join("%8d" % r for r in rounds))
keys = [(v, m) for v in insts for m in modes] + \
       [("two", m, "both") for m in modes[1:]]
for k in keys:
    print("%-17s " % " ".join(k) +
          " ".join("%8.1f" % med(per[k][r]) for r in rounds))
print()
print("two workers, requests per worker, share of the run each worker was"
      " on a CPU (and\nwaiting for one: w) from schedstat; contention needs"
      " both near 1:")
for m in modes:
    print("  %-6s " % m + "   ".join(
        "/".join(str(c) for _, c in sorted(split[("two", m)][r].items())) +
        " " + oncpu[("two", m)][r] for r in rounds))
print("single worker on a CPU: " + "  ".join(
    "%s %s" % (m, "/".join(oncpu[("single", m)][r] for r in rounds))
    for m in modes))
least = med([min(float(x.split("(")[0])
                 for x in oncpu[("two", m)][r].split("/"))
             for m in ("get", "set") for r in rounds])
if least < 0.7:
    print("NOTE: during the get/set runs the less running worker was on a CPU"
          " only %.0f%% of\nthe time (median): other load shares the cores,"
          " \"both looping\" is overlap in\nwall time, so the workers often"
          " did not really run at once and the contended\nfigures understate"
          " contention. Rerun on a quiet machine." % (100 * least))

print()
wakes = [(int(c), int(ns), int(p)) for c, ns, p in
         WAKE.findall(logs["two"][wake_from:wake_to])]
if not wakes:
    sys.exit("no queue wake-up logged")
owners = sorted({c for c, _, _ in wakes})
cross = [ns / 1000.0 for c, ns, p in wakes if p != c]
local = [ns / 1000.0 for c, ns, p in wakes if p == c]
print("2. queue wake-up latency, us (producer's clock before its enqueue ->"
      " consumer's\n   clock after the dequeue in on_queue_ready)")
print("   %d producer requests, %d items dequeued, consumer (owner) pid %s"
      % (nsamples, len(wakes), ",".join(map(str, owners))))
for name, xs in (("cross-worker", cross), ("same worker", local)):
    if xs:
        print("   %-13s n=%-4d median %8.1f  p99 %8.1f  min %8.1f  max %8.1f"
              % (name, len(xs), median(xs), pct(xs, 99), min(xs), max(xs)))
    else:
        print("   %-13s n=0" % name)
print("   same worker: the wake-up is a posted event, run once the"
      " producing request's\n   handler returns")
if len(wakes) != nsamples:
    print("WARNING: %d items enqueued, %d dequeued" % (nsamples, len(wakes)))
for e in errors:
    print("WARNING: wrk reported errors: " + e)
PY
exit 0
