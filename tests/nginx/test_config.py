"""Configuration validation: `nginx -t` reads and checks every module in the
master (no V8) and fails with the module's name and the cause."""
import os
import re
import subprocess

import pytest

from conftest import module, plugin, pw, q


def fails(ngx, wasm, *needles, **kw):
    rc, out = ngx.test_conf(wasm=wasm, **kw)
    assert rc != 0, "nginx -t accepted it:\n" + out
    assert "test failed" in out, out
    for n in needles:
        if isinstance(n, re.Pattern):
            assert n.search(out), "%s not in:\n%s" % (n.pattern, out)
        else:
            assert n in out, "%r not in:\n%s" % (n, out)
    return out


def test_valid_modules_pass(ngx):
    wasm = "\n".join([module("ok", "ok.wasm"),
                      module("t", "testplugin.wasm", "on vm_start: trace"),
                      module("t010", "testplugin_v010.wasm"),
                      module("t020", "testplugin_v020.wasm"),
                      module("ash", "as_headers.wasm"),
                      module("hello", "hello.wasm")])
    rc, out = ngx.test_conf(wasm=wasm, server=pw("ok") + pw("t", "trace"))
    assert rc == 0, out
    assert "test is successful" in out


def test_config_test_runs_no_plugin_code(ngx):
    """The master only reads the bytes: on_vm_start/on_configure do not run
    under nginx -t."""
    rc, out = ngx.test_conf(wasm=module("hello", "hello.wasm", "vm"),
                            server=pw("hello", "cfg"))
    assert rc == 0, out
    assert "hello:" not in out
    assert "hello:" not in ngx.error_log("test.log")


def test_missing_file(ngx):
    fails(ngx, "module gone /nonexistent/dir/gone.wasm;", "gone",
          "/nonexistent/dir/gone.wasm")


def test_directory_is_not_a_module(ngx):
    fails(ngx, "module dir %s;" % ngx.prefix, "dir")


def test_relative_path_is_under_prefix(ngx):
    with open(plugin("ok.wasm"), "rb") as f:
        data = f.read()
    with open(os.path.join(ngx.prefix, "conf", "rel.wasm"), "wb") as f:
        f.write(data)
    rc, out = ngx.test_conf(wasm="module rel conf/rel.wasm;",
                            server=pw("rel"))
    assert rc == 0, out


def test_not_wasm(ngx):
    path = os.path.join(ngx.prefix, "conf", "text.wasm")
    with open(path, "w") as f:
        f.write("this is not a wasm module\n")
    fails(ngx, "module text %s;" % path, "text")


def test_truncated_wasm(ngx):
    with open(plugin("testplugin.wasm"), "rb") as f:
        data = f.read()
    path = os.path.join(ngx.prefix, "conf", "cut.wasm")
    with open(path, "wb") as f:
        f.write(data[:len(data) // 2])
    fails(ngx, "module cut %s;" % path, "cut")


def test_unknown_import(ngx):
    fails(ngx, module("mi", "missing_import.wasm"), "mi",
          "proxy_no_such_call")


def test_import_from_unknown_module(ngx):
    fails(ngx, module("um", "unknown_module_import.wasm"), "um",
          "frobnicate")


def test_import_outside_declared_abi(ngx):
    fails(ngx, module("old", "import_outside_abi.wasm"), "old",
          "proxy_continue_stream")


def test_import_with_wrong_signature(ngx):
    fails(ngx, module("sig", "bad_import_sig.wasm"), "sig", "proxy_log")


def test_bad_export_signature(ngx):
    fails(ngx, module("bx", "bad_export_sig.wasm"), "bx",
          "proxy_on_request_headers")


def test_no_abi_marker(ngx):
    fails(ngx, module("nm", "no_marker.wasm"), "nm",
          re.compile(r"(?i)abi|version"))


def test_no_memory(ngx):
    fails(ngx, module("nomem", "no_memory.wasm"), "nomem",
          re.compile(r"(?i)memory"))


def test_no_allocator(ngx):
    fails(ngx, module("noalloc", "no_alloc.wasm"), "noalloc",
          re.compile(r"(?i)alloc"))


def test_unknown_module_in_proxy_wasm(ngx):
    fails(ngx, module("ok", "ok.wasm"), "nosuch", server=pw("nosuch"))


def test_proxy_wasm_without_wasm_block(ngx):
    fails(ngx, None, "ok", server=pw("ok"))


def test_duplicate_module_name(ngx):
    fails(ngx, module("ok", "ok.wasm") + module("ok", "testplugin.wasm"),
          "ok")


def test_bad_module_name(ngx):
    fails(ngx, "module %s %s;" % (q("a b"), plugin("ok.wasm")), "a b")


@pytest.mark.parametrize("opts,needle", [
    (("on_error=maybe",), "maybe"),
    (("error_status=200",), "200"),
    (("error_status=600",), "600"),
    (("error_status=abc",), "abc"),
    (("bogus=1",), "bogus"),
])
def test_bad_proxy_wasm_options(ngx, opts, needle):
    fails(ngx, module("ok", "ok.wasm"), needle,
          server=pw("ok", "", *opts))


def test_good_proxy_wasm_options(ngx):
    rc, out = ngx.test_conf(
        wasm=module("ok", "ok.wasm"),
        server=pw("ok", "", "root_id=r1", "on_error=open",
                  "error_status=503") + pw("ok", "c", "on_error=closed"))
    assert rc == 0, out


def test_bad_isolation(ngx):
    fails(ngx, module("ok", "ok.wasm"), "sometimes",
          server="proxy_wasm_isolation sometimes;" + pw("ok"))


def test_bad_max_call_time(ngx):
    fails(ngx, module("ok", "ok.wasm") + "max_call_time soon;", "soon")


def test_good_max_call_time_and_isolation(ngx):
    rc, out = ngx.test_conf(
        wasm=module("ok", "ok.wasm") + "max_call_time 150ms;",
        http="proxy_wasm_isolation stream;",
        proxy="proxy_wasm_isolation none;" + pw("ok"))
    assert rc == 0, out


def test_directives_outside_their_context(ngx):
    fails(ngx, module("ok", "ok.wasm"), "module",
          http="module x %s;" % plugin("ok.wasm"))
    fails(ngx, module("ok", "ok.wasm"), "proxy_wasm",
          main=pw("ok"))


def test_bad_plugin_fails_start(ngx):
    """A running nginx cannot be started with a bad module either."""
    ngx.allow_alerts = True
    rc, out = ngx.test_conf(wasm=module("nm", "no_marker.wasm"))
    assert rc != 0
    ngx.write_conf(ngx.render(wasm=module("nm", "no_marker.wasm")))
    p = subprocess.run(ngx._cmd(), stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=30)
    assert p.returncode != 0
    assert "nm" in p.stdout.decode("latin-1") + ngx.error_log()
