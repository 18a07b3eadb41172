"""Pause in every phase and resume from another callback (a tick) with
proxy_continue_stream, or continue_request/_response under ABI 0.1.0;
close_stream."""
import re
import socket
import time
import uuid

import pytest

from conftest import module, pw
from upstream import big_body


def wait_resumed(ngx, phase, timeout=5):
    deadline = time.time() + timeout
    while time.time() < deadline:
        lines = [l for l in ngx.error_log().splitlines()
                 if "ngxtest: resumed %s ctx=" % phase in l]
        if lines:
            return lines
        time.sleep(0.02)
    pytest.fail("not resumed from %s:\n%s" % (phase, ngx.error_log()[-3000:]))


@pytest.mark.parametrize("wasm_file", ["ngxtest.wasm", "ngxtest_v010.wasm"])
def test_pause_request_headers(ngx, upstream, wasm_file):
    ngx.start(wasm=module("n", wasm_file),
              server=pw("n", "pause=request_headers tick=100"))
    r = ngx.get("/p-rh")
    assert r.status == 200
    # added by the tick before it resumed the request
    assert r.echo_header("x-resumed") == "request_headers"
    lines = wait_resumed(ngx, "request_headers")
    assert re.search(r"status=0\b", lines[0]), lines[0]


@pytest.mark.parametrize("wasm_file", ["ngxtest.wasm", "ngxtest_v010.wasm"])
def test_pause_request_body(ngx, wasm_file):
    ngx.start(wasm=module("n", wasm_file),
              server=pw("n", "pause=request_body tick=50"))
    r = ngx.post("/p-rb", body=b"paused body")
    assert r.status == 200
    assert r.json()["body"] == "paused body"
    wait_resumed(ngx, "request_body")


def test_pause_request_body_chunked_big(ngx):
    body = big_body(100000)
    ngx.start(wasm=module("n", "ngxtest.wasm"),
              server=pw("n", "pause=request_body tick=50"),
              http="client_body_buffer_size 4k; client_max_body_size 1m;")
    r = ngx.request("POST", "/p-rb2", body=[body[:50000], body[50000:]],
                    chunked=True)
    assert r.status == 200
    assert r.json()["body"].encode("latin-1") == body
    wait_resumed(ngx, "request_body")


@pytest.mark.parametrize("wasm_file", ["ngxtest.wasm", "ngxtest_v010.wasm"])
def test_pause_response_headers(ngx, wasm_file):
    ngx.start(wasm=module("n", wasm_file),
              server=pw("n", "pause=response_headers tick=50"))
    r = ngx.get("/p-resh")
    assert r.status == 200
    assert r.header("x-resumed") == "response_headers"
    assert r.json()["path"] == "/p-resh"
    wait_resumed(ngx, "response_headers")


def test_pause_response_headers_static(ngx):
    ngx.start(wasm=module("n", "ngxtest.wasm"),
              server=pw("n", "pause=response_headers tick=50"))
    r = ngx.get("/static/hello.txt")
    assert r.header("x-resumed") == "response_headers"
    assert r.body == b"hello static secret world\n"


@pytest.mark.parametrize("wasm_file", ["ngxtest.wasm", "ngxtest_v010.wasm"])
def test_pause_response_body(ngx, wasm_file):
    ngx.start(wasm=module("n", wasm_file),
              server=pw("n", "pause=response_body tick=50"))
    r = ngx.get("/p-resb?size=100000&chunked=1&slow=1")
    assert r.status == 200
    assert r.body == big_body(100000)
    wait_resumed(ngx, "response_body")


def test_pause_response_body_static(ngx):
    ngx.start(wasm=module("n", "ngxtest.wasm"),
              server=pw("n", "pause=response_body tick=50"))
    r = ngx.get("/static/big.txt")
    assert r.body == big_body(300000)
    wait_resumed(ngx, "response_body")


def test_many_paused_requests_resume(ngx):
    import threading
    ngx.start(wasm=module("n", "ngxtest.wasm"),
              server=pw("n", "pause=request_headers tick=100"))
    results = []

    def one(i):
        results.append(ngx.get("/many-%d" % i).status)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(15)
    assert results == [200] * 10


def test_pause_without_resume_holds_the_request(ngx, upstream):
    """A request paused with nobody to resume it does not reach the
    upstream; the client times out."""
    ngx.start(wasm=module("t", "testplugin.wasm"),
              server=pw("t", "on request_headers: return pause"))
    path = "/held-" + uuid.uuid4().hex[:8]
    with pytest.raises(socket.timeout):
        ngx.get(path, timeout=0.5)
    assert not upstream.seen(path)


def test_resume_unknown_context_fails_cleanly(ngx):
    ngx.start(wasm=module("t", "testplugin.wasm"),
              server=pw("t", "on configure: set_tick 30\n"
                        "on tick: set_effective_context 9999"))
    ngx.wait_log("status proxy_set_effective_context = 2")  # BAD_ARGUMENT


def test_close_stream_from_request_headers(ngx, upstream):
    ngx.start(wasm=module("t", "testplugin.wasm"),
              server=pw("t", "on request_headers: close_stream; "
                        "return pause"))
    path = "/closed-" + uuid.uuid4().hex[:8]
    try:
        data = ngx.raw(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n"
                       % path.encode())
    except ConnectionResetError:
        data = b""
    assert not data.startswith(b"HTTP/1.1 200")
    assert not upstream.seen(path)
    ngx.wait_log("status proxy_close_stream = 0")


def test_close_stream_from_response_body(ngx):
    ngx.start(wasm=module("t", "testplugin.wasm"),
              server=pw("t", "on response_body: close_stream response; "
                        "return pause"))
    try:
        data = ngx.raw(b"GET /cb?size=300000&chunked=1&slow=1 HTTP/1.1\r\n"
                       b"Host: x\r\n\r\n")
    except ConnectionResetError:
        data = b""
    # the response does not complete: the last chunk never arrives
    assert not data.endswith(b"\r\n0\r\n\r\n")
    ngx.wait_log("status proxy_close_stream = 0")
