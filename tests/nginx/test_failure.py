"""Failure policy: traps, proc_exit, max_call_time and failed starts never
take the worker down; the request gets on_error=closed (error_status) or
on_error=open (skip the filter); the instance is replaced; repeated
failures back off; failure logs are rate limited."""
import re
import time
import uuid

import pytest

from conftest import module, pw

VM = "log info vm-started"


def tmod(name="t", vm=VM):
    return module(name, "testplugin.wasm", vm)


def mark():
    return "/f-" + uuid.uuid4().hex[:10]


def test_trap_in_request_headers_fails_closed(ngx, upstream):
    ngx.start(wasm=tmod(), server=pw("t", "on request_headers: unreachable"))
    path = mark()
    r = ngx.get(path)
    assert r.status == 500
    assert not upstream.seen(path)


def test_trap_with_error_status(ngx, upstream):
    ngx.start(wasm=tmod(), server=pw("t", "on request_headers: unreachable",
                                     "error_status=503"))
    path = mark()
    assert ngx.get(path).status == 503
    assert not upstream.seen(path)


def test_trap_fails_open(ngx, upstream):
    ngx.start(wasm=tmod(), server=pw("t", "on request_headers: unreachable",
                                     "on_error=open"))
    path = mark()
    r = ngx.get(path)
    assert r.status == 200
    assert r.json()["path"] == path
    assert upstream.seen(path)


def test_fail_open_skips_only_the_failed_filter(ngx):
    ngx.start(wasm=tmod() + module("ok", "testplugin.wasm"),
              server=pw("t", "on request_headers: unreachable",
                        "on_error=open") +
              pw("ok", "on request_headers: add_header x-after 1"))
    r = ngx.get("/skip")
    assert r.status == 200
    assert r.echo_header("x-after") == "1"


def test_failure_is_logged_with_module_name(ngx):
    ngx.start(wasm=tmod("failmod"),
              server=pw("failmod", "on request_headers: unreachable"))
    assert ngx.get("/log").status == 500
    ngx.settle()
    lines = [l for l in ngx.error_log().splitlines()
             if "failmod" in l and re.search(r"\[(error|crit|warn|alert)\]",
                                             l)]
    assert lines, ngx.error_log()[-2000:]
    assert "unreachable" in "\n".join(lines).lower()


def test_next_request_after_trap_works(ngx):
    ngx.start(wasm=tmod(),
              proxy=pw("t", "on request_headers: add_header x-ok 1"),
              locations="location /trap { %s proxy_pass http://backend; }"
              % pw("t", "on request_headers: unreachable"))
    ngx.wait_log("vm-started")
    assert ngx.get("/").echo_header("x-ok") == "1"
    assert ngx.get("/trap").status == 500
    r = ngx.get("/")
    assert r.status == 200
    assert r.echo_header("x-ok") == "1"
    # the failed instance was replaced by a fresh one
    ngx.wait_log("vm-started", count=2)
    assert "exited on signal" not in ngx.error_log()


def test_failed_instance_does_not_leak_state(ngx):
    """The replacement instance starts from fresh memory."""
    n = module("n", "ngxtest.wasm")
    ngx.start(wasm=n + tmod(),
              proxy=pw("n", "count"),
              locations="location /trap { %s %s proxy_pass http://backend; }"
              % (pw("n", "count"), pw("t", "on request_headers: unreachable")))
    assert ngx.get("/").header("x-count") == "1"
    assert ngx.get("/").header("x-count") == "2"
    # the trap is in module t: module n's instance is untouched
    assert ngx.get("/trap").status == 500
    assert ngx.get("/").header("x-count") == "4"


@pytest.mark.no_valgrind
def test_backoff_after_repeated_failures(ngx):
    ngx.start(wasm=tmod(),
              proxy=pw("t", "on request_headers: add_header x-ok 1"),
              locations="location /trap { %s proxy_pass http://backend; }"
              % pw("t", "on request_headers: unreachable"))
    assert ngx.get("/").status == 200
    assert ngx.get("/trap").status == 500
    assert ngx.get("/").status == 200          # replaced at once
    assert ngx.get("/trap").status == 500      # new instance failed < 1 s
    t0 = time.time()
    assert ngx.get("/").status == 500          # backing off: policy at once
    assert time.time() - t0 < 0.5
    time.sleep(1.3)
    r = ngx.get("/")
    assert r.status == 200 and r.echo_header("x-ok") == "1"


def test_backoff_fail_open_passes(ngx):
    ngx.start(wasm=tmod(),
              proxy=pw("t", "on request_headers: add_header x-ok 1",
                       "on_error=open"),
              locations="location /trap { %s proxy_pass http://backend; }"
              % pw("t", "on request_headers: unreachable", "on_error=open"))
    for _ in range(4):
        assert ngx.get("/trap").status == 200
        assert ngx.get("/").status == 200


@pytest.mark.no_valgrind
def test_failure_logs_are_rate_limited(ngx):
    ngx.start(wasm=tmod("failmod"),
              server=pw("failmod", "on request_headers: unreachable"))
    m = ngx.mark()
    t0 = time.time()
    for _ in range(30):
        assert ngx.get("/many").status == 500
    elapsed = time.time() - t0
    ngx.settle()
    lines = [l for l in ngx.error_log()[m:].splitlines()
             if "failmod" in l and re.search(r"\[(error|crit|warn|alert)\]",
                                             l)]
    assert 1 <= len(lines) <= 2 * (int(elapsed) + 2), lines


def test_proc_exit_fails_closed(ngx):
    ngx.start(wasm=tmod(), server=pw("t", "on request_headers: exit 3"))
    assert ngx.get("/exit").status == 500


def test_trap_in_request_body(ngx, upstream):
    ngx.start(wasm=tmod(), server=pw("t", "on request_body: unreachable"))
    path = mark()
    assert ngx.post(path, body=b"abc").status == 500
    assert not upstream.seen(path)


def test_trap_in_response_headers_closed(ngx):
    ngx.start(wasm=tmod(), server=pw("t", "on response_headers: unreachable",
                                     "error_status=502"))
    assert ngx.get("/rh").status == 502
    assert ngx.get("/static/hello.txt").status == 502


def test_trap_in_response_headers_open(ngx):
    ngx.start(wasm=tmod(), server=pw("t", "on response_headers: unreachable",
                                     "on_error=open"))
    r = ngx.get("/rho")
    assert r.status == 200 and r.json()["path"] == "/rho"


def test_trap_in_response_body_open(ngx):
    from upstream import big_body
    ngx.start(wasm=tmod(), server=pw("t", "on response_body: unreachable",
                                     "on_error=open"))
    r = ngx.get("/rbo?size=100000&chunked=1")
    assert r.status == 200 and r.body == big_body(100000)


def test_trap_in_response_body_closed_cuts_the_answer(ngx):
    ngx.start(wasm=tmod(), proxy=pw("t", "on response_body: unreachable"),
              static=pw("t", "on response_headers: add_header x-s 1"))
    try:
        data = ngx.raw(b"GET /rbc?size=100000&chunked=1 HTTP/1.1\r\n"
                       b"Host: x\r\n\r\n")
    except ConnectionResetError:
        data = b""
    complete = data.startswith(b"HTTP/1.1 200") and \
        data.endswith(b"\r\n0\r\n\r\n")
    assert not complete
    # the worker is fine; the instance is replaced for the next request
    r = ngx.get("/static/hello.txt")
    assert r.status == 200 and r.header("x-s") == "1"


def test_vm_start_failure_fails_closed(ngx):
    ngx.start(wasm=module("t", "testplugin.wasm", "return false"),
              proxy=pw("t", "on request_headers: add_header x-a 1"),
              static=pw("t", "", "on_error=open"))
    assert ngx.get("/vs").status == 500
    assert ngx.get("/static/hello.txt").status == 200


def test_configure_failure_fails_closed(ngx):
    ngx.start(wasm=tmod(), proxy=pw("t", "no_such_command"),
              static=pw("t", "no_such_command", "on_error=open",
                        "error_status=599"))
    assert ngx.get("/cf").status == 500
    assert ngx.get("/static/hello.txt").status == 200
    assert "testplugin: configuration line 1" in ngx.error_log()


def test_configure_failure_of_one_root_leaves_others(ngx):
    ngx.start(wasm=tmod(), proxy=pw("t", "on request_headers: "
                                    "add_header x-good 1"),
              static=pw("t", "no_such_command"))
    assert ngx.get("/static/hello.txt").status == 500
    r = ngx.get("/good")
    assert r.status == 200 and r.echo_header("x-good") == "1"


@pytest.mark.no_valgrind
def test_max_call_time_interrupts_loop(ngx, upstream):
    ngx.start(wasm=tmod() + "max_call_time 200ms;",
              proxy=pw("t", "on request_headers: loop"),
              static=pw("t", "on request_headers: loop_hostcall",
                        "on_error=open"))
    path = mark()
    t0 = time.time()
    r = ngx.get(path, timeout=20)
    assert r.status == 500
    assert time.time() - t0 < 5
    assert not upstream.seen(path)
    r = ngx.get("/static/hello.txt", timeout=20)
    assert r.status == 200 and r.body == b"hello static secret world\n"


@pytest.mark.no_valgrind
def test_max_call_time_then_next_request_works(ngx):
    ngx.start(wasm=tmod() + "max_call_time 100ms;",
              proxy=pw("t", "on request_headers: add_header x-ok 1"),
              locations="location /loop { %s proxy_pass http://backend; }"
              % pw("t", "on request_headers: loop"))
    assert ngx.get("/loop", timeout=20).status == 500
    r = ngx.get("/", timeout=20)
    assert r.status == 200 and r.echo_header("x-ok") == "1"


@pytest.mark.no_valgrind
def test_max_call_time_in_configure(ngx):
    ngx.start(wasm=tmod() + "max_call_time 100ms;",
              server=pw("t", "on configure: loop"))
    assert ngx.get("/", timeout=20).status == 500



@pytest.mark.no_valgrind
def test_failure_log_counts_those_not_logged(ngx):
    ngx.start(wasm=tmod("failmod"),
              server=pw("failmod", "on request_headers: unreachable"))
    for _ in range(10):
        assert ngx.get("/burst").status == 500
    time.sleep(1.2)
    m = ngx.mark()
    assert ngx.get("/after").status == 500
    ngx.settle()
    text = ngx.error_log()[m:]
    assert "failmod" in text
    # a failure message may span lines (a backtrace): search the text
    found = re.search(r"\b([1-9]\d*)\b[^\n]*not logged", text)
    assert found, text
    assert int(found.group(1)) >= 5       # most of the burst was not logged


def test_each_filter_has_its_own_policy(ngx):
    ngx.start(wasm=tmod("a") + tmod("b"),
              server=pw("a", "on request_headers: unreachable",
                        "on_error=open") +
              pw("b", "on request_headers: unreachable",
                 "error_status=503"))
    assert ngx.get("/two-policies").status == 503


def test_trap_under_stream_isolation(ngx):
    ngx.start(wasm=tmod(), server="proxy_wasm_isolation stream;",
              proxy=pw("t", "on request_headers: add_header x-ok 1"),
              locations="location /trap { %s proxy_pass http://backend; }"
              % pw("t", "on request_headers: unreachable"))
    assert ngx.get("/trap").status == 500
    r = ngx.get("/")
    assert r.status == 200 and r.echo_header("x-ok") == "1"
