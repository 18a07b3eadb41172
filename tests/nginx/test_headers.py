"""Header changes on the wire, both directions, incl. pseudo-headers."""
import re

from conftest import module, pw

T = module("t", "testplugin.wasm")


def test_request_header_add_replace_remove(ngx):
    ngx.start(wasm=T, server=pw(
        "t", "on request_headers: add_header x-added yes; "
        "replace_header x-rep new; remove_header x-del; "
        "add_header x-multi two"))
    r = ngx.get("/h", headers=[("X-Rep", "old"), ("X-Del", "1"),
                               ("X-Multi", "one"), ("X-Keep", "k")])
    assert r.status == 200
    assert r.echo_header_all("x-added") == ["yes"]
    assert r.echo_header_all("x-rep") == ["new"]
    assert r.echo_header_all("x-del") == []
    assert r.echo_header_all("x-multi") == ["one", "two"]
    assert r.echo_header("x-keep") == "k"
    ngx.wait_log("status proxy_add_header_map_value = 0")
    ngx.wait_log("status proxy_remove_header_map_value = 0")


def test_http_headers_example(ngx):
    ngx.start(wasm=module("hh", "http_headers.wasm"), server=pw("hh"))
    r = ngx.get("/x", headers={"X-Wasm-Filter": "client",
                               "X-Internal-Token": "secret"})
    assert r.status == 200
    assert r.echo_header_all("x-wasm-filter") == ["http_headers"]
    assert r.echo_header("x-internal-token") is None
    assert r.header("x-hello") == "world"
    ngx.wait_log("http_headers: request x-internal-token: secret")
    ngx.wait_log("http_headers: request :method: GET")


def test_pseudo_headers_read(ngx):
    ngx.start(wasm=T, server=pw(
        "t", "on request_headers: get_header :method; get_header :path; "
        "get_header :scheme; get_header :authority; get_header x-a"))
    ngx.get("/p/q?a=1&b=2", headers={"Host": "example.test", "X-A": "1"})
    ngx.wait_log("value :method = GET")
    ngx.wait_log("value :path = /p/q?a=1&b=2")
    ngx.wait_log("value :scheme = http")
    ngx.wait_log("value :authority = example.test")
    ngx.wait_log("value x-a = 1")


def test_request_headers_get_all(ngx):
    ngx.start(wasm=T, server=pw("t", "on request_headers: get_headers"))
    ngx.get("/all", headers=[("Host", "h.test"), ("X-One", "1"),
                             ("X-Two", "a"), ("X-Two", "b")])
    ngx.wait_log("header :method: GET")
    ngx.wait_log("header :path: /all")
    ngx.wait_log("header :authority: h.test")
    ngx.wait_log("header x-one: 1")
    assert ngx.log_count("header x-two: a") == 1
    assert ngx.log_count("header x-two: b") == 1


def test_end_of_stream_on_request_headers(ngx):
    ngx.start(wasm=T, server=pw("t", "trace"))
    ngx.get("/no-body")
    ngx.settle()
    lines = [l for l in ngx.error_log().splitlines()
             if "callback request_headers ctx=" in l]
    assert len(lines) == 1 and "eos=1" in lines[0], lines
    ngx.post("/with-body", body=b"abc")
    ngx.settle()
    lines = [l for l in ngx.error_log().splitlines()
             if "callback request_headers ctx=" in l]
    assert len(lines) == 2 and "eos=0" in lines[1], lines


def test_set_path(ngx, upstream):
    ngx.start(wasm=T, server=pw(
        "t", "on request_headers: replace_header :path /rewritten?z=9"))
    r = ngx.get("/original")
    assert r.status == 200
    assert r.json()["path"] == "/rewritten?z=9"
    assert upstream.seen("/rewritten?z=9")


def test_set_method(ngx):
    ngx.start(wasm=T, server=pw(
        "t", "on request_headers: replace_header :method PUT"))
    r = ngx.post("/m", body=b"payload")
    assert r.json()["method"] == "PUT"
    assert r.json()["body"] == "payload"


def test_set_authority(ngx):
    ngx.start(wasm=T, server=pw(
        "t", "on request_headers: replace_header :authority new.test"),
        proxy="proxy_set_header Host $http_host;")
    r = ngx.get("/a", headers={"Host": "old.test"})
    assert r.echo_header("host") == "new.test"


def test_set_headers_replaces_all(ngx):
    ngx.start(wasm=T, server=pw(
        "t", "on request_headers: set_headers :method=GET :path=/set "
        ":authority=s.test :scheme=http x-only=1"),
        proxy="proxy_set_header Host $http_host;")
    r = ngx.get("/orig", headers={"X-Gone": "1"})
    e = r.json()
    assert e["path"] == "/set"
    assert r.echo_header("x-only") == "1"
    assert r.echo_header("x-gone") is None
    assert r.echo_header("host") == "s.test"


def test_response_header_add_replace_remove(ngx):
    ngx.start(wasm=T, server=pw(
        "t", "on response_headers: add_header x-resp-added 1; "
        "replace_header x-up 2; remove_header x-rm; get_header :status"))
    r = ngx.get("/r?header=X-Up:1&header=X-Rm:1&header=X-Stay:s")
    assert r.status == 200
    assert r.header_all("x-resp-added") == ["1"]
    assert r.header_all("x-up") == ["2"]
    assert r.header("x-rm") is None
    assert r.header("x-stay") == "s"
    ngx.wait_log("value :status = 200")


def test_response_headers_get_all(ngx):
    ngx.start(wasm=T, server=pw("t", "on response_headers: get_headers"))
    ngx.get("/r?status=201&header=X-From-Up:yes")
    ngx.wait_log("header :status: 201")
    ngx.wait_log("header x-from-up: yes")


def test_response_status_replaced(ngx):
    ngx.start(wasm=T, server=pw(
        "t", "on response_headers: replace_header :status 299"))
    r = ngx.get("/s")
    assert r.status == 299
    assert r.json()["path"] == "/s"      # the upstream body still passes


def test_response_headers_on_static_content(ngx):
    ngx.start(wasm=T, server=pw(
        "t", "on response_headers: add_header x-static-wasm yes; "
        "remove_header last-modified; get_header content-length"))
    r = ngx.get("/static/hello.txt")
    assert r.status == 200
    assert r.header("x-static-wasm") == "yes"
    assert r.header("last-modified") is None
    assert r.body == b"hello static secret world\n"
    ngx.wait_log("value content-length = 26")


def test_request_headers_on_static_content(ngx):
    ngx.start(wasm=T, server=pw(
        "t", "on request_headers: replace_header :path /static/hello.txt"))
    r = ngx.get("/static/nothing-here.txt")
    assert r.status == 200
    assert r.body == b"hello static secret world\n"


def test_config_header_example(ngx):
    ngx.start(wasm=module("ch", "config_header.wasm"),
              server=pw("ch", "x-team: platform"))
    assert ngx.get("/").header("x-team") == "platform"
    assert ngx.get("/static/hello.txt").header("x-team") == "platform"
    ngx.wait_log('config_header: adding "x-team: platform"')


def test_header_values_with_odd_bytes(ngx):
    ngx.start(wasm=T, server=pw(
        "t", 'on request_headers: add_header x-sp "a b;c"'))
    r = ngx.get("/odd")
    assert r.echo_header("x-sp") == "a b;c"


def test_many_headers(ngx):
    ngx.start(wasm=T, server=pw("t", "on request_headers: get_headers"))
    hdrs = [("X-H%03d" % i, "v%d" % i) for i in range(60)]
    r = ngx.get("/many", headers=hdrs)
    assert r.status == 200
    ngx.wait_log("header x-h059: v59")
    assert re.search(r"value headers = (6\d)", ngx.error_log())


def test_header_names_must_be_tokens(ngx):
    """A name with a byte outside RFC 9110's token characters is refused
    (BAD_ARGUMENT) and nothing is added; every token character passes."""
    ngx.start(wasm=T, server=pw(
        "t", 'on request_headers: add_header "x bad" 1; add_header x@y 2; '
        'add_header "x:y" 3; add_header "x,y" 4; '
        "add_header x!#$%&*+-.^_`|~9 5"))
    r = ngx.get("/tok")
    assert r.status == 200
    names = [k.lower() for k, _ in r.json()["headers"]]
    assert "x!#$%&*+-.^_`|~9" in names
    for bad in ("x bad", "x@y", "x:y", "x,y"):
        assert bad not in names
    assert ngx.log_count("status proxy_add_header_map_value = 2") == 4
    assert ngx.log_count("status proxy_add_header_map_value = 0") == 1
