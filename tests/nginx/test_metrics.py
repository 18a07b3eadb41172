"""proxy_wasm_metrics: the Prometheus page (text format 0.0.4) of every
plugin metric, one value across workers, and the host's own metrics."""
import concurrent.futures
import math
import re

import pytest

from conftest import module, pw

METRICS_LOC = "location = /metrics { proxy_wasm_metrics; }"

NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
TYPES = ("counter", "gauge", "histogram", "summary", "untyped")


class ParseError(Exception):
    pass


def _value(text):
    if text in ("+Inf", "Inf"):
        return math.inf
    if text == "-Inf":
        return -math.inf
    if text == "NaN":
        return math.nan
    if not re.match(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\Z", text):
        raise ParseError("bad value %r" % text)
    return float(text)


def _labels(text, i, lineno):
    """Parse `{a="x",b="y"}` from text[i] == '{'; returns (dict, next i)."""
    labels = {}
    i += 1
    while True:
        if text[i:i + 1] == "}":
            return labels, i + 1
        m = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*").match(text, i)
        if not m:
            raise ParseError("line %d: bad label name" % lineno)
        name = m.group(0)
        i = m.end()
        if text[i:i + 2] != '="':
            raise ParseError("line %d: expected =\" after label" % lineno)
        i += 2
        val = []
        while True:
            if i >= len(text):
                raise ParseError("line %d: unterminated label value"
                                 % lineno)
            c = text[i]
            if c == "\\":
                e = text[i + 1:i + 2]
                if e not in ("\\", '"', "n"):
                    raise ParseError("line %d: bad escape \\%s"
                                     % (lineno, e))
                val.append({"\\": "\\", '"': '"', "n": "\n"}[e])
                i += 2
            elif c == '"':
                i += 1
                break
            else:
                val.append(c)
                i += 1
        if name in labels:
            raise ParseError("line %d: label %s twice" % (lineno, name))
        labels[name] = "".join(val)
        if text[i:i + 1] == ",":
            i += 1
        elif text[i:i + 1] != "}":
            raise ParseError("line %d: expected , or }" % lineno)


def _help_text(text, lineno):
    """HELP text knows only the escapes \\\\ and \\n."""
    out = []
    i = 0
    while i < len(text):
        if text[i] == "\\":
            e = text[i + 1:i + 2]
            if e not in ("\\", "n"):
                raise ParseError("line %d: bad HELP escape" % lineno)
            out.append("\n" if e == "n" else "\\")
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _family_of(name, families):
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix):
            base = name[:-len(suffix)]
            if families.get(base, {}).get("type") == "histogram":
                return base
    return name


def parse(text):
    """A strict parser of the Prometheus text format 0.0.4.

    Returns ({family: {"type", "help", "samples": [(name, labels,
    value)]}}, [other comment lines]). Raises ParseError when the page
    breaks the format: bad names, escapes or values, a TYPE after its
    samples or twice, a family's samples not together, a repeated series,
    histogram buckets that are not cumulative or end otherwise than with
    +Inf equal to _count."""
    if text and not text.endswith("\n"):
        raise ParseError("no final newline")
    families = {}
    comments = []
    order = []              # families in the order their lines appear
    seen_series = set()
    for lineno, line in enumerate(text.split("\n")[:-1], 1):
        if line == "":
            continue
        if line.startswith("#"):
            parts = line.split(" ", 3)
            if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                name = parts[2]
                if not NAME.match(name):
                    raise ParseError("line %d: bad name %r" % (lineno, name))
                fam = families.setdefault(name, {"type": None,
                                                 "help": None,
                                                 "samples": []})
                if order and order[-1] != name and name in order:
                    raise ParseError("line %d: family %s split"
                                     % (lineno, name))
                if not order or order[-1] != name:
                    order.append(name)
                rest = parts[3] if len(parts) > 3 else ""
                if parts[1] == "TYPE":
                    if fam["type"] is not None:
                        raise ParseError("line %d: TYPE twice" % lineno)
                    if fam["samples"]:
                        raise ParseError("line %d: TYPE after samples"
                                         % lineno)
                    if rest not in TYPES:
                        raise ParseError("line %d: bad type %r"
                                         % (lineno, rest))
                    fam["type"] = rest
                else:
                    if fam["help"] is not None:
                        raise ParseError("line %d: HELP twice" % lineno)
                    fam["help"] = _help_text(rest, lineno)
            else:
                comments.append(line)
            continue
        m = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*").match(line)
        if not m:
            raise ParseError("line %d: bad sample %r" % (lineno, line))
        name = m.group(0)
        i = m.end()
        labels = {}
        if line[i:i + 1] == "{":
            labels, i = _labels(line, i, lineno)
        if line[i:i + 1] != " ":
            raise ParseError("line %d: expected a blank before the value"
                             % lineno)
        fields = line[i + 1:].split(" ")
        if len(fields) not in (1, 2):
            raise ParseError("line %d: bad value/timestamp" % lineno)
        value = _value(fields[0])
        if len(fields) == 2 and not re.match(r"-?\d+\Z", fields[1]):
            raise ParseError("line %d: bad timestamp" % lineno)
        base = _family_of(name, families)
        fam = families.setdefault(base, {"type": None, "help": None,
                                         "samples": []})
        if order and order[-1] != base and base in order:
            raise ParseError("line %d: family %s split" % (lineno, base))
        if not order or order[-1] != base:
            order.append(base)
        if fam["type"] == "histogram" and name == base:
            raise ParseError("line %d: histogram sample without suffix"
                             % lineno)
        if name.endswith("_bucket") and base != name and "le" not in labels:
            raise ParseError("line %d: bucket without le" % lineno)
        key = (name, tuple(sorted(labels.items())))
        if key in seen_series:
            raise ParseError("line %d: series %r repeated" % (lineno, key))
        seen_series.add(key)
        fam["samples"].append((name, labels, value))
    for base, fam in families.items():
        if fam["type"] == "histogram":
            _check_histogram(base, fam)
        if fam["type"] == "counter":
            for _, _, v in fam["samples"]:
                if v < 0:
                    raise ParseError("counter %s is negative" % base)
    return families, comments


def _check_histogram(base, fam):
    groups = {}
    for name, labels, value in fam["samples"]:
        rest = tuple(sorted((k, v) for k, v in labels.items() if k != "le"))
        g = groups.setdefault(rest, {"buckets": [], "sum": None,
                                     "count": None})
        if name == base + "_bucket":
            g["buckets"].append((_value(labels["le"]), value))
        elif name == base + "_sum":
            g["sum"] = value
        elif name == base + "_count":
            g["count"] = value
    for g in groups.values():
        b = g["buckets"]
        if not b or b[-1][0] != math.inf:
            raise ParseError("%s: buckets do not end with +Inf" % base)
        if g["count"] is None or g["sum"] is None:
            raise ParseError("%s: no _count or _sum" % base)
        if b[-1][1] != g["count"]:
            raise ParseError("%s: +Inf bucket != _count" % base)
        for (le0, c0), (le1, c1) in zip(b, b[1:]):
            if not le0 < le1:
                raise ParseError("%s: le not increasing" % base)
            if c1 < c0:
                raise ParseError("%s: buckets not cumulative" % base)


def test_parser_rejects_bad_pages():
    good = "# TYPE a counter\na 1\n"
    parse(good)
    for bad in ("a 1",                                   # no newline
                "# TYPE a counter\n# TYPE a counter\na 1\n",
                "a 1\n# TYPE a counter\n",
                "a{x=\"\\q\"} 1\n",
                "a 1\nb 2\na{x=\"1\"} 3\n",
                "a 1\na 2\n",
                "9a 1\n",
                "a one\n",
                "# TYPE h histogram\nh_bucket{le=\"1\"} 2\n"
                "h_bucket{le=\"+Inf\"} 1\nh_sum 0\nh_count 1\n",
                "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 0\n"
                "h_count 1\n",
                "# TYPE c counter\nc -1\n"):
        with pytest.raises(ParseError):
            parse(bad)


# ---- helpers ---------------------------------------------------------------


def scrape(ngx, path="/metrics"):
    r = ngx.get(path)
    assert r.status == 200, r
    assert r.header("Content-Type") == "text/plain; version=0.0.4"
    assert int(r.header("Content-Length")) == len(r.body)
    families, comments = parse(r.body.decode("utf-8"))
    return families, comments


def sample(families, family, name=None, **labels):
    """The value of one series, or None when it is not on the page."""
    fam = families.get(family)
    if fam is None:
        return None
    for n, l, v in fam["samples"]:
        if n == (name or family) and l == labels:
            return v
    return None


def workers_seen(ngx, text):
    pids = set()
    for line in ngx.log_lines(text):
        m = re.search(r"\] (\d+)#\d+: ", line)
        if m:
            pids.add(int(m.group(1)))
    return pids


def hammer(ngx, path, n, threads=8):
    with concurrent.futures.ThreadPoolExecutor(threads) as ex:
        statuses = list(ex.map(lambda _: ngx.get(path).status, range(n)))
    assert statuses == [200] * n


# ---- the page ---------------------------------------------------------------


def test_page_format_methods_and_host_families(ngx):
    ngx.start(wasm=module("t", "testplugin.wasm"),
              proxy=pw("t", "on configure: define_metric counter reqs\n"
                       "on request_headers: increment_metric reqs 1"),
              locations=METRICS_LOC, workers=2)
    families, comments = scrape(ngx)
    assert comments == []
    assert families["reqs"]["type"] == "counter"
    assert families["reqs"]["help"] == 'proxy-wasm metric "reqs"'
    assert sample(families, "reqs") == 0
    # host families are there before anything happened, one line per
    # configured module
    for fam, typ in (("pw_host_plugin_failures_total", "counter"),
                     ("pw_host_instance_restarts_total", "counter"),
                     ("pw_host_instances", "gauge")):
        assert families[fam]["type"] == typ
        assert sample(families, fam, module="t") is not None
    assert sample(families, "pw_host_plugin_failures_total",
                  module="t") == 0
    assert sample(families, "pw_host_callouts_in_flight") == 0
    assert families["pw_host_callouts_in_flight"]["type"] == "gauge"

    r = ngx.request("HEAD", "/metrics")
    assert r.status == 200 and r.body == b""
    assert r.header("Content-Type") == "text/plain; version=0.0.4"
    r = ngx.post("/metrics", body=b"x=1")
    assert r.status == 405
    assert r.header("Allow") == "GET, HEAD"


def test_page_without_wasm_block(ngx):
    ngx.start(wasm=None, locations=METRICS_LOC)
    families, _ = scrape(ngx)
    assert sample(families, "pw_host_callouts_in_flight") == 0
    assert families["pw_host_plugin_failures_total"]["samples"] == []


def test_directive_outside_location_is_refused(ngx):
    rc, out = ngx.test_conf(wasm=None, server="proxy_wasm_metrics;")
    assert rc != 0
    assert '"proxy_wasm_metrics" directive is not allowed here' in out
    rc, out = ngx.test_conf(wasm=None, locations="location /m { "
                            "proxy_wasm_metrics; proxy_wasm_metrics; }")
    assert rc != 0
    assert "is duplicate" in out


# ---- one value across workers -----------------------------------------------


def test_counter_counts_requests_of_both_workers(ngx):
    ngx.start(wasm=module("t", "testplugin.wasm"),
              proxy=pw("t", "on configure: define_metric counter reqs\n"
                       "on request_headers: increment_metric reqs 1"),
              locations=METRICS_LOC, workers=2)
    ngx.wait_log("status proxy_define_metric = 0", count=2)
    sent = 0
    # both workers must have counted: keep sending until both did
    for _ in range(20):
        hammer(ngx, "/", 40)
        sent += 40
        if len(workers_seen(ngx, "status proxy_increment_metric = 0")) == 2:
            break
    assert workers_seen(ngx, "status proxy_increment_metric = 0") \
        == set(ngx.worker_pids())
    # every scrape, whichever worker answers, shows the sum
    values = set()
    for _ in range(10):
        families, _ = scrape(ngx)
        values.add(sample(families, "reqs"))
    assert values == {sent}


def test_example_metrics_plugin(ngx):
    ngx.start(wasm=module("m", "metrics.wasm"), proxy=pw("m"),
              locations=METRICS_LOC, workers=2)
    bodies = [b"", b"x" * 3, b"y" * 100, b"z" * 5000]
    for body in bodies:
        assert ngx.post("/", body=body).status == 200
    ngx.settle(0.3)         # on_log runs after the response
    families, _ = scrape(ngx)
    assert sample(families, "requests_total") == len(bodies)
    assert families["requests_total"]["type"] == "counter"
    assert sample(families, "in_flight") == 0
    assert families["in_flight"]["type"] == "gauge"
    assert families["body_size"]["type"] == "histogram"
    assert sample(families, "body_size", "body_size_count") == len(bodies)
    assert sample(families, "body_size", "body_size_sum") \
        == sum(len(b) for b in bodies)


def test_histogram_buckets_sum_count(ngx):
    values = [0, 1, 2, 3, 5, 100, 1000, -7, 4, 1024, 1025]
    locs = ["location = /h%d { %s }" % (i, pw(
        "t", "on configure: define_metric histogram lat\n"
        "on request_headers: record_metric lat %d; "
        "send_local_response 200 ok" % v)) for i, v in enumerate(values)]
    ngx.start(wasm=module("t", "testplugin.wasm"),
              locations=METRICS_LOC + "\n".join(locs), workers=2)
    for i in range(len(values)):
        assert ngx.get("/h%d" % i).status == 200
    families, _ = scrape(ngx)
    fam = families["lat"]
    assert fam["type"] == "histogram"
    assert sample(families, "lat", "lat_count") == len(values)
    assert sample(families, "lat", "lat_sum") == sum(values)
    # cumulative power-of-two buckets up to the highest non-empty one
    buckets = [(l["le"], v) for n, l, v in fam["samples"]
               if n == "lat_bucket"]
    top = 11                            # 1025 <= 2^11
    expect = [(str(2 ** i), sum(1 for x in values if x <= 2 ** i))
              for i in range(top + 1)]
    expect.append(("+Inf", len(values)))
    assert buckets == expect


def test_empty_histogram(ngx):
    ngx.start(wasm=module("t", "testplugin.wasm"),
              proxy=pw("t", "on configure: define_metric histogram empty"),
              locations=METRICS_LOC)
    families, _ = scrape(ngx)
    assert families["empty"]["samples"] == [
        ("empty_bucket", {"le": "+Inf"}, 0),
        ("empty_sum", {}, 0), ("empty_count", {}, 0)]


def test_gauges(ngx):
    ngx.start(wasm=module("t", "testplugin.wasm"),
              locations=METRICS_LOC + """
        location = /up { %s }
        location = /down { %s }
        location = /set { %s }""" % (
                  pw("t", "on configure: define_metric gauge g\n"
                     "on request_headers: increment_metric g 5; "
                     "send_local_response 200"),
                  pw("t", "on configure: define_metric gauge g\n"
                     "on request_headers: increment_metric g -12; "
                     "send_local_response 200"),
                  pw("t", "on configure: define_metric gauge s\n"
                     "on request_headers: record_metric s 42; "
                     "send_local_response 200")),
              workers=2)
    for path in ("/up", "/up", "/down", "/set"):
        assert ngx.get(path).status == 200
    families, _ = scrape(ngx)
    assert families["g"]["type"] == "gauge"
    assert sample(families, "g") == -2
    assert sample(families, "s") == 42
    assert ngx.get("/set").status == 200
    assert ngx.get("/up").status == 200
    families, _ = scrape(ngx)
    assert sample(families, "s") == 42
    assert sample(families, "g") == 3


# ---- names ------------------------------------------------------------------


def test_name_sanitising_and_collisions(ngx):
    script = "\n".join([
        "on configure:",
        'define_metric counter "my.metric-name/x"',
        "define_metric counter 9lives",
        "define_metric counter ok:name_1",
        'define_metric gauge "caf\\xc3\\xa9 \\"q\\" \\\\ \\n"',
        "define_metric counter a.b",
        "define_metric counter a_b",
        "define_metric gauge a-b",
        "define_metric histogram h",
        "define_metric counter h_count",
        "define_metric counter pw_host_instances",
        "on request_headers:",
        'increment_metric "my.metric-name/x" 1',
        "increment_metric 9lives 2",
        "increment_metric ok:name_1 3",
        "increment_metric a.b 7",
        "increment_metric a_b 3",
        "increment_metric h_count 9",
        "record_metric h 3",
    ])
    ngx.start(wasm=module("t", "testplugin.wasm"), proxy=pw("t", script),
              locations=METRICS_LOC)
    assert ngx.get("/").status == 200
    families, comments = scrape(ngx)
    assert sample(families, "my_metric_name_x") == 1
    assert families["my_metric_name_x"]["help"] \
        == 'proxy-wasm metric "my.metric-name/x"'
    assert sample(families, "_9lives") == 2
    assert sample(families, "ok:name_1") == 3
    # non-printable bytes become '?' in HELP, \ and newline are escaped
    assert families["caf____q_____"]["help"] \
        == 'proxy-wasm metric "caf?? "q" \\ \n"'
    # first one wins; each skipped metric gets a comment line
    assert sample(families, "a_b") == 7
    assert sample(families, "h", "h_count") == 1
    assert "h_count" not in families
    # host names cannot be taken by a plugin
    assert families["pw_host_instances"]["type"] == "gauge"
    assert sample(families, "pw_host_plugin_failures_total",
                  module="t") == 0
    assert sorted(comments) == sorted([
        '# proxy-wasm: counter "a_b" not shown: its name a_b is taken '
        'by an earlier metric',
        '# proxy-wasm: gauge "a-b" not shown: its name a_b is taken '
        'by an earlier metric',
        '# proxy-wasm: counter "h_count" not shown: its name h_count is '
        'taken by an earlier metric',
        '# proxy-wasm: counter "pw_host_instances" not shown: its name '
        'pw_host_instances is taken by an earlier metric',
    ])


# ---- host metrics -----------------------------------------------------------


def test_shm_zone_metrics(ngx):
    ngx.start(wasm=module("t", "testplugin.wasm")
              + "\nshm_queue jobs 64k;",
              proxy=pw("t", "on configure: register_queue jobs\n"
                       "on request_headers: set_shared k1 v1; "
                       "set_shared k2 v2; enqueue jobs hello"),
              locations=METRICS_LOC, workers=2)
    assert ngx.get("/").status == 200
    families, _ = scrape(ngx)
    kv = {"zone": "*", "kind": "kv"}
    qz = {"zone": "jobs", "kind": "queue"}
    mz = {"zone": "metrics", "kind": "metrics"}
    assert sample(families, "pw_host_shm_kv_entries", **kv) == 2
    assert sample(families, "pw_host_shm_size_bytes", **qz) >= 64 * 1024 \
        - 4096
    assert sample(families, "pw_host_shm_queue_items", **qz) == 1
    assert sample(families, "pw_host_shm_queue_bytes", **qz) == 5
    assert sample(families, "pw_host_shm_queue_dropped_total", **qz) == 0
    assert sample(families, "pw_host_shm_used_bytes", **kv) > 0
    assert sample(families, "pw_host_shm_metrics", **mz) is not None


def test_host_failure_counter_after_trap(ngx):
    ngx.start(wasm=module("t", "testplugin.wasm"),
              proxy=pw("t", "on request_headers: unreachable"),
              locations=METRICS_LOC, workers=2)
    families, _ = scrape(ngx)
    assert sample(families, "pw_host_plugin_failures_total",
                  module="t") == 0
    for _ in range(3):
        ngx.get("/")
    ngx.settle(0.2)
    families, _ = scrape(ngx)
    failures = sample(families, "pw_host_plugin_failures_total",
                      module="t")
    assert failures >= 1, families.get("pw_host_plugin_failures_total")
    # each instance that replaced a failed one is a restart
    restarts = sample(families, "pw_host_instance_restarts_total",
                      module="t")
    assert 1 <= restarts <= failures


def test_host_instances_gauge(ngx):
    ngx.start(wasm=module("t", "testplugin.wasm"),
              proxy=pw("t", "on request_headers: log info x"),
              locations=METRICS_LOC, workers=2)
    ngx.wait_log("[wasm] t: instance started", count=2, exact=False)
    families, _ = scrape(ngx)
    assert sample(families, "pw_host_instances", module="t") == 2


def test_values_survive_reload(ngx):
    """The metrics zone outlives a reload; the instances gauge follows the
    workers (old ones count themselves out when they exit)."""
    kw = dict(wasm=module("t", "testplugin.wasm"),
              proxy=pw("t", "on configure: define_metric counter reqs\n"
                       "on request_headers: increment_metric reqs 1"),
              locations=METRICS_LOC, workers=2)
    ngx.start(**kw)
    for _ in range(5):
        assert ngx.get("/").status == 200
    assert ngx.reload(**kw)
    for _ in range(3):
        assert ngx.get("/").status == 200
    families, _ = scrape(ngx)
    assert sample(families, "reqs") == 8
    assert sample(families, "pw_host_instances", module="t") == 2


def test_page_larger_than_one_buffer(ngx):
    # an nginx parameter holds < 4k: 20 metrics per location; the
    # testplugin knows 64 metric names
    names = ["metric_with_a_rather_long_name_%04d" % i for i in range(60)]
    locs = []
    for k in range(3):
        part = names[k * 20:(k + 1) * 20]
        script = "\n".join(["on configure:"]
                           + ["define_metric counter %s" % n for n in part]
                           + ["on request_headers:"]
                           + ["increment_metric %s %d" % (n, names.index(n))
                              for n in part]
                           + ["send_local_response 200"])
        locs.append("location = /m%d { %s }" % (k, pw("t", script)))
    ngx.start(wasm=module("t", "testplugin.wasm"),
              locations=METRICS_LOC + "\n".join(locs))
    for k in range(3):
        assert ngx.get("/m%d" % k).status == 200
    r = ngx.get("/metrics")
    assert len(r.body) > 2 * 4096
    families, _ = scrape(ngx)          # checks Content-Length too
    assert [sample(families, n) for n in names] == list(range(60))


def test_host_hostcall_errors_counted(ngx):
    # an empty shared-data key is refused with BAD_ARGUMENT; NOT_FOUND on a
    # missing key is an answer, not an error
    ngx.start(wasm=module("t", "testplugin.wasm"),
              proxy=pw("t", 'on request_headers: set_shared "" v; '
                            'get_shared missing'),
              locations=METRICS_LOC)
    families, _ = scrape(ngx)
    assert sample(families, "pw_host_hostcall_errors_total",
                  module="t") == 0
    for _ in range(3):
        assert ngx.get("/").status == 200
    ngx.settle(0.2)
    families, _ = scrape(ngx)
    assert sample(families, "pw_host_hostcall_errors_total",
                  module="t") == 3
