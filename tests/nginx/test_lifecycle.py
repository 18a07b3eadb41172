"""Lifecycle: V8 in each worker (never the master), on_vm_start and
on_configure per plugin, ticks, logging levels, metrics, reload and quit."""
import re
import time

import pytest

from conftest import module, pw


def pid_of(line):
    m = re.search(r"\] (\d+)#\d+: ", line)
    return int(m.group(1)) if m else None


def test_vm_start_and_configure_in_worker(ngx):
    ngx.start(wasm=module("hello", "hello.wasm", "vmconf"),
              server=pw("hello", "cfg-1"))
    started = ngx.wait_log("hello: vm started (vm configuration 6 bytes)")
    configured = ngx.wait_log('hello: configured with "cfg-1"')
    workers = ngx.worker_pids()
    assert pid_of(started[0]) in workers
    assert pid_of(configured[0]) in workers
    assert pid_of(started[0]) != ngx.proc.pid
    # no V8 in the master: it stays single-threaded
    with open("/proc/%d/status" % ngx.proc.pid) as f:
        threads = [l for l in f if l.startswith("Threads:")][0]
    assert threads.split()[1] == "1", threads
    ngx.settle(0.3)
    assert ngx.log_count("hello: vm started (vm configuration 6 bytes)") == 1
    assert ngx.log_count('hello: configured with "cfg-1"') == 1
    assert "[wasm]" in started[0]
    assert "[info]" in started[0]
    assert ngx.get("/").status == 200


def test_one_root_context_per_distinct_plugin(ngx):
    """Same (module, config) in two places is one root context; another
    configuration is another root context in the same instance."""
    ngx.start(wasm=module("hello", "hello.wasm"),
              proxy=pw("hello", "same"), static=pw("hello", "same"),
              locations="location /other { %s return 204; }"
              % pw("hello", "different"))
    ngx.wait_log('hello: configured with "different"')
    ngx.wait_log('hello: configured with "same"')
    ngx.settle(0.3)
    assert ngx.log_count('hello: configured with "same"') == 1
    assert ngx.log_count('hello: configured with "different"') == 1
    # one instance: on_vm_start runs per root context (as Envoy), not more
    assert ngx.log_count("hello: vm started (vm configuration 0 bytes)") \
        <= 2


def test_vm_configuration_reaches_testplugin(ngx):
    ngx.start(wasm=module("t", "testplugin.wasm",
                          'on vm_start: get_buffer vm_config'),
              server=pw("t", "on configure: get_config"))
    ngx.wait_log("value buffer = on vm_start: get_buffer vm_config")
    ngx.wait_log("value config = on configure: get_config")


def test_several_workers_each_run_the_plugin(ngx):
    ngx.start(wasm=module("t", "testplugin.wasm"),
              server=pw("t", "on configure: log info configured-here; "
                        "set_tick 50\non tick: log info tick-here"),
              workers=2)
    lines = ngx.wait_log("configured-here", count=2)
    workers = set(ngx.worker_pids())
    assert len(workers) == 2
    assert {pid_of(l) for l in lines} == workers
    deadline = time.time() + 5
    while time.time() < deadline:
        ticks = {pid_of(l) for l in ngx.log_lines("tick-here")}
        if ticks == workers:
            break
        time.sleep(0.05)
    assert ticks == workers
    for _ in range(10):
        assert ngx.get("/").status == 200


def test_ticks(ngx):
    ngx.start(wasm=module("t", "testplugin.wasm"),
              server=pw("t", "on configure: set_tick 50\n"
                        "on tick: log info tick-mark; time"))
    t0 = time.time()
    ngx.wait_log("tick-mark", count=5, timeout=5)
    elapsed = time.time() - t0
    assert elapsed >= 0.15
    assert ngx.log_count("status proxy_get_current_time_nanoseconds = 0") >= 5


@pytest.mark.no_valgrind
def test_hello_tick_every_second(ngx):
    ngx.start(wasm=module("hello", "hello.wasm"), server=pw("hello", "x"))
    # hello's message has a variable part: match it by prefix
    lines = []
    deadline = time.time() + 5
    while time.time() < deadline:
        lines = [l for l in ngx.error_log().splitlines()
                 if "hello: tick at " in l]
        if len(lines) >= 2:
            break
        time.sleep(0.1)
    assert len(lines) >= 2
    ms = [int(re.search(r"tick at (\d+) ms", l).group(1)) for l in lines]
    assert 800 <= ms[1] - ms[0] <= 1500


def test_plugin_log_levels_map_to_nginx(ngx):
    ngx.start(wasm=module("t", "testplugin.wasm"),
              server=pw("t", "on request_headers: log trace l-trace; "
                        "log debug l-debug; log info l-info; "
                        "log warn l-warn; log error l-error; "
                        "log critical l-crit"))
    assert ngx.get("/").status == 200
    for text, level in (("l-info", "info"), ("l-warn", "warn"),
                        ("l-error", "error"), ("l-crit", "crit")):
        line = ngx.wait_log(text)[0]
        assert "[%s]" % level in line, line
    assert ngx.log_count("l-debug") == 0
    assert ngx.log_count("l-trace") == 0


def test_plugin_debug_logs_at_debug_level(ngx):
    ngx.start(wasm=module("t", "testplugin.wasm"),
              server=pw("t", "on request_headers: log trace l-trace; "
                        "log debug l-debug"), level="debug")
    assert ngx.get("/").status == 200
    assert "[debug]" in ngx.wait_log("l-debug")[0]
    assert "[debug]" in ngx.wait_log("l-trace")[0]


def test_request_logs_carry_request_context(ngx):
    ngx.start(wasm=module("t", "testplugin.wasm"),
              server=pw("t", "on request_headers: log warn in-request"))
    ngx.get("/ctx-path-123")
    line = ngx.wait_log("in-request")[0]
    assert "/ctx-path-123" in line      # nginx's request: "GET ..." suffix


def log_level_seen(ngx, since=0):
    lines = [l for l in ngx.error_log()[since:].splitlines()
             if "ngxtest: log level " in l]
    return [int(re.search(r"ngxtest: log level (\d+)", l).group(1))
            for l in lines]


def test_get_log_level_follows_error_log(ngx):
    # proxy levels: trace 0 debug 1 info 2 warn 3 error 4 critical 5
    for level, want in (("info", 2), ("debug", 1), ("notice", 3),
                        ("warn", 3), ("error", 4), ("crit", 5)):
        ngx.start(wasm=module("n", "ngxtest.wasm"),
                  server=pw("n", "loglevel"), level=level)
        deadline = time.time() + 5
        while not log_level_seen(ngx) and time.time() < deadline:
            time.sleep(0.05)
        assert log_level_seen(ngx)[:1] == [want], level
        assert ngx.quit() == 0
        # a fresh log for the next level
        open(ngx.prefix + "/logs/error.log", "w").close()


def test_get_log_level_of_the_request(ngx):
    ngx.start(wasm=module("n", "ngxtest.wasm"), server=pw("n", "loglevel"),
              static="error_log logs/error.log error;")
    ngx.wait_log("ngxtest: log level 2")
    mark = ngx.mark()
    assert ngx.get("/static/hello.txt").status == 200
    ngx.settle()
    assert log_level_seen(ngx, mark) == [4]
    mark = ngx.mark()
    assert ngx.get("/").status == 200
    ngx.settle()
    assert log_level_seen(ngx, mark) == [2]


def test_metrics_per_worker(ngx):
    ngx.start(wasm=module("t", "testplugin.wasm"),
              server=pw("t", "on configure: define_metric counter reqs\n"
                        "on request_headers: increment_metric reqs 1; "
                        "get_metric reqs"))
    for _ in range(3):
        assert ngx.get("/").status == 200
    ngx.wait_log("value metric_value = 3")
    assert ngx.log_count("value metric_value = 1") == 1
    assert ngx.log_count("value metric_value = 2") == 1
    assert ngx.log_count("status proxy_define_metric = 0") == 1


def test_reload_with_changed_configuration(ngx):
    wasm = module("ch", "config_header.wasm")
    ngx.start(wasm=wasm, server=pw("ch", "x-team: a"))
    assert ngx.get("/").header("x-team") == "a"
    assert ngx.get("/static/hello.txt").header("x-team") == "a"
    assert ngx.reload(wasm=wasm, server=pw("ch", "x-team: b"))
    r = ngx.get("/")
    assert r.header_all("x-team") == ["b"]
    ngx.wait_log('config_header: adding "x-team: b"')


def test_reload_with_changed_plugin(ngx, tmp_path):
    ngx.start(wasm=module("p", "config_header.wasm"),
              server=pw("p", "x-team: a"))
    assert ngx.get("/").header("x-team") == "a"
    assert ngx.reload(wasm=module("p", "http_headers.wasm"),
                      server=pw("p"))
    r = ngx.get("/")
    assert r.header("x-team") is None
    assert r.header("x-hello") == "world"


def test_reload_with_changed_vm_configuration(ngx):
    ngx.start(wasm=module("hello", "hello.wasm", "one"),
              server=pw("hello", "c"))
    ngx.wait_log("hello: vm started (vm configuration 3 bytes)")
    assert ngx.reload(wasm=module("hello", "hello.wasm", "three"),
                      server=pw("hello", "c"))
    ngx.wait_log("hello: vm started (vm configuration 5 bytes)")


def test_reload_refuses_bad_plugin_and_keeps_serving(ngx):
    ngx.allow_alerts = True         # the refused reload logs [emerg]
    wasm = module("ch", "config_header.wasm")
    ngx.start(wasm=wasm, server=pw("ch", "x-team: a"))
    assert ngx.get("/").header("x-team") == "a"
    assert not ngx.reload(wasm=module("ch", "no_marker.wasm"),
                          server=pw("ch", "x-team: b"))
    time.sleep(0.3)
    assert ngx.get("/").header("x-team") == "a"
    assert "exited on signal" not in ngx.error_log()


def test_reload_many_times(ngx):
    wasm = module("t", "testplugin.wasm")
    ngx.start(wasm=wasm, server=pw("t", "on request_headers: "
                                   "add_header x-gen 0"))
    for i in range(1, 6):
        assert ngx.reload(wasm=wasm, server=pw(
            "t", "on request_headers: add_header x-gen %d" % i))
        assert ngx.get("/").echo_header("x-gen") == str(i)


def test_quit_is_clean(ngx):
    ngx.start(wasm=module("t", "testplugin.wasm"),
              server=pw("t", "on configure: set_tick 20\n"
                        "on request_headers: add_header x-q 1"),
              workers=2)
    for _ in range(5):
        assert ngx.get("/").status == 200
    workers = ngx.worker_pids()
    assert ngx.quit() == 0
    log = ngx.error_log()
    for p in workers:
        assert re.search(r"process %d exited with code 0" % p, log), log
    assert "exited on signal" not in log


def test_module_without_proxy_wasm_is_harmless(ngx):
    ngx.start(wasm=module("t", "testplugin.wasm"))
    assert ngx.get("/").status == 200
    assert ngx.get("/static/hello.txt").status == 200


def _in_thread(fn):
    import threading
    out = {}

    def run():
        try:
            out["r"] = fn()
        except Exception as e:          # reported by the caller
            out["e"] = e

    t = threading.Thread(target=run)
    t.start()
    return t, out


def test_reload_while_a_request_is_paused(ngx):
    """The old worker finishes its in-flight (paused) request after the
    reload; new requests see the new configuration."""
    wasm = module("n", "ngxtest.wasm")
    ngx.start(wasm=wasm, server=pw("n", "pause=request_headers tick=20 "
                                   "hold=500"))
    t, out = _in_thread(lambda: ngx.get("/in-flight", timeout=15))
    ngx.wait_log("ngxtest: paused request_headers", exact=False)
    ngx.proc.send_signal(__import__("signal").SIGHUP)
    t.join(15)
    assert "e" not in out, out
    r = out["r"]
    assert r.status == 200
    assert r.echo_header("x-resumed") == "request_headers"


def test_quit_while_a_request_is_paused(ngx):
    ngx.start(wasm=module("n", "ngxtest.wasm"),
              server=pw("n", "pause=request_headers tick=20 hold=500"))
    t, out = _in_thread(lambda: ngx.get("/in-flight-quit", timeout=15))
    ngx.wait_log("ngxtest: paused request_headers", exact=False)
    assert ngx.quit() == 0
    t.join(15)
    assert "e" not in out, out
    assert out["r"].status == 200


def test_reload_changes_isolation(ngx):
    wasm = module("n", "ngxtest.wasm")
    ngx.start(wasm=wasm, server=pw("n", "count"))
    assert [ngx.get("/").header("x-count") for _ in range(2)] == ["1", "2"]
    assert ngx.reload(wasm=wasm, server="proxy_wasm_isolation stream;" +
                      pw("n", "count"))
    assert [ngx.get("/").header("x-count") for _ in range(2)] == ["1", "1"]
