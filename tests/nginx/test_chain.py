"""Filter chains: in order on the request, in reverse order on the response
(as Envoy: the last filter sees the response first), short-circuit
by a local answer, inheritance across http/server/location."""
import uuid

from conftest import module, pw

T = module("t", "testplugin.wasm")


def tag(name):
    return ("on request_headers: add_header x-chain %s; log info rh-%s\n"
            "on response_headers: add_header x-chain-resp %s; "
            "log info resp-%s" % (name, name, name, name))


def first_index(log, text):
    i = log.find(text)
    assert i >= 0, text
    return i


def test_chain_of_two_in_order(ngx):
    ngx.start(wasm=T, server=pw("t", tag("a")) + pw("t", tag("b")))
    r = ngx.get("/chain")
    assert r.echo_header_all("x-chain") == ["a", "b"]
    assert r.header_all("x-chain-resp") == ["b", "a"]
    ngx.wait_log("resp-a")
    log = ngx.error_log()
    assert first_index(log, "rh-a") < first_index(log, "rh-b")
    assert first_index(log, "resp-b") < first_index(log, "resp-a")


def test_chain_of_two_modules(ngx):
    ngx.start(wasm=T + module("hh", "http_headers.wasm"),
              server=pw("hh") + pw("t", "on request_headers: "
                                   "get_header x-wasm-filter"))
    r = ngx.get("/two-modules", headers={"X-Wasm-Filter": "client"})
    assert r.echo_header("x-wasm-filter") == "http_headers"
    assert r.header("x-hello") == "world"
    # the second filter sees the first one's change
    ngx.wait_log("value x-wasm-filter = http_headers")


def test_chain_response_order_on_static(ngx):
    """The last filter runs first on the response; the first sees its
    change."""
    ngx.start(wasm=T, server=pw(
        "t", "on response_headers: get_header x-first") + pw(
        "t", "on response_headers: add_header x-first 1"))
    assert ngx.get("/static/hello.txt").header("x-first") == "1"
    ngx.wait_log("value x-first = 1")


def test_local_answer_stops_the_chain(ngx, upstream):
    ngx.start(wasm=T, server=pw(
        "t", "on request_headers: send_local_response 403 stop; "
        "return pause") + pw("t", "on request_headers: log info second-ran"))
    path = "/stop-" + uuid.uuid4().hex[:8]
    r = ngx.get(path)
    assert (r.status, r.body) == (403, b"stop")
    ngx.settle()
    assert ngx.log_count("second-ran") == 0
    assert not upstream.seen(path)


def test_body_changes_compose(ngx):
    # two modules: ngxtest keeps its body operation in VM globals
    n = module("n1", "ngxtest.wasm") + module("n2", "ngxtest.wasm")
    ngx.start(wasm=n, server=pw("n1", "resp_body=prepend:1") +
              pw("n2", "resp_body=prepend:2"))
    r = ngx.get("/compose?body=x")
    # n2 (last) sees the response first, n1 prepends to its result
    assert r.body == b"12x"


def test_http_level_chain_inherited(ngx):
    ngx.start(wasm=T, http=pw("t", "on request_headers: add_header x-h 1\n"
                              "on response_headers: add_header x-h 1"))
    assert ngx.get("/inh").echo_header("x-h") == "1"
    assert ngx.get("/static/hello.txt").header("x-h") == "1"


def test_server_level_chain_inherited(ngx):
    ngx.start(wasm=T, server=pw("t", "on response_headers: "
                                "add_header x-s 1"))
    assert ngx.get("/inh").header("x-s") == "1"
    assert ngx.get("/static/hello.txt").header("x-s") == "1"


def test_location_chain_replaces_inherited(ngx):
    ngx.start(wasm=T,
              http=pw("t", "on response_headers: add_header x-h 1"),
              static=pw("t", "on response_headers: add_header x-l 1"))
    r = ngx.get("/static/hello.txt")
    assert r.header("x-l") == "1"
    assert r.header("x-h") is None
    r = ngx.get("/")
    assert r.header("x-h") == "1"
    assert r.header("x-l") is None


def test_server_chain_replaces_http_chain(ngx):
    ngx.start(wasm=T,
              http=pw("t", "on response_headers: add_header x-h 1"),
              server=pw("t", "on response_headers: add_header x-s 1") +
              pw("t", "on response_headers: add_header x-s 2"))
    r = ngx.get("/")
    assert r.header_all("x-s") == ["2", "1"]     # reverse on the response
    assert r.header("x-h") is None


def test_location_without_chain_has_no_filter(ngx):
    ngx.start(wasm=T, proxy=pw("t", "on response_headers: "
                               "add_header x-only-proxy 1"))
    assert ngx.get("/").header("x-only-proxy") == "1"
    assert ngx.get("/static/hello.txt").header("x-only-proxy") is None

