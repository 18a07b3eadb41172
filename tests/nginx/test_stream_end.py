"""on_done, on_log and on_delete run exactly once per request: proxied,
static, local answers, failures of another filter, and when the client
goes away early."""
import re
import socket
import time

from conftest import module, pw

T = module("t", "testplugin.wasm")


def stream_ctxs(ngx, since=0):
    return re.findall(r"callback request_headers ctx=(\d+)",
                      ngx.error_log()[since:])


def end_callbacks(ngx, ctx, timeout=5):
    """Wait for on_delete of ctx; return the order of done/log/delete."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if ngx.log_count("callback delete ctx=%s" % ctx):
            break
        time.sleep(0.02)
    time.sleep(0.2)
    order = []
    for l in ngx.error_log().splitlines():
        for ev in ("done", "log", "delete"):
            if re.search(r"callback %s ctx=%s(,|$| while )" % (ev, ctx), l):
                order.append(ev)
    return order


def assert_once(order):
    assert sorted(order) == ["delete", "done", "log"], order
    assert order[-1] == "delete", order


def test_end_callbacks_once_proxied(ngx):
    ngx.start(wasm=T, server=pw("t", "trace"))
    assert ngx.get("/e1").status == 200
    ctx, = stream_ctxs(ngx)
    assert_once(end_callbacks(ngx, ctx))


def test_end_callbacks_once_static(ngx):
    ngx.start(wasm=T, server=pw("t", "trace"))
    assert ngx.get("/static/hello.txt").status == 200
    ctx, = stream_ctxs(ngx)
    assert_once(end_callbacks(ngx, ctx))


def test_end_callbacks_once_static_404(ngx):
    ngx.start(wasm=T, server=pw("t", "trace"))
    assert ngx.get("/static/missing.txt").status == 404
    ctx, = stream_ctxs(ngx)
    assert_once(end_callbacks(ngx, ctx))


def test_end_callbacks_once_with_body(ngx):
    ngx.start(wasm=T, server=pw("t", "trace"),
              http="client_body_buffer_size 1k;")
    assert ngx.post("/e2", body=b"z" * 20000).status == 200
    ctx, = stream_ctxs(ngx)
    assert_once(end_callbacks(ngx, ctx))


def test_end_callbacks_once_local_response(ngx):
    ngx.start(wasm=T, server=pw("t", "trace\non request_headers: "
                                "send_local_response 403 no; return pause"))
    assert ngx.get("/e3").status == 403
    ctx, = stream_ctxs(ngx)
    assert_once(end_callbacks(ngx, ctx))


def test_end_callbacks_once_for_each_request(ngx):
    ngx.start(wasm=T, server=pw("t", "trace"))
    for i in range(5):
        assert ngx.get("/each-%d" % i).status == 200
    ctxs = stream_ctxs(ngx)
    assert len(set(ctxs)) == 5
    for ctx in ctxs:
        assert_once(end_callbacks(ngx, ctx))


def test_log_callback_sees_response(ngx):
    ngx.start(wasm=T, server=pw("t", "on log: get_header response "
                                ":status; get_header request :path"))
    ngx.get("/seen-in-log?status=202")
    ngx.wait_log("value :status = 202")
    ngx.wait_log("value :path = /seen-in-log?status=202")


def test_end_callbacks_when_another_filter_fails(ngx):
    ngx.start(wasm=T + module("bad", "testplugin.wasm"),
              server=pw("bad", "on request_headers: unreachable",
                        "on_error=open") + pw("t", "trace"))
    assert ngx.get("/other-fails").status == 200
    ctx, = stream_ctxs(ngx)
    assert_once(end_callbacks(ngx, ctx))


def test_end_callbacks_when_client_leaves_during_upstream(ngx):
    ngx.start(wasm=T, server=pw("t", "trace"))
    s = socket.create_connection(("127.0.0.1", ngx.port))
    s.sendall(b"GET /slow?delay=1.5 HTTP/1.1\r\nHost: x\r\n\r\n")
    time.sleep(0.3)
    s.close()
    deadline = time.time() + 5
    while not stream_ctxs(ngx) and time.time() < deadline:
        time.sleep(0.02)
    ctx, = stream_ctxs(ngx)
    assert_once(end_callbacks(ngx, ctx, timeout=6))


def test_end_callbacks_when_client_leaves_while_paused(ngx):
    ngx.start(wasm=T, server=pw("t", "trace\n"
                                "on request_headers: return pause"))
    s = socket.create_connection(("127.0.0.1", ngx.port))
    s.sendall(b"GET /paused-forever HTTP/1.1\r\nHost: x\r\n\r\n")
    time.sleep(0.3)
    s.close()
    deadline = time.time() + 5
    while not stream_ctxs(ngx) and time.time() < deadline:
        time.sleep(0.02)
    ctx, = stream_ctxs(ngx)
    assert_once(end_callbacks(ngx, ctx, timeout=6))


def test_end_callbacks_when_client_leaves_during_request_body(ngx):
    ngx.start(wasm=T, server=pw("t", "trace"))
    s = socket.create_connection(("127.0.0.1", ngx.port))
    s.sendall(b"POST /half HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n"
              b"\r\n" + b"a" * 100)
    time.sleep(0.3)
    s.close()
    deadline = time.time() + 5
    while not stream_ctxs(ngx) and time.time() < deadline:
        time.sleep(0.02)
    ctx, = stream_ctxs(ngx)
    assert_once(end_callbacks(ngx, ctx, timeout=6))


def test_end_callbacks_when_client_leaves_during_response(ngx):
    ngx.start(wasm=T, server=pw("t", "trace"),
              proxy="proxy_buffering off;")
    s = socket.create_connection(("127.0.0.1", ngx.port))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.sendall(b"GET /big?size=5000000 HTTP/1.1\r\nHost: x\r\n\r\n")
    s.recv(1000)
    s.close()
    deadline = time.time() + 5
    while not stream_ctxs(ngx) and time.time() < deadline:
        time.sleep(0.02)
    ctx, = stream_ctxs(ngx)
    assert_once(end_callbacks(ngx, ctx, timeout=8))


def test_done_and_delete_of_root_on_quit(ngx):
    """Not a request: the worker's shutdown is clean and runs no request
    end callbacks for contexts that never existed."""
    ngx.start(wasm=T, server=pw("t", "trace"))
    assert ngx.get("/q").status == 200
    ctx, = stream_ctxs(ngx)
    assert_once(end_callbacks(ngx, ctx))
    assert ngx.quit() == 0
    assert ngx.log_count("callback delete ctx=%s" % ctx) == 1


def test_keepalive_requests_get_their_own_contexts(ngx):
    import http.client
    ngx.start(wasm=T, server=pw("t", "trace\non request_headers: "
                                "get_header :path; add_header x-k 1"))
    c = http.client.HTTPConnection("127.0.0.1", ngx.port, timeout=10)
    try:
        for i in range(3):
            c.request("GET", "/ka-%d" % i)
            r = c.getresponse()
            body = r.read()
            assert r.status == 200 and b'"x-k", "1"' in body.lower()
    finally:
        c.close()
    for i in range(3):
        ngx.wait_log("value :path = /ka-%d" % i)
    ctxs = stream_ctxs(ngx)
    assert len(set(ctxs)) == 3
    for ctx in ctxs:
        assert_once(end_callbacks(ngx, ctx))
