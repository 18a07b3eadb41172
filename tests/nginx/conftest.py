"""Harness for the nginx end-to-end tests.

Every test starts its own nginx (master + workers, daemon off, as a child
process) in a temporary prefix, with the module loaded from
$PW_NGINX_MODULE (default build/rel/nginx/ngx_http_pw_module.so) and a
configuration rendered from TEMPLATE below. One upstream (upstream.py) is
shared by the whole session.

The `ngx` fixture is an Nginx object; a test calls ngx.start(...) with the
parts of the configuration it needs:

    wasm=     body of the wasm {} block (None: no block at all)
    main=     main-context directives
    http=     http-level directives
    server=   server-level directives (inherited by both locations)
    proxy=    directives of `location /` (proxied to the upstream)
    static=   directives of `location /static/` (files under html/static)
    locations= extra location blocks
    workers=  worker_processes (default 1)
    level=    error_log level (default info)

At teardown nginx is stopped (SIGQUIT, then SIGKILL) and the test fails if
the error log has [alert] or [emerg] lines or a worker exited on a signal,
unless the test set ngx.allow_alerts = True.

PW_NGINX_VALGRIND=1 runs nginx under valgrind's memcheck (the rel module
cannot use ASan: Debian's nginx is not instrumented). Every process writes
logs/vg.<pid>.log; timeouts are stretched by SLOW; tests marked
@pytest.mark.no_valgrind (timing-sensitive ones) are skipped. At teardown,
after a graceful quit so that exit_process and the leak check run, the test
fails on any memory error in any process, and on a definitely lost block
allocated from our code (ngx_http_pw_*, ngx_pw_*, pw_*). Known noise of
nginx and V8 is suppressed in valgrind.supp, one commented entry each.
"""
import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from upstream import Upstream, big_body, free_port  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
MODULE = os.environ.get("PW_NGINX_MODULE", os.path.join(
    ROOT, "build/rel/nginx/ngx_http_pw_module.so"))
WASM_DIR = os.environ.get("PW_WASM_DIR", os.path.join(ROOT, "build/wasm"))
NGX_WASM_DIR = os.environ.get("PW_NGINX_WASM_DIR",
                              os.path.join(WASM_DIR, "nginx"))
NGINX = os.environ.get("PW_NGINX", "/usr/sbin/nginx")
# PW_NGINX_ENGINE=w2c runs every wasm{} block on that engine, with one
# engine_cache for the whole session (PW_NGINX_ENGINE_CACHE).
ENGINE = os.environ.get("PW_NGINX_ENGINE", "")
ENGINE_CACHE = os.environ.get("PW_NGINX_ENGINE_CACHE", os.path.join(
    ROOT, "build/w2c-cache"))

VALGRIND = os.environ.get("PW_NGINX_VALGRIND") == "1"
VALGRIND_SUPP = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                             "valgrind.supp")
# Factor for harness timeouts: V8 under valgrind starts in ~20 s and a
# request takes ~0.5 s.
SLOW = 20 if VALGRIND else 1

# Valgrind error kinds that fail a test wherever they happen.
VG_ERROR = re.compile(r"Invalid (read|write) of size|uninitialised|"
                      r"Conditional jump|Mismatched free|Invalid free|"
                      r"Source and destination overlap")
VG_LEAK = re.compile(r"are definitely lost in loss record")
# A stack frame in our code (the module, the library, the V8 glue): by
# function name, by source file (--fullpath-after= leaves paths relative to
# the repository), or by object when there is no debug information.
VG_OURS = re.compile(r"^==\d+==\s+(?:at|by) 0x[0-9A-Fa-f]+: "
                     r"[^\n]*?(?<![A-Za-z0-9_])(?:ngx_http_pw_|ngx_pw_|pw_)"
                     r"|\((?:src|nginx)/[^:()\n]+:\d+\)$"
                     r"|\(in [^()\n]*ngx_http_pw_module\.so\)$", re.M)

TEMPLATE = """\
{user}
load_module {module};
worker_processes {workers};
master_process on;
daemon off;
pid logs/nginx.pid;
lock_file logs/nginx.lock;
error_log logs/{error_log} {level};
{main}
{wasm_block}
events {{
    worker_connections 256;
}}
http {{
    access_log off;
    default_type text/plain;
    client_body_temp_path temp/client_body;
    proxy_temp_path temp/proxy;
    fastcgi_temp_path temp/fastcgi;
    uwsgi_temp_path temp/uwsgi;
    scgi_temp_path temp/scgi;
    upstream backend {{
        server 127.0.0.1:{upstream_port};
    }}
{http}
    server {{
        listen 127.0.0.1:{port};
        server_name localhost;
{server}
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
{proxy}
        }}
        location /static/ {{
            root html;
{static}
        }}
{locations}
    }}
}}
"""

# Content of html/static/ in every prefix.
STATIC_FILES = {
    "hello.txt": b"hello static secret world\n",
    "big.txt": big_body(300000),
}

BAD_LOG = re.compile(r"\[(alert|emerg)\]|exited on signal")


def q(s):
    """`s` as a single-quoted nginx configuration string."""
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"


def plugin(name):
    """Absolute path of a built plugin (build/wasm or build/wasm/nginx)."""
    for d in (WASM_DIR, NGX_WASM_DIR):
        p = os.path.join(d, name)
        if os.path.exists(p):
            return p
    pytest.fail("plugin %s is not built (looked in %s and %s); run make"
                % (name, WASM_DIR, NGX_WASM_DIR))


def module(name, file, vm_config=None):
    """A `module` line of the wasm block for plugin file `file`."""
    return "module %s %s%s;" % (name, plugin(file),
                                "" if vm_config is None
                                else " " + q(vm_config))


def pw(name, config=None, *options):
    """A `proxy_wasm` directive; config None: no configuration argument."""
    args = [name]
    if config is not None or options:
        args.append(q(config or ""))
    args += options
    return "proxy_wasm %s;" % " ".join(args)


class Response:
    def __init__(self, status, reason, headers, body):
        self.status = status
        self.reason = reason
        self.headers = headers          # [(name, value)], as received
        self.body = body

    def header(self, name):
        """First value of header `name` (case-insensitive), else None."""
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def header_all(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    @property
    def text(self):
        return self.body.decode("latin-1")

    def json(self):
        """The upstream's echo; fails the test if this is not one."""
        import json
        try:
            return json.loads(self.body)
        except ValueError:
            pytest.fail("not an upstream echo: %d %r" % (self.status,
                                                         self.body[:300]))

    def echo_header(self, name):
        """A request header as the upstream echo saw it (first value)."""
        for k, v in self.json()["headers"]:
            if k.lower() == name.lower():
                return v
        return None

    def echo_header_all(self, name):
        return [v for k, v in self.json()["headers"]
                if k.lower() == name.lower()]

    def __repr__(self):
        return "<Response %d %r %r>" % (self.status, self.headers,
                                         self.body[:200])


class Nginx:
    def __init__(self, prefix, upstream):
        self.prefix = str(prefix)
        self.upstream = upstream
        self.port = free_port()
        self.proc = None
        self.allow_alerts = False
        self.workers = 1
        self.level = "info"
        self.conf_text = None
        for d in ("conf", "logs", "temp", "html/static"):
            os.makedirs(os.path.join(self.prefix, d), exist_ok=True)
        for name, data in STATIC_FILES.items():
            self.write_static(name, data)

    # ---- configuration ---------------------------------------------------

    def write_static(self, name, data):
        if isinstance(data, str):
            data = data.encode()
        with open(os.path.join(self.prefix, "html/static", name), "wb") as f:
            f.write(data)

    def render(self, wasm="", main="", http="", server="", proxy="",
               static="", locations="", workers=1, level="info",
               error_log="error.log"):
        return TEMPLATE.format(
            user="user root root;" if os.geteuid() == 0 else "",
            module=MODULE, workers=workers, level=level,
            error_log=error_log, main=main,
            wasm_block="" if wasm is None else "wasm {\n%s\n%s}" % (
                wasm, "engine %s;\nengine_cache %s;\n" % (ENGINE, ENGINE_CACHE)
                if ENGINE and "engine " not in wasm else ""),
            upstream_port=self.upstream.port, port=self.port,
            http=http, server=server, proxy=proxy, static=static,
            locations=locations)

    def write_conf(self, text, name="nginx.conf"):
        with open(os.path.join(self.prefix, "conf", name), "w") as f:
            f.write(text)

    def _cmd(self, *extra, conf="nginx.conf", elog="logs/error.log"):
        return [NGINX, "-p", self.prefix + "/", "-c", "conf/" + conf,
                "-e", elog] + list(extra)

    def _valgrind(self):
        """valgrind's command line; it follows the fork into the workers."""
        return ["valgrind", "--tool=memcheck", "--smc-check=all-non-file",
                "--leak-check=full", "--show-leak-kinds=definite",
                "--errors-for-leak-kinds=definite", "--num-callers=30",
                "--fullpath-after=" + ROOT + "/",
                "--suppressions=" + VALGRIND_SUPP,
                "--log-file=" + os.path.join(self.prefix, "logs/vg.%p.log")]

    def test_conf(self, **kw):
        """`nginx -t` on the rendered configuration: (rc, output)."""
        kw.setdefault("error_log", "test.log")
        self.write_conf(self.render(**kw), "test.conf")
        p = subprocess.run(self._cmd("-t", conf="test.conf",
                                     elog="logs/test.log"),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=60)
        return p.returncode, p.stdout.decode("latin-1")

    # ---- process ---------------------------------------------------------

    def start(self, **kw):
        assert self.proc is None, "nginx already started"
        self.workers = kw.get("workers", 1)
        self.level = kw.get("level", "info")
        self.conf_text = self.render(**kw)
        self.write_conf(self.conf_text)
        self._stderr = open(os.path.join(self.prefix, "logs/stderr.log"),
                            "ab")
        self.proc = subprocess.Popen((self._valgrind() if VALGRIND else [])
                                     + self._cmd(), stdin=subprocess.DEVNULL,
                                     stdout=self._stderr,
                                     stderr=self._stderr)
        deadline = time.time() + 15 * SLOW
        while True:
            if self.proc.poll() is not None:
                rc = self.proc.returncode
                self.proc = None
                self.allow_alerts = True    # reported here already
                pytest.fail("nginx exited with %d at start:\n%s\n%s"
                            % (rc, self.stderr_text()[-3000:],
                               self.error_log()[-3000:]))
            try:
                socket.create_connection(("127.0.0.1", self.port),
                                         timeout=1).close()
                break
            except OSError:
                if time.time() > deadline:
                    pytest.fail("nginx does not listen on %d:\n%s"
                                % (self.port, self.error_log()[-3000:]))
                time.sleep(0.02)
        self._wait_workers(0, self.workers)
        return self

    def _notice_logged(self):
        return self.level in ("debug", "info", "notice")

    def _wait_workers(self, since, n, timeout=15):
        """Wait for n "start worker process" lines after offset `since`."""
        if not self._notice_logged():
            time.sleep(0.3)
            return []
        deadline = time.time() + timeout * SLOW
        while True:
            pids = re.findall(r"start worker process (\d+)",
                              self.error_log()[since:])
            if len(pids) >= n:
                return [int(p) for p in pids]
            if time.time() > deadline:
                pytest.fail("workers did not start:\n%s"
                            % self.error_log()[-3000:])
            time.sleep(0.02)

    def worker_pids(self):
        """Pids of the workers started last (from the error log)."""
        pids = re.findall(r"start worker process (\d+)", self.error_log())
        return [int(p) for p in pids[-self.workers:]]

    def reload(self, timeout=15, **kw):
        """Reload with a new configuration (same keywords as start()).

        Returns True when new workers run and the old ones exited, False
        when the master refused the new configuration ([emerg] logged; the
        old workers keep running)."""
        old = self.worker_pids()
        self.workers = kw.get("workers", 1)
        self.level = kw.get("level", "info")
        mark = len(self.error_log())
        self.conf_text = self.render(**kw)
        self.write_conf(self.conf_text)
        self.proc.send_signal(signal.SIGHUP)
        deadline = time.time() + timeout * SLOW
        while True:
            log = self.error_log()[mark:]
            if "[emerg]" in log:
                return False
            if len(re.findall(r"start worker process (\d+)", log)) \
                    >= self.workers:
                if all(re.search(r"process %d exited" % p, log)
                       for p in old):
                    return True
            if time.time() > deadline:
                pytest.fail("reload did not complete:\n%s" % log[-3000:])
            if self.proc.poll() is not None:
                pytest.fail("master exited during reload:\n%s"
                            % log[-3000:])
            time.sleep(0.02)

    def quit(self, timeout=15):
        """Graceful stop (SIGQUIT); returns the master's exit code."""
        if self.proc is None:
            return None
        self.proc.send_signal(signal.SIGQUIT)
        try:
            rc = self.proc.wait(timeout * SLOW)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail("nginx did not quit within %ds:\n%s"
                        % (timeout, self.error_log()[-3000:]))
        self.proc = None
        return rc

    def kill(self):
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None
            # a SIGKILLed master leaves its workers running (e.g. one that
            # waits for a request to finish before it quits)
            for pid in set(re.findall(r"start worker process (\d+)",
                                      self.error_log())):
                try:
                    with open("/proc/%s/cmdline" % pid, "rb") as f:
                        if b"nginx" not in f.read():
                            continue
                    os.kill(int(pid), signal.SIGKILL)
                except OSError:
                    pass

    # ---- logs ------------------------------------------------------------

    def error_log(self, name="error.log"):
        try:
            with open(os.path.join(self.prefix, "logs", name), "rb") as f:
                return f.read().decode("latin-1")
        except FileNotFoundError:
            return ""

    def stderr_text(self):
        return self.error_log("stderr.log")

    def mark(self):
        """An offset into the error log, for log_lines(since=...)."""
        return len(self.error_log())

    def log_lines(self, text, since=0):
        """Error log lines that contain `text` as a whole message: followed
        by the end of the line or by nginx's ", client: ..." suffix."""
        pat = re.compile(re.escape(text) + r"(,|$| while )")
        return [l for l in self.error_log()[since:].splitlines()
                if pat.search(l)]

    def log_count(self, text, since=0):
        return len(self.log_lines(text, since))

    def wait_log(self, text, count=1, since=0, timeout=5, exact=True):
        """Wait until `text` is logged `count` times (as a whole message,
        or anywhere in a line with exact=False); returns the lines."""
        deadline = time.time() + timeout * SLOW
        while True:
            if exact:
                lines = self.log_lines(text, since)
            else:
                lines = [l for l in self.error_log()[since:].splitlines()
                         if text in l]
            if len(lines) >= count:
                return lines
            if time.time() > deadline:
                pytest.fail("%r logged %d times, expected %d; log tail:\n%s"
                            % (text, len(lines), count,
                               self.error_log()[since:][-4000:]))
            time.sleep(0.02)

    def settle(self, t=0.2):
        """Give the worker time to finish the log phase of a request."""
        time.sleep(t * (5 if VALGRIND else 1))

    # ---- requests --------------------------------------------------------

    def request(self, method="GET", path="/", headers=None, body=None,
                chunked=False, timeout=10):
        """One request on a fresh connection. `headers` is a dict or a list
        of pairs; `body` bytes/str, or an iterable of chunks with
        chunked=True."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port,
                                          timeout=timeout * SLOW)
        try:
            pairs = list(headers.items()) if isinstance(headers, dict) \
                else list(headers or [])
            names = {k.lower() for k, _ in pairs}
            conn.putrequest(method, path, skip_host="host" in names,
                            skip_accept_encoding=True)
            for k, v in pairs:
                conn.putheader(k, v)
            if isinstance(body, str):
                body = body.encode()
            if chunked:
                conn.putheader("Transfer-Encoding", "chunked")
                conn.endheaders()
                for part in body or []:
                    if isinstance(part, str):
                        part = part.encode()
                    conn.send(b"%x\r\n%s\r\n" % (len(part), part))
                    time.sleep(0.02)
                conn.send(b"0\r\n\r\n")
            else:
                if body is not None and "content-length" not in names:
                    conn.putheader("Content-Length", str(len(body)))
                conn.endheaders(body)
            r = conn.getresponse()
            data = r.read()
            return Response(r.status, r.reason, r.getheaders(), data)
        finally:
            conn.close()

    def get(self, path="/", **kw):
        return self.request("GET", path, **kw)

    def post(self, path="/", body=b"", **kw):
        return self.request("POST", path, body=body, **kw)

    def raw(self, data, read=True, timeout=5):
        """Send raw bytes; return what comes back until close (or b"")."""
        s = socket.create_connection(("127.0.0.1", self.port),
                                     timeout=timeout * SLOW)
        try:
            s.sendall(data)
            if not read:
                return b""
            out = []
            while True:
                try:
                    b = s.recv(65536)
                except socket.timeout:
                    break
                if not b:
                    break
                out.append(b)
            return b"".join(out)
        finally:
            s.close()

    # ---- teardown --------------------------------------------------------

    def bad_lines(self):
        return [l for l in self.error_log().splitlines()
                if BAD_LOG.search(l)]

    def stop(self):
        if self.proc is not None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(10 * SLOW)
            except subprocess.TimeoutExpired:
                self.kill()
                return "nginx did not quit within %ds" % (10 * SLOW)
            self.proc = None
        return None

    def valgrind_problems(self):
        """Memory errors and our definite leaks in every process's log."""
        problems = []
        logs = sorted(f for f in os.listdir(os.path.join(self.prefix, "logs"))
                      if re.match(r"vg\.\d+\.log$", f))
        if not logs:
            return ["valgrind wrote no log"]
        killed = set(re.findall(r"process (\d+) exited on signal 9",
                                self.error_log()))
        for name in logs:
            text = self.error_log(name)
            if "ERROR SUMMARY" not in text and \
                    name.split(".")[1] not in killed:
                problems.append("%s: process did not finish under valgrind"
                                % name)
            # records are separated by "==pid== " lines
            for rec in re.split(r"^==\d+==\s*$", text, flags=re.M):
                head = rec.strip().split("\n", 1)[0]
                if VG_ERROR.search(head) or (VG_LEAK.search(head)
                                             and VG_OURS.search(rec)):
                    problems.append("%s:\n%s" % (name, rec.strip()))
        return problems


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "no_valgrind: timing-sensitive; skipped under "
        "PW_NGINX_VALGRIND=1")


def pytest_collection_modifyitems(config, items):
    if not VALGRIND:
        return
    skip = pytest.mark.skip(reason="timing-sensitive, not under valgrind")
    for item in items:
        if "no_valgrind" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def _valgrind_present():
    if VALGRIND and shutil.which("valgrind") is None:
        pytest.fail("PW_NGINX_VALGRIND=1 but valgrind is not installed")


@pytest.fixture(scope="session")
def upstream():
    up = Upstream().start()
    yield up
    up.stop()


@pytest.fixture(scope="session", autouse=True)
def _module_present():
    if not os.path.exists(MODULE):
        pytest.fail("nginx module not built: %s (run make nginx-module)"
                    % MODULE)


@pytest.fixture
def ngx(tmp_path, upstream):
    n = Nginx(tmp_path / "nginx", upstream)
    yield n
    started = n.conf_text is not None
    err = n.stop()
    problems = []
    if err:
        problems.append(err)
    if not n.allow_alerts:
        problems += n.bad_lines()
    if VALGRIND and started:
        problems += n.valgrind_problems()
    if problems:
        pytest.fail("nginx error log has problems:\n" + "\n".join(problems))
    # keep the prefix of a failing test for inspection; drop big temp files
    shutil.rmtree(os.path.join(n.prefix, "temp"), ignore_errors=True)
