"""Request and response bodies: streamed chunk by chunk, buffered while the
plugin pauses (incl. bodies nginx spools to a temp file), replaced,
prepended, appended, with Content-Length kept right."""
import json
import re
import socket
import time

from conftest import module, pw
from upstream import big_body

T = module("t", "testplugin.wasm")
N = module("n", "ngxtest.wasm")


def body_calls(ngx, event, since=0):
    """(size, eos) of each traced body callback."""
    out = []
    for l in ngx.error_log()[since:].splitlines():
        m = re.search(r"callback %s ctx=\d+ size=(\d+) eos=([01])" % event, l)
        if m:
            out.append((int(m.group(1)), m.group(2) == "1"))
    return out


def content_length_ok(r, body):
    cl = r.header("content-length")
    return cl is None or int(cl) == len(body)


def echo_length_ok(r):
    e = r.json()
    cl = r.echo_header("content-length")
    if e["chunked"]:
        return cl is None
    return cl is not None and int(cl) == e["body_len"]


# ---- request body ---------------------------------------------------------

def test_request_body_seen_content_length(ngx):
    ngx.start(wasm=T, server=pw("t", "trace\non request_body: get_body"))
    r = ngx.post("/b", body=b"hello body")
    assert r.status == 200 and r.json()["body"] == "hello body"
    ngx.settle()
    calls = body_calls(ngx, "request_body")
    assert calls and calls[-1][1] is True
    assert sum(s for s, _ in calls) == 10
    if len(calls) == 1:
        assert ngx.log_count("value buffer = hello body") == 1


def test_request_body_seen_chunked(ngx):
    ngx.start(wasm=T, server=pw("t", "trace"))
    parts = [b"first-", b"second-", b"third"]
    r = ngx.request("POST", "/c", body=parts, chunked=True)
    assert r.status == 200
    assert r.json()["body"] == "first-second-third"
    assert echo_length_ok(r)
    ngx.settle()
    calls = body_calls(ngx, "request_body")
    assert calls[-1][1] is True
    assert sum(s for s, _ in calls) == len(b"".join(parts))
    assert all(not eos for _, eos in calls[:-1])


def test_request_body_spooled_to_temp_file(ngx):
    body = big_body(200000)
    ngx.start(wasm=N, server=pw("n", "req_body=keep"),
              http="client_body_buffer_size 1k; client_max_body_size 10m;")
    r = ngx.post("/big", body=body)
    assert r.status == 200
    assert r.json()["body_len"] == len(body)
    assert r.json()["body"].encode("latin-1") == body
    ngx.wait_log("ngxtest: request body size=200000")


def test_request_body_streamed_spooled(ngx):
    body = big_body(150000)
    ngx.start(wasm=T, server=pw("t", "trace"),
              http="client_body_buffer_size 1k; client_max_body_size 10m;")
    r = ngx.post("/big-stream", body=body)
    assert r.status == 200 and r.json()["body_len"] == len(body)
    ngx.settle()
    calls = body_calls(ngx, "request_body")
    assert sum(s for s, _ in calls) == len(body)
    assert calls[-1][1] is True


def test_request_body_buffered_then_read_whole(ngx):
    ngx.start(wasm=N, server=pw("n", "req_body=keep"))
    r = ngx.request("POST", "/buf", body=[b"a" * 1000, b"b" * 1000,
                                          b"c" * 1000], chunked=True)
    assert r.json()["body_len"] == 3000
    ngx.wait_log("ngxtest: request body size=3000")


def test_request_body_replaced(ngx):
    ngx.start(wasm=N, server=pw("n", "req_body=set:NEW-BODY"))
    r = ngx.post("/set", body=b"the original body")
    assert r.json()["body"] == "NEW-BODY"
    assert echo_length_ok(r)


def test_request_body_replaced_chunked_client(ngx):
    ngx.start(wasm=N, server=pw("n", "req_body=set:NEW-BODY"))
    r = ngx.request("POST", "/setc", body=[b"one", b"two"], chunked=True)
    assert r.json()["body"] == "NEW-BODY"
    assert echo_length_ok(r)


def test_request_body_prepended(ngx):
    ngx.start(wasm=N, server=pw("n", "req_body=prepend:PRE-"))
    r = ngx.post("/pre", body=b"body")
    assert r.json()["body"] == "PRE-body"
    assert echo_length_ok(r)


def test_request_body_appended(ngx):
    ngx.start(wasm=N, server=pw("n", "req_body=append:-POST"))
    r = ngx.post("/app", body=b"body")
    assert r.json()["body"] == "body-POST"
    assert echo_length_ok(r)


def test_request_body_replaced_when_spooled(ngx):
    ngx.start(wasm=N, server=pw("n", "req_body=set:small-now"),
              http="client_body_buffer_size 1k; client_max_body_size 10m;")
    r = ngx.post("/spool-set", body=big_body(50000))
    assert r.json()["body"] == "small-now"
    assert echo_length_ok(r)


def test_request_body_set_by_testplugin_streaming(ngx):
    """set_body on a single-chunk body replaces it."""
    ngx.start(wasm=T, server=pw("t", "on request_body: set_body REPLACED"))
    r = ngx.post("/one", body=b"orig")
    assert r.json()["body"] == "REPLACED"
    assert echo_length_ok(r)


# ---- response body --------------------------------------------------------

def test_response_body_streamed(ngx):
    ngx.start(wasm=T, server=pw("t", "trace"))
    r = ngx.get("/s?size=100000&chunked=1&slow=1")
    assert r.status == 200 and r.body == big_body(100000)
    ngx.settle()
    calls = body_calls(ngx, "response_body")
    assert len(calls) >= 2
    assert calls[-1][1] is True
    assert all(not eos for _, eos in calls[:-1])
    assert sum(s for s, _ in calls) == 100000


def test_response_body_seen_static(ngx):
    ngx.start(wasm=T, server=pw("t", "trace\non response_body: get_body"))
    r = ngx.get("/static/hello.txt")
    assert r.body == b"hello static secret world\n"
    ngx.wait_log("value buffer = hello static secret world\\x0a")
    ngx.settle()
    calls = body_calls(ngx, "response_body")
    assert calls[-1][1] is True
    assert sum(s for s, _ in calls) == 26


def test_response_body_buffered_until_eos(ngx):
    ngx.start(wasm=N, server=pw("n", "resp_body=keep"))
    r = ngx.get("/b?size=200000&chunked=1&slow=1")
    assert r.body == big_body(200000)
    ngx.wait_log("ngxtest: response body size=200000")


def test_response_body_replaced_proxied(ngx):
    ngx.start(wasm=N, server=pw("n", "resp_body=set:REPLACED-RESPONSE"))
    r = ngx.get("/rr?body=original%20upstream%20body")
    assert r.body == b"REPLACED-RESPONSE"
    assert content_length_ok(r, r.body)


def test_response_body_replaced_static(ngx):
    ngx.start(wasm=N, server=pw("n", "resp_body=set:REPLACED-STATIC"))
    r = ngx.get("/static/hello.txt")
    assert r.body == b"REPLACED-STATIC"
    assert content_length_ok(r, r.body)


def test_response_body_prepend_append(ngx):
    # two modules: ngxtest keeps its body operation in VM globals
    ngx.start(wasm=N + module("n2", "ngxtest.wasm"),
              proxy=pw("n", "resp_body=prepend:<<"),
              static=pw("n2", "resp_body=append:>>"))
    r = ngx.get("/pa?body=middle")
    assert r.body == b"<<middle"
    assert content_length_ok(r, r.body)
    r = ngx.get("/static/hello.txt")
    assert r.body == b"hello static secret world\n>>"
    assert content_length_ok(r, r.body)


def test_response_body_replaced_big_chunked(ngx):
    ngx.start(wasm=N, server=pw("n", "resp_body=set:tiny"))
    r = ngx.get("/bigc?size=300000&chunked=1")
    assert r.body == b"tiny"


def test_response_body_replaced_big_static(ngx):
    ngx.start(wasm=N, server=pw("n", "resp_body=append:!"))
    r = ngx.get("/static/big.txt")
    assert r.body == big_body(300000) + b"!"
    assert content_length_ok(r, r.body)


def test_body_redact_proxied(ngx):
    ngx.start(wasm=module("br", "body_redact.wasm"), server=pw("br", ""))
    r = ngx.get("/x?body=my%20secret%20is%20secret")
    assert r.status == 200
    assert r.body == b"my ****** is ******"
    assert content_length_ok(r, r.body)
    ngx.wait_log('body_redact: redacting "secret"')


def test_body_redact_across_chunks(ngx):
    text = "a" * 10 + "sec" + "ret" + "b" * 10     # split by the upstream
    ngx.start(wasm=module("br", "body_redact.wasm"), server=pw("br", ""))
    r = ngx.get("/x?chunked=1&slow=1&body=" + text)
    assert r.body == b"a" * 10 + b"******" + b"b" * 10


def test_body_redact_static(ngx):
    ngx.start(wasm=module("br", "body_redact.wasm"), server=pw("br", "world"))
    r = ngx.get("/static/hello.txt")
    assert r.body == b"hello static secret ******\n"
    assert content_length_ok(r, r.body)


def test_body_redact_leaves_other_bodies(ngx):
    ngx.start(wasm=module("br", "body_redact.wasm"), server=pw("br", ""))
    r = ngx.get("/static/big.txt")
    assert r.body == big_body(300000)



def test_request_body_unbuffered_proxying(ngx):
    """proxy_request_buffering off: the body streams to the upstream while
    the plugin sees it chunk by chunk."""
    ngx.start(wasm=T, server=pw("t", "trace"),
              proxy="proxy_request_buffering off;")
    parts = [b"a" * 3000, b"b" * 3000, b"c" * 3000]
    r = ngx.request("POST", "/unbuf", body=parts, chunked=True)
    assert r.status == 200
    assert r.json()["body"] == "a" * 3000 + "b" * 3000 + "c" * 3000
    ngx.settle()
    calls = body_calls(ngx, "request_body")
    assert calls[-1][1] is True
    assert sum(s for s, _ in calls) == 9000


def test_request_body_replaced_unbuffered_proxying(ngx):
    ngx.start(wasm=N, server=pw("n", "req_body=set:SMALL"),
              proxy="proxy_request_buffering off;")
    r = ngx.request("POST", "/unbuf-set", body=[b"x" * 5000, b"y" * 5000],
                    chunked=True)
    assert r.json()["body"] == "SMALL"
    assert echo_length_ok(r)


def test_request_body_left_to_nginx_without_body_callbacks(ngx):
    """No live filter reads the request body (the C SDK plugin only adds a
    response header): nginx reads it as configured, so with
    proxy_request_buffering off a chunked upload still streams to the
    upstream (chunked there too) instead of being read whole first. A
    plugin with a body callback reads it, and the upstream then gets its
    length."""
    ngx.start(wasm=module("b", "bench_add_header.wasm") + T,
              proxy="proxy_request_buffering off;\n" + pw("b"),
              locations="location /t/ { proxy_pass http://backend; "
                        "proxy_http_version 1.1; "
                        "proxy_request_buffering off; %s }" % pw("t"))

    def upload(path):
        s = socket.create_connection(("127.0.0.1", ngx.port), timeout=10)
        try:
            s.sendall(b"POST %s HTTP/1.1\r\nHost: localhost\r\n"
                      b"Connection: close\r\n"
                      b"Transfer-Encoding: chunked\r\n\r\n"
                      b"5\r\nfirst\r\n" % path.encode())
            time.sleep(0.3)
            s.sendall(b"6\r\nsecond\r\n0\r\n\r\n")
            out = b""
            while True:
                b = s.recv(65536)
                if not b:
                    break
                out += b
        finally:
            s.close()
        head, _, body = out.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), out[:200]
        if b"transfer-encoding: chunked" in head.lower():
            body = dechunk(body)
        return head, json.loads(body)

    head, e = upload("/up")
    assert b"x-bench: 1" in head.lower()
    assert e["body"] == "firstsecond"
    assert e["chunked"] is True, e
    head, e = upload("/t/up")
    assert e["body"] == "firstsecond"
    assert e["chunked"] is False, e


def dechunk(data):
    out = b""
    while data:
        line, _, data = data.partition(b"\r\n")
        n = int(line.split(b";")[0] or b"0", 16)
        if n == 0:
            break
        out += data[:n]
        data = data[n + 2:]
    return out
