"""The harness itself, with the module loaded but no wasm block: nginx
starts, proxies to the echo upstream, serves static files, reloads and
quits cleanly. These pass with the stub module too."""
import json


def test_proxy_echo(ngx):
    ngx.start(wasm=None)
    r = ngx.request("POST", "/echo?x=1", headers={"X-A": "b"}, body=b"abc")
    assert r.status == 200
    e = r.json()
    assert e["method"] == "POST"
    assert e["path"] == "/echo?x=1"
    assert e["body"] == "abc"
    assert r.echo_header("x-a") == "b"


def test_upstream_controls(ngx):
    ngx.start(wasm=None)
    r = ngx.get("/x?status=404&body=nope&header=X-Up:1")
    assert (r.status, r.body, r.header("x-up")) == (404, b"nope", "1")
    r = ngx.get("/x?size=100000&chunked=1")
    assert r.status == 200 and len(r.body) == 100000


def test_static(ngx):
    ngx.start(wasm=None)
    r = ngx.get("/static/hello.txt")
    assert r.status == 200
    assert r.body == b"hello static secret world\n"


def test_reload_and_quit(ngx):
    ngx.start(wasm=None, workers=2)
    old = ngx.worker_pids()
    assert len(old) == 2
    assert ngx.reload(wasm=None, workers=2,
                      proxy="add_header X-Reloaded yes;")
    assert set(ngx.worker_pids()).isdisjoint(old)
    assert ngx.get("/").header("x-reloaded") == "yes"
    assert ngx.quit() == 0
    assert "exit" in ngx.error_log()


def test_nginx_t_ok(ngx):
    rc, out = ngx.test_conf(wasm=None)
    assert rc == 0, out
    assert "test is successful" in out
