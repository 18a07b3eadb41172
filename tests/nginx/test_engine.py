"""The engine directive: V8 (the default) or w2c, whose plugins are
compiled ahead of time by the master into engine_cache. (The whole suite
also runs on w2c: PW_NGINX_ENGINE=w2c, see module.mk.)"""
import glob
import os
import re

from conftest import module, pw

T = module("t", "testplugin.wasm")
ADD = pw("t", "on response_headers: add_header x-engine yes")


def w2c(cache, extra=""):
    return "engine w2c;\nengine_cache %s;\n%s%s" % (cache, extra, T)


def test_unknown_engine_is_refused(ngx):
    rc, out = ngx.test_conf(wasm="engine nope;\n" + T)
    assert rc != 0
    assert 'unknown engine "nope" (v8 or w2c)' in out


def test_engine_twice_is_refused(ngx):
    rc, out = ngx.test_conf(wasm="engine v8;\nengine w2c;\n" + T)
    assert rc != 0
    assert "is duplicate" in out


def test_v8_by_name_serves(ngx):
    ngx.start(wasm="engine v8;\n" + T, server=ADD)
    r = ngx.get("/a")
    assert r.status == 200 and r.header("x-engine") == "yes"


def test_w2c_compiles_once_in_the_master(ngx):
    """nginx -t builds the object into the cache; the server then loads it
    without building again, in a fresh worker and after a reload."""
    cache = os.path.join(ngx.prefix, "w2c")
    rc, out = ngx.test_conf(wasm=w2c(cache), server=ADD)
    assert rc == 0, out
    objs = glob.glob(os.path.join(cache, "pw-w2c-*.so"))
    assert len(objs) == 1, objs
    built = os.stat(objs[0]).st_mtime_ns

    ngx.start(wasm=w2c(cache), server=ADD)
    r = ngx.get("/a")
    assert r.status == 200 and r.header("x-engine") == "yes"
    ngx.reload(wasm=w2c(cache), server=ADD)
    assert ngx.get("/b").header("x-engine") == "yes"

    assert glob.glob(os.path.join(cache, "pw-w2c-*.so")) == objs
    assert os.stat(objs[0]).st_mtime_ns == built
    # no build directory left behind
    assert glob.glob(os.path.join(cache, ".pw-w2c-*")) == []


def test_w2c_master_flags_reach_the_workers(ngx, monkeypatch):
    """$PW_W2C_CFLAGS in the master's environment is what the object is
    built with; workers, which lose that environment, load that object
    instead of building another with the default flags."""
    monkeypatch.setenv("PW_W2C_CFLAGS", "-O1")
    cache = os.path.join(ngx.prefix, "w2c")
    ngx.start(wasm=w2c(cache), server=ADD)
    assert ngx.get("/a").header("x-engine") == "yes"
    ngx.reload(wasm=w2c(cache), server=ADD)
    assert ngx.get("/b").header("x-engine") == "yes"
    assert len(glob.glob(os.path.join(cache, "pw-w2c-*.so"))) == 1
    assert "cannot compile" not in ngx.error_log()


def test_w2c_changed_plugin_is_built_anew(ngx):
    """A different module (here: another file) gets its own object."""
    cache = os.path.join(ngx.prefix, "w2c")
    ngx.start(wasm=w2c(cache), server=ADD)
    assert ngx.get("/a").header("x-engine") == "yes"
    ngx.reload(wasm=w2c(cache, module("h", "hello.wasm")), server=ADD)
    assert ngx.get("/b").header("x-engine") == "yes"
    assert len(glob.glob(os.path.join(cache, "pw-w2c-*.so"))) == 2


def w2c_failing(ngx, failing):
    cache = os.path.join(ngx.prefix, "w2c")
    ngx.start(wasm=w2c(cache, "max_call_time 100ms;\n"),
              locations="location /fail { %s return 200 ok; }\n"
              "location /fine { %s return 200 ok; }"
              % (pw("t", "on request_headers: " + failing), ADD))


def test_w2c_trap_applies_the_policy(ngx):
    """A trap fails the request with 500 and says which; the next request
    is served by a new instance, as on V8."""
    w2c_failing(ngx, "unreachable")
    assert ngx.get("/fail").status == 500
    ngx.wait_log("trap in proxy_on_request_headers: RuntimeError: "
                 "unreachable", exact=False)
    r = ngx.get("/fine")
    assert r.status == 200 and r.header("x-engine") == "yes"


def test_w2c_max_call_time_stops_a_loop(ngx):
    w2c_failing(ngx, "loop")
    assert ngx.get("/fail", timeout=20).status == 500
    ngx.wait_log("interrupted (took longer than the call time limit)",
                 exact=False)
    r = ngx.get("/fine", timeout=20)
    assert r.status == 200 and r.header("x-engine") == "yes"


def test_w2c_cache_that_cannot_be_created_fails_the_test(ngx):
    blocker = os.path.join(ngx.prefix, "file")
    with open(blocker, "w") as f:
        f.write("not a directory")
    rc, out = ngx.test_conf(wasm=w2c(os.path.join(blocker, "cache")))
    assert rc != 0
    assert "cannot create engine_cache" in out


def worker_threads(ngx):
    """Threads of each worker, from /proc."""
    counts = []
    for pid in ngx.worker_pids():
        with open("/proc/%d/status" % pid) as f:
            counts.append(int(re.search(r"^Threads:\s+(\d+)$", f.read(),
                                        re.M).group(1)))
    return counts


def test_v8_workers_stay_single_threaded(ngx):
    """By default V8 starts no thread in a worker (its background work,
    tier-up compilation, runs between calls): a worker is one thread, as
    nginx's are, and serves."""
    ngx.start(wasm="engine v8;\n" + T, server=ADD)
    for i in range(3):
        assert ngx.get("/a%d" % i).header("x-engine") == "yes"
    assert worker_threads(ngx) == [1] * ngx.workers


def test_v8_threads_gives_v8_a_pool(ngx):
    """v8_threads N: V8's own helper threads, N per worker; a reload with
    another number takes effect in the new workers."""
    ngx.start(wasm="engine v8;\nv8_threads 2;\n" + T, server=ADD)
    assert ngx.get("/a").header("x-engine") == "yes"
    assert worker_threads(ngx) == [3] * ngx.workers
    ngx.reload(wasm="engine v8;\nv8_threads 1;\n" + T, server=ADD)
    assert ngx.get("/b").header("x-engine") == "yes"
    assert worker_threads(ngx) == [2] * ngx.workers


def test_v8_threads_is_checked(ngx):
    for bad in ("-1", "17", "x"):
        rc, out = ngx.test_conf(wasm="v8_threads %s;\n%s" % (bad, T))
        assert rc != 0
        assert 'invalid v8_threads "%s" (0 to 16)' % bad in out
    rc, out = ngx.test_conf(wasm="v8_threads 1;\nv8_threads 2;\n" + T)
    assert rc != 0 and "is duplicate" in out
