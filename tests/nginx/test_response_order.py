"""What a plugin sees of the response callbacks: the header count it is
given, the order of on_response_headers and on_response_body, what the
body looks like from on_response_headers, and that on_response_headers
runs when the headers arrive, not when the body does. The module may run
both callbacks in one entry into the engine when the body comes at once
(one live filter); none of that may show to the plugin."""
import re
import time

import pytest

from conftest import SLOW, module, pw

N = module("n", "ngxtest.wasm")
T = module("t", "testplugin.wasm")

NHEADERS = re.compile(r"ngxtest: (request|response) headers n=(\d+) pairs=(\d+)")
TRACE = re.compile(r"ngxtest: trace (response_headers eos=\d body=\d+"
                   r"|response_body size=\d+ eos=\d)")


@pytest.fixture(params=["batched", "one_by_one"])
def mode(request):
    """Top-level directives: as shipped, or with the batch turned off
    (callbacks one entry each): the plugin must not tell them apart."""
    return "" if request.param == "batched" else "env PW_NO_BATCH=1;"


def counts(ngx):
    return [(m.group(1), int(m.group(2)), int(m.group(3)))
            for m in NHEADERS.finditer(ngx.error_log())]


def traces(ngx):
    return [m.group(1) for m in TRACE.finditer(ngx.error_log())]


def wait_traces(ngx, n, timeout=5):
    deadline = time.time() + timeout * SLOW
    while time.time() < deadline:
        t = traces(ngx)
        if len(t) >= n:
            return t
        time.sleep(0.02)
    return traces(ngx)


def test_header_count_is_the_number_of_pairs(ngx, mode):
    """The count passed to on_request_headers / on_response_headers is the
    number of pairs the plugin then reads, whatever nginx keeps aside
    (content type with charset, length, last-modified, pseudo-headers)."""
    ngx.start(main=mode, wasm=N, server=pw("n", "nheaders"),
              static="charset utf-8;")
    ngx.get("/static/hello.txt")
    ngx.get("/static/hello.txt", headers=[("X-A", "1"), ("X-A", "2")])
    ngx.request("HEAD", "/static/hello.txt")
    ngx.get("/p?header=X-Up:1&header=X-Up:2")
    ngx.get("/p?status=404&body=gone")
    ngx.get("/p?chunked=1&size=100")
    ngx.wait_log("ngxtest: response headers", count=6, exact=False)
    seen = counts(ngx)
    assert len([c for c in seen if c[0] == "request"]) == 6, seen
    assert len([c for c in seen if c[0] == "response"]) == 6, seen
    for what, n, pairs in seen:
        assert n == pairs, (what, n, pairs, seen)
        assert n >= (4 if what == "request" else 2)


def test_response_callbacks_in_order(ngx, mode):
    """on_response_headers once, then on_response_body up to its end, for
    a static file, a proxied answer, a chunked one and an empty one; the
    body is not readable from on_response_headers."""
    ngx.start(main=mode, wasm=N, server=pw("n", "trace"))
    cases = [
        ("/static/hello.txt", 26),
        ("/p?body=hello", 5),
        ("/p?chunked=1&size=1000", 1000),
        ("/p?body=", 0),
    ]
    for path, size in cases:
        since = len(traces(ngx))
        r = ngx.get(path)
        assert r.status == 200 and len(r.body) == size
        t = wait_traces(ngx, since + 2)[since:]
        # let late ones in
        time.sleep(0.05 * SLOW)
        t = traces(ngx)[since:]
        assert re.fullmatch(r"response_headers eos=(0|1) body=\d+", t[0]), t
        status = int(t[0].rsplit("=", 1)[1])
        assert status != 0, "the body was readable in on_response_headers"
        bodies = [x for x in t[1:]]
        assert all(x.startswith("response_body") for x in bodies), t
        if bodies:
            assert bodies[-1].endswith("eos=1"), t
            got = sum(int(re.search(r"size=(\d+)", x).group(1))
                      for x in bodies)
            assert got == size, t


def test_response_headers_run_before_the_body_arrives(ngx, upstream, mode):
    """The upstream sends its headers, then waits before the body: the
    plugin sees the headers while the body is still on its way."""
    ngx.start(main=mode, wasm=N, server=pw("n", "trace"))
    t0 = time.time()
    result = {}

    import threading

    def get():
        result["r"] = ngx.get("/p?body=late&bodydelay=2")

    th = threading.Thread(target=get)
    th.start()
    try:
        t = wait_traces(ngx, 1, timeout=1.5)
        assert t and t[0].startswith("response_headers"), \
            "on_response_headers waited for the body"
        assert time.time() - t0 < 1.9
        assert not any(x.startswith("response_body") for x in t), t
    finally:
        th.join()
    assert result["r"].status == 200 and result["r"].body == b"late"
    t = traces(ngx)
    assert t[-1].startswith("response_body") and t[-1].endswith("eos=1"), t
    assert sum(int(re.search(r"size=(\d+)", x).group(1))
               for x in t[1:]) == 4, t


def test_local_response_from_response_headers_before_the_body(ngx, upstream, mode):
    """A local answer from on_response_headers goes out without waiting
    for the upstream's slow body."""
    ngx.start(main=mode, wasm=T, server=pw(
        "t", "on response_headers: send_local_response 403 denied; "
        "return pause"))
    t0 = time.time()
    r = ngx.get("/p?body=late&bodydelay=3")
    assert (r.status, r.body) == (403, b"denied")
    assert time.time() - t0 < 2.5


def test_pause_at_response_headers_holds_the_body(ngx, mode):
    """Paused in on_response_headers (static file, whose body is there at
    once): nothing of the body reaches on_response_body before the tick
    resumes, and the answer is whole."""
    ngx.start(main=mode, wasm=N, server=pw("n", "pause=response_headers trace"))
    r = ngx.get("/static/hello.txt")
    assert r.status == 200 and r.body == b"hello static secret world\n"
    assert r.header("x-resumed") == "response_headers"
    t = traces(ngx)
    assert t[0].startswith("response_headers"), t
    assert all(x.startswith("response_body") for x in t[1:]), t
    log = ngx.error_log()
    assert log.index("ngxtest: resumed response_headers") \
        < log.index("ngxtest: trace response_body"), log[-2000:]


# One live filter and a body at hand (a static file, a small proxied
# answer): both callbacks run in one entry. What the plugin does in the
# second must act as it does when they run apart.

def test_trap_in_first_body_data_closed(ngx, mode):
    ngx.start(main=mode, wasm=T, server=pw("t", "on response_body: unreachable",
                                "error_status=502"))
    assert ngx.get("/static/hello.txt").status == 502
    assert ngx.get("/p?body=abc").status == 502
    ngx.wait_log("trap in proxy_on_response_body", exact=False)


def test_trap_in_first_body_data_open(ngx, mode):
    ngx.start(main=mode, wasm=T, server=pw(
        "t", "on response_headers: add_header x-h 1; "
        "on response_body: unreachable", "on_error=open"))
    r = ngx.get("/static/hello.txt")
    assert r.status == 200 and r.body == b"hello static secret world\n"
    # the headers callback had run: its header went out
    assert r.header("x-h") == "1"
    r = ngx.get("/p?body=abc")
    assert r.status == 200 and r.body == b"abc"


def test_local_response_from_first_body_data(ngx, mode):
    ngx.start(main=mode, wasm=T, server=pw(
        "t", "on response_body: send_local_response 403 no-body-for-you; "
        "return pause"))
    r = ngx.get("/static/hello.txt")
    assert (r.status, r.body) == (403, b"no-body-for-you")
    r = ngx.get("/p?body=abc")
    assert (r.status, r.body) == (403, b"no-body-for-you")


def test_body_replaced_in_first_body_data(ngx, mode):
    ngx.start(main=mode, wasm=N, server=pw("n", "resp_body=set:REPLACED"))
    r = ngx.get("/static/hello.txt")
    assert r.status == 200 and r.body == b"REPLACED"
    assert r.header("content-length") == "8"


def test_one_entry_where_it_can(ngx, mode):
    """The pair runs in one entry for a static file and a small proxied
    answer with one filter (nginx's debug log says so), never with the
    batch off."""
    ngx.start(main=mode, wasm=N, server=pw("n", "trace"), level="debug")
    ngx.get("/static/hello.txt")
    n = ngx.log_count("in one entry, body callback ran")
    assert n == (1 if mode == "" else 0), n
    # a proxied answer's body usually comes with its headers; on a loaded
    # machine nginx may read the headers alone first (then it runs alone)
    ngx.get("/p?body=abc")
    n = ngx.log_count("in one entry, body callback ran")
    assert n in ((1, 2) if mode == "" else (0,)), n


def test_pause_at_response_headers_before_a_slow_body(ngx, upstream, mode):
    """The headers arrive, the plugin pauses in on_response_headers (run
    alone, the body not there yet), a tick resumes it; the body that came
    meanwhile goes through whole."""
    ngx.start(main=mode, wasm=N,
              server=pw("n", "pause=response_headers trace"))
    r = ngx.get("/p?body=late&bodydelay=0.5")
    assert r.status == 200 and r.body == b"late"
    assert r.header("x-resumed") == "response_headers"
    t = traces(ngx)
    assert t[0].startswith("response_headers"), t
    assert sum(int(re.search(r"size=(\d+)", x).group(1))
               for x in t[1:]) == 4, t


def test_body_left_to_nginx_without_body_callbacks(ngx):
    """No live filter reads the response body (the C SDK plugin only adds
    a header; it declares its body callbacks no-ops): the static file
    goes out as nginx serves it, Content-Length and Accept-Ranges kept,
    and a range request gets 206 with the bytes asked. A plugin with a
    body callback still turns ranges off: it may change the body."""
    ngx.start(wasm=module("b", "bench_add_header.wasm") + T,
              static=pw("b"),
              locations="location /body/ { root html; "
                        "rewrite ^/body/(.*)$ /static/$1 break; %s }"
                        % pw("t"))
    r = ngx.get("/static/hello.txt")
    assert r.status == 200 and r.header("x-bench") == "1"
    assert r.header("content-length") == "26"
    assert r.header("accept-ranges") == "bytes"
    r = ngx.get("/static/hello.txt", headers={"Range": "bytes=0-4"})
    assert r.status == 206 and r.body == b"hello", (r.status, r.body)
    assert r.header("x-bench") == "1"
    r = ngx.get("/body/hello.txt", headers={"Range": "bytes=0-4"})
    assert r.status == 200 and r.body == b"hello static secret world\n"
    assert r.header("accept-ranges") is None
