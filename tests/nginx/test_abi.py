"""Plugins of every ABI version, and AssemblyScript plugins (a third-party
SDK's real output) with the root_id= option."""
import uuid

import pytest

from conftest import module, pw


@pytest.mark.parametrize("wasm_file", ["testplugin.wasm",
                                       "testplugin_v020.wasm",
                                       "testplugin_v010.wasm"])
def test_testplugin_each_abi(ngx, wasm_file):
    ngx.start(wasm=module("t", wasm_file), server=pw(
        "t", "on request_headers: add_header x-abi yes; get_header :path; "
        "get_config\non response_headers: add_header x-abi-resp yes\n"
        "on request_body: get_body"))
    r = ngx.post("/abi", body=b"abi-body")
    assert r.status == 200
    assert r.echo_header("x-abi") == "yes"
    assert r.header("x-abi-resp") == "yes"
    assert r.json()["body"] == "abi-body"
    ngx.wait_log("value :path = /abi")
    ngx.wait_log("value buffer = abi-body")
    assert ("value config = on request_headers: add_header x-abi yes; "
            "get_header :path; get_config\\x0aon response_headers"
            in ngx.error_log())


def test_v010_local_response(ngx):
    ngx.start(wasm=module("t", "testplugin_v010.wasm"), server=pw(
        "t", "on request_headers: send_local_response 401 old-abi x-o=1; "
        "return pause"))
    r = ngx.get("/old")
    assert (r.status, r.body, r.header("x-o")) == (401, b"old-abi", "1")


def test_v010_headers_callbacks_have_no_eos(ngx):
    ngx.start(wasm=module("t", "testplugin_v010.wasm"),
              server=pw("t", "trace"))
    ngx.get("/no-eos")
    ngx.settle()
    lines = [l for l in ngx.error_log().splitlines()
             if "callback request_headers ctx=" in l]
    assert len(lines) == 1
    assert "eos=0" in lines[0]      # 0.1.0 has no end_of_stream argument


def test_as_headers_with_root_id(ngx):
    ngx.start(wasm=module("ash", "as_headers.wasm"),
              server=pw("ash", "x-as: hello", "root_id=as_headers"))
    r = ngx.get("/as")
    assert r.status == 200
    assert r.header("x-as") == "hello"
    r = ngx.get("/static/hello.txt")
    assert r.header("x-as") == "hello"


def test_as_headers_without_root_id_fails_by_policy(ngx):
    """The AssemblyScript plugin exits (proc_exit 255) when plugin_root_id
    is not its own: a failed start, handled by the policy."""
    ngx.start(wasm=module("ash", "as_headers.wasm"),
              proxy=pw("ash", "x-as: hello"),
              static=pw("ash", "x-as: hello", "on_error=open"))
    assert ngx.get("/as").status == 500
    r = ngx.get("/static/hello.txt")
    assert r.status == 200 and r.header("x-as") is None


def test_as_local_with_root_id(ngx, upstream):
    ngx.start(wasm=module("asl", "as_local.wasm"),
              server=pw("asl", "/deny", "root_id=as_local"))
    r = ngx.get("/deny")
    assert r.status == 403
    assert r.body == b"forbidden by as_local\n"
    assert r.header("x-as-local") == "1"
    path = "/allow-" + uuid.uuid4().hex[:8]
    r = ngx.get(path)
    assert r.status == 200 and r.json()["path"] == path


def test_as_plugins_in_one_chain(ngx):
    ngx.start(wasm=module("asl", "as_local.wasm") +
              module("ash", "as_headers.wasm"),
              server=pw("asl", "/deny", "root_id=as_local") +
              pw("ash", "x-as: chained", "root_id=as_headers"))
    assert ngx.get("/ok").header("x-as") == "chained"
    assert ngx.get("/deny").status == 403


def test_as_headers_isolation_stream(ngx):
    ngx.start(wasm=module("ash", "as_headers.wasm"),
              server="proxy_wasm_isolation stream;" +
              pw("ash", "x-as: s", "root_id=as_headers"))
    for _ in range(3):
        assert ngx.get("/s").header("x-as") == "s"
