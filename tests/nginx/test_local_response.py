"""proxy_send_local_response from the request and the response phases."""
import uuid

from conftest import module, pw

T = module("t", "testplugin.wasm")


def marker():
    return "/m-" + uuid.uuid4().hex[:12]


def test_local_response_from_request_headers(ngx, upstream):
    ngx.start(wasm=T, server=pw(
        "t", 'on request_headers: send_local_response_full 403 '
        'denied-by-test "nope\\n" -1 x-local=1 content-type=text/x-test; '
        'return pause'))
    path = marker()
    r = ngx.get(path)
    assert r.status == 403
    assert r.body == b"nope\n"
    assert r.header("x-local") == "1"
    assert r.header("content-type") == "text/x-test"
    assert r.header("content-length") in (None, "5")
    assert not upstream.seen(path)
    ngx.wait_log("status proxy_send_local_response = 0")


def test_local_response_on_static_location(ngx):
    ngx.start(wasm=T, server=pw(
        "t", "on request_headers: send_local_response 401 go-away "
        "www-authenticate=Basic; return pause"))
    r = ngx.get("/static/hello.txt")
    assert r.status == 401
    assert r.body == b"go-away"
    assert r.header("www-authenticate") == "Basic"


def test_local_response_empty_body(ngx):
    ngx.start(wasm=T, server=pw(
        "t", 'on request_headers: send_local_response 204 ""; '
        'return pause'))
    r = ngx.get("/e")
    assert r.status == 204
    assert r.body == b""


def test_local_response_without_pause_return(ngx, upstream):
    """The plugin answers and returns CONTINUE: the answer still wins."""
    ngx.start(wasm=T, server=pw(
        "t", "on request_headers: send_local_response 429 slow-down"))
    path = marker()
    r = ngx.get(path)
    assert (r.status, r.body) == (429, b"slow-down")
    assert not upstream.seen(path)


def test_local_response_after_request_body(ngx, upstream):
    ngx.start(wasm=T, server=pw(
        "t", "on request_body: send_local_response 413 too-big; "
        "return pause"))
    path = marker()
    r = ngx.post(path, body=b"x" * 1000)
    assert (r.status, r.body) == (413, b"too-big")
    assert not upstream.seen(path)


def test_local_response_from_response_headers(ngx, upstream):
    ngx.start(wasm=T, server=pw(
        "t", "on response_headers: send_local_response 502 "
        "replaced-answer x-replaced=yes; return pause"))
    path = marker()
    r = ngx.get(path + "?header=X-Up:1")
    assert r.status == 502
    assert r.body == b"replaced-answer"
    assert r.header("x-replaced") == "yes"
    assert r.header("x-up") is None
    assert upstream.seen(path)          # the upstream did answer


def test_local_response_from_response_headers_static(ngx):
    ngx.start(wasm=T, server=pw(
        "t", "on response_headers: send_local_response 503 static-replaced; "
        "return pause"))
    r = ngx.get("/static/hello.txt")
    assert (r.status, r.body) == (503, b"static-replaced")


def test_http_headers_example_local_hello(ngx, upstream):
    ngx.start(wasm=module("hh", "http_headers.wasm"), server=pw("hh"))
    r = ngx.get("/hello")
    assert r.status == 200
    assert r.body == b"hello from wasm\n"
    assert r.header("content-type") == "text/plain"
    r2 = ngx.get("/not-hello")
    assert r2.status == 200 and r2.json()["path"] == "/not-hello"


def test_local_response_keeps_connection_usable(ngx):
    """Keep-alive: a local answer with a request body unread must not
    break the next request on the same connection."""
    import http.client
    ngx.start(wasm=T, server=pw(
        "t", "on request_headers: get_header x-deny\n"
        "on request_body: send_local_response 400 bad-body; return pause"))
    c = http.client.HTTPConnection("127.0.0.1", ngx.port, timeout=10)
    try:
        c.request("POST", "/k1", body=b"abc")
        r = c.getresponse()
        assert (r.status, r.read()) == (400, b"bad-body")
        if r.getheader("connection", "").lower() != "close":
            c.request("GET", "/k2")
            r = c.getresponse()
            assert r.status == 200
            r.read()
    finally:
        c.close()


def test_local_response_details_and_grpc_status_ignored_on_http(ngx):
    ngx.start(wasm=T, server=pw(
        "t", "on request_headers: send_local_response_full 418 teapot "
        "short-and-stout 5; return pause"))
    r = ngx.get("/tea")
    assert (r.status, r.body) == (418, b"short-and-stout")
