"""proxy_wasm_isolation: none keeps plugin memory across the requests of a
worker; stream gives each request fresh instances."""
from conftest import module, pw

N = module("n", "ngxtest.wasm")


def counts(ngx, path, n=3):
    return [ngx.get(path).header("x-count") for _ in range(n)]


def test_isolation_none_keeps_state(ngx):
    ngx.start(wasm=N, server=pw("n", "count"))
    assert counts(ngx, "/") == ["1", "2", "3"]


def test_isolation_none_is_the_default_and_explicit(ngx):
    ngx.start(wasm=N, server="proxy_wasm_isolation none;" + pw("n", "count"))
    assert counts(ngx, "/static/hello.txt") == ["1", "2", "3"]


def test_isolation_stream_fresh_state(ngx):
    ngx.start(wasm=N, server="proxy_wasm_isolation stream;" +
              pw("n", "count"))
    assert counts(ngx, "/") == ["1", "1", "1"]
    r = ngx.get("/")
    assert r.header("x-configured") == "1"
    # each request started its own instance: configure ran per request
    ngx.wait_log("ngxtest: configured (1)", count=4)


def test_isolation_per_location(ngx):
    ngx.start(wasm=N, server=pw("n", "count"),
              static="proxy_wasm_isolation stream;")
    assert counts(ngx, "/static/hello.txt") == ["1", "1", "1"]
    assert counts(ngx, "/") == ["1", "2", "3"]


def test_isolation_inherited_from_http(ngx):
    ngx.start(wasm=N, http="proxy_wasm_isolation stream;",
              server=pw("n", "count"))
    assert counts(ngx, "/") == ["1", "1", "1"]


def test_isolation_stream_with_chain(ngx):
    ngx.start(wasm=N + module("t", "testplugin.wasm"),
              server="proxy_wasm_isolation stream;" + pw("n", "count") +
              pw("t", "on request_headers: add_header x-t 1"))
    for _ in range(3):
        r = ngx.get("/")
        assert r.header("x-count") == "1"
        assert r.echo_header("x-t") == "1"


def test_isolation_stream_ticks_do_not_leak(ngx):
    """Stream instances are destroyed with their request: the worker stays
    healthy and quits cleanly."""
    ngx.start(wasm=N, server="proxy_wasm_isolation stream;" +
              pw("n", "count tick=10"))
    for _ in range(20):
        assert ngx.get("/").header("x-count") == "1"
    assert ngx.quit() == 0
