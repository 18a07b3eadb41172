"""Properties through a real nginx: the testplugin reads them with
proxy_get_property and logs what it got (docs/PROPERTIES.md).

Each probe is `log info probe NAME` followed by one get_property: the
parser pairs the probe with the status and the value logged after it."""
import os
import re
import shutil
import struct
import subprocess
import time

import pytest

from conftest import SLOW, module, pw
from upstream import free_port

PROBE = re.compile(r"probe (\S+?)(?:,|$| while )")
STATUS = re.compile(r"status proxy_(get|set)_property = (\d+)")
VALUE = re.compile(r"value property = (.*?)(?:, client: |$| while )")

OK, NOT_FOUND = 0, 1


def unescape(s):
    """The testplugin's value escaping: \\\\ and \\xHH."""
    out = bytearray()
    i = 0
    while i < len(s):
        if s[i] == "\\" and s[i + 1:i + 2] == "\\":
            out.append(0x5c)
            i += 2
        elif s[i] == "\\" and s[i + 1:i + 2] == "x":
            out.append(int(s[i + 2:i + 4], 16))
            i += 4
        else:
            out.append(ord(s[i]))
            i += 1
    return bytes(out)


def i64(b):
    assert len(b) == 8, b
    return struct.unpack("<q", b)[0]


def probes(event, paths):
    """Script lines reading every path (a list of segments or a dotted
    string) in callback `event`."""
    cmds = []
    for p in paths:
        segs = [p] if isinstance(p, str) else p
        label = "|".join(segs)
        cmds.append("log info probe %s" % label)
        cmds.append("get_property %s" % " ".join(segs))
    return "on %s: %s" % (event, "; ".join(cmds))


def results(ngx, since=0):
    """{label: (status, value bytes or None)} from the error log, in log
    order; a label probed several times keeps a list under label + '#'."""
    res = {}
    label = None
    for line in ngx.error_log()[since:].splitlines():
        m = PROBE.search(line)
        if m:
            label = m.group(1)
            continue
        if label is None:
            continue
        m = STATUS.search(line)
        if m and m.group(1) == "get":
            st = int(m.group(2))
            res.setdefault(label + "#", []).append((st, None))
            res[label] = (st, None)
            if st != OK:
                label = None
            continue
        m = VALUE.search(line)
        if m:
            v = unescape(m.group(1))
            res[label] = (res[label][0], v)
            res[label + "#"][-1] = (res[label][0], v)
            label = None
    return res


def wait_status(ngx, kind, count, since, timeout=5):
    """Wait until `count` proxy_<kind>_property statuses are logged."""
    deadline = time.time() + timeout
    while True:
        n = sum(1 for m in STATUS.finditer(ngx.error_log()[since:])
                if m.group(1) == kind)
        if n >= count:
            return
        assert time.time() < deadline, \
            "%d proxy_%s_property statuses logged, expected %d:\n%s" % (
                n, kind, count, ngx.error_log()[since:][-4000:])
        time.sleep(0.02)


def start(ngx, script, **kw):
    kw.setdefault("proxy", pw("t", script))
    ngx.start(wasm=module("t", "testplugin.wasm"), **kw)


def run(ngx, script, path="/", n=None, **req):
    """Start nginx with `script`, make one request, wait for the probes."""
    start(ngx, script)
    mark = ngx.mark()
    r = ngx.request(path=path, **req)
    want = n if n is not None else script.count("probe ")
    wait_status(ngx, "get", want, since=mark)
    # the plugin logs a value after the host logs its status: wait for it
    deadline = time.time() + 5 * SLOW
    while True:
        res = results(ngx, mark)
        if time.time() > deadline or all(
                v is not None for k, got in res.items() if k.endswith("#")
                for st, v in got if st == OK):
            return r, res
        time.sleep(0.02)


def test_request_properties(ngx):
    paths = [["request", "path"], ["request", "url_path"],
             ["request", "query"], ["request", "host"],
             ["request", "scheme"], ["request", "method"],
             ["request", "referer"], ["request", "useragent"],
             ["request", "headers", "x-multi"],
             ["request", "headers", "X-Multi"],
             ["request", "protocol"], ["request", "size"],
             ["request", "headers", ":method"],
             ["request", "headers", ":authority"]]
    r, res = run(ngx, probes("request_headers", paths),
                 path="/echo/a%20b?x=1&y=2",
                 headers=[("Host", "example.test:8080"),
                          ("User-Agent", "UA/1.0"),
                          ("Referer", "http://ref.test/"),
                          ("X-Multi", "a"), ("X-Multi", "b")])
    assert r.status == 200
    assert res["request|path"] == (OK, b"/echo/a%20b?x=1&y=2")
    assert res["request|url_path"] == (OK, b"/echo/a%20b")
    assert res["request|query"] == (OK, b"x=1&y=2")
    assert res["request|host"] == (OK, b"example.test:8080")
    assert res["request|scheme"] == (OK, b"http")
    assert res["request|method"] == (OK, b"GET")
    assert res["request|referer"] == (OK, b"http://ref.test/")
    assert res["request|useragent"] == (OK, b"UA/1.0")
    assert res["request|headers|x-multi"] == (OK, b"a,b")
    assert res["request|headers|X-Multi"] == (OK, b"a,b")
    assert res["request|protocol"] == (OK, b"HTTP/1.1")
    assert i64(res["request|size"][1]) == 0
    assert res["request|headers|:method"] == (OK, b"GET")
    assert res["request|headers|:authority"] == (OK, b"example.test:8080")


def test_request_absent_and_unknown(ngx):
    paths = [["request", "referer"], ["request", "headers", "x-none"],
             ["request", "nope"], ["request"], ["nope", "path"],
             ["request", "path", "x", "y"], ["request", "query"],
             ["source", "headers", "x-a"]]
    _, res = run(ngx, probes("request_headers", paths), path="/plain",
                 headers={"X-A": "1"})
    assert res["request|referer"][0] == NOT_FOUND
    assert res["request|headers|x-none"][0] == NOT_FOUND
    assert res["request|nope"][0] == NOT_FOUND
    assert res["request"][0] == NOT_FOUND
    assert res["nope|path"][0] == NOT_FOUND
    assert res["request|path|x|y"][0] == NOT_FOUND
    assert res["source|headers|x-a"][0] == NOT_FOUND
    # no query string: present, empty (as Envoy)
    assert res["request|query"][0] == OK
    assert res["request|query"][1] in (None, b"")


def test_dotted_form(ngx):
    paths = ["request.path", "request.headers.x-dot", "ngx.request_uri",
             "request.method"]
    _, res = run(ngx, probes("request_headers", paths), path="/d?q=1",
                 headers={"X-Dot": "v.1"})
    assert res["request.path"] == (OK, b"/d?q=1")
    assert res["request.headers.x-dot"] == (OK, b"v.1")
    assert res["ngx.request_uri"] == (OK, b"/d?q=1")
    assert res["request.method"] == (OK, b"GET")


def test_request_time_duration_sizes(ngx):
    paths = [["request", "time"], ["request", "duration"],
             ["request", "size"], ["request", "total_size"]]
    before = time.time()
    r, res = run(ngx, probes("log", paths), path="/t", body=b"hello",
                 headers={"Content-Type": "text/plain"})
    after = time.time()
    assert r.status == 200 and r.json()["body"] == "hello"
    t = i64(res["request|time"][1]) / 1e9
    assert before - 1 <= t <= after + 1
    d = i64(res["request|duration"][1])
    assert 0 <= d <= (after - before + 1) * 1e9
    assert i64(res["request|size"][1]) == 5
    # request line + headers + body, as nginx counted
    assert i64(res["request|total_size"][1]) > 5 + len("GET /t HTTP/1.1")


def test_request_id_is_stable(ngx):
    paths = [["request", "id"], ["request", "id"], ["ngx", "request_id"]]
    script = probes("request_headers", paths) + "; " + \
        probes("log", [["request", "id"]])
    _, res = run(ngx, script, path="/id")
    ids = [v for st, v in res["request|id#"]]
    assert len(ids) == 3
    assert re.fullmatch(rb"[0-9a-f]{32}", ids[0])
    assert ids[0] == ids[1] == ids[2]


def test_response_properties(ngx):
    req = [["response", "code"], ["response", "headers", "x-up"],
           ["upstream", "address"]]
    log = [["response", "code"], ["response", "code_details"],
           ["response", "size"], ["response", "total_size"],
           ["response", "headers", "x-up"],
           ["response", "headers", "content-type"],
           ["response", "headers", ":status"],
           ["upstream", "address"], ["upstream", "port"]]
    script = probes("request_headers", req) + "; " + probes("log", log)
    start(ngx, script)
    mark = ngx.mark()
    r = ngx.get("/r?status=201&body=hello%20world&header=X-Up:1")
    assert (r.status, r.body) == (201, b"hello world")
    wait_status(ngx, "get", len(req) + len(log),
                 since=mark)
    res = results(ngx, mark)
    first = {k: v[0] for k, v in res.items() if k.endswith("#")}
    assert first["response|code#"][0] == NOT_FOUND
    assert first["response|headers|x-up#"][0] == NOT_FOUND
    assert first["upstream|address#"][0] == NOT_FOUND
    assert i64(res["response|code"][1]) == 201
    assert res["response|code_details"] == (OK, b"via_upstream")
    size = i64(res["response|size"][1])
    if r.header("transfer-encoding") == "chunked":
        # nginx counts the chunk framing ($body_bytes_sent)
        assert len(b"hello world") < size <= len(b"hello world") + 32
    else:
        assert size == len(b"hello world")
    total = i64(res["response|total_size"][1])
    assert total > len(b"hello world") + len("HTTP/1.1 201")
    assert res["response|headers|x-up"] == (OK, b"1")
    assert res["response|headers|content-type"] == (OK, b"text/plain")
    assert res["response|headers|:status"] == (OK, b"201")
    up = "127.0.0.1:%d" % ngx.upstream.port
    assert res["upstream|address"] == (OK, up.encode())
    assert i64(res["upstream|port"][1]) == ngx.upstream.port


def test_local_response_code_details(ngx):
    script = ("on request_headers: send_local_response_full 403 "
              "denied_by_test nope -1; return pause; " +
              probes("log", [["response", "code"],
                             ["response", "code_details"],
                             ["upstream", "address"]]))
    r, res = run(ngx, script, path="/deny")
    assert r.status == 403
    assert i64(res["response|code"][1]) == 403
    assert res["response|code_details"] == (OK, b"denied_by_test")
    assert res["upstream|address"][0] == NOT_FOUND


def test_static_has_no_code_details(ngx):
    ngx.start(wasm=module("t", "testplugin.wasm"),
              static=pw("t", probes("log", [["response", "code_details"],
                                            ["response", "code"]])))
    mark = ngx.mark()
    r = ngx.get("/static/hello.txt")
    assert r.status == 200
    wait_status(ngx, "get", 2, since=mark)
    res = results(ngx, mark)
    assert res["response|code_details"][0] == NOT_FOUND
    assert i64(res["response|code"][1]) == 200


def test_addresses_and_connection(ngx):
    paths = [["source", "address"], ["source", "port"],
             ["destination", "address"], ["destination", "port"],
             ["connection", "id"], ["connection", "mtls"],
             ["connection", "requested_server_name"],
             ["connection", "tls_version"]]
    _, res = run(ngx, probes("request_headers", paths), path="/a")
    src = res["source|address"][1].decode()
    host, port = src.rsplit(":", 1)
    assert host == "127.0.0.1"
    assert int(port) == i64(res["source|port"][1]) > 0
    assert res["destination|address"] == \
        (OK, ("127.0.0.1:%d" % ngx.port).encode())
    assert i64(res["destination|port"][1]) == ngx.port
    assert i64(res["connection|id"][1]) > 0
    assert res["connection|mtls"] == (OK, b"\x00")
    assert res["connection|requested_server_name"][0] == OK
    assert res["connection|requested_server_name"][1] in (None, b"")
    assert res["connection|tls_version"][0] == NOT_FOUND


def test_nginx_variables(ngx):
    paths = [["ngx", "request_uri"], ["ngx", "arg_x"], ["ngx", "ARG_X"],
             ["ngx", "http_x_foo"], ["ngx", "arg_missing"],
             ["ngx", "no_such_variable"], ["ngx", "pwvar"]]
    start(ngx, probes("request_headers", paths),
          server="set $pwvar from_set;")
    mark = ngx.mark()
    ngx.get("/v?x=42", headers={"X-Foo": "bar"})
    wait_status(ngx, "get", len(paths), since=mark)
    res = results(ngx, mark)
    assert res["ngx|request_uri"] == (OK, b"/v?x=42")
    assert res["ngx|arg_x"] == (OK, b"42")
    assert res["ngx|ARG_X"] == (OK, b"42")
    assert res["ngx|http_x_foo"] == (OK, b"bar")
    assert res["ngx|arg_missing"][0] == NOT_FOUND
    assert res["ngx|no_such_variable"][0] == NOT_FOUND
    assert res["ngx|pwvar"] == (OK, b"from_set")


def test_set_nginx_variables(ngx):
    script = ("on request_headers: set_property ngx pwvar changed; "
              "set_property ngx args a=9; set_property ngx.pwvar2 dotted; "
              "set_property ngx uri /nope; set_property ngx nosuch x; "
              "set_property request path /x")
    start(ngx, script, server="set $pwvar orig; set $pwvar2 orig2;",
          proxy=pw("t", script) +
          'proxy_set_header X-Pwvar "$pwvar";'
          'proxy_set_header X-Pwvar2 "$pwvar2";')
    mark = ngx.mark()
    r = ngx.get("/s?a=1")
    assert r.status == 200
    wait_status(ngx, "set", 6, since=mark)
    st = [int(m.group(2)) for m in
          STATUS.finditer(ngx.error_log()[mark:]) if m.group(1) == "set"]
    assert st == [OK, OK, OK, NOT_FOUND, NOT_FOUND, NOT_FOUND]
    assert r.echo_header("x-pwvar") == "changed"
    assert r.echo_header("x-pwvar2") == "dotted"
    assert r.json()["path"] == "/s?a=9"


def test_root_context_has_no_request_properties(ngx):
    script = ("on configure: " +
              "; ".join(["log info probe %s; get_property %s" % (p, p)
                         for p in ("request.path", "source.address",
                                   "ngx.pid", "plugin_root_id")]) +
              "; set_property ngx pid 1")
    mark = ngx.mark()
    start(ngx, script)
    wait_status(ngx, "set", 1, since=mark)
    res = results(ngx, mark)
    assert res["request.path"][0] == NOT_FOUND
    assert res["source.address"][0] == NOT_FOUND
    assert res["ngx.pid"][0] == NOT_FOUND
    assert res["plugin_root_id"][0] == OK
    assert ngx.log_count("status proxy_set_property = 1", since=mark) >= 1


def test_header_maps(ngx):
    script = probes("response_headers", [["request", "headers"],
                                         ["response", "headers"]])
    r, res = run(ngx, script, path="/m?header=X-Up:2",
                 headers={"X-Req": "1"})
    assert r.status == 200

    def decode(b):
        n = struct.unpack_from("<I", b, 0)[0]
        lens = [struct.unpack_from("<II", b, 4 + 8 * i) for i in range(n)]
        off = 4 + 8 * n
        pairs = []
        for kl, vl in lens:
            k = b[off:off + kl]
            off += kl + 1
            v = b[off:off + vl]
            off += vl + 1
            pairs.append((k.decode(), v.decode()))
        return pairs

    req = decode(res["request|headers"][1])
    resp = decode(res["response|headers"][1])
    assert ("x-req", "1") in req
    assert (":method", "GET") in req
    assert ("x-up", "2") in resp
    assert resp[0] == (":status", "200")


def _openssl(*args):
    subprocess.run(["openssl"] + list(args), check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _certs(d):
    """A server certificate, a CA and a client certificate it signed."""
    f = {k: os.path.join(d, k) for k in
         ("srv.key", "srv.pem", "ca.key", "ca.pem", "cl.key", "cl.csr",
          "cl.pem")}
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-keyout", f["srv.key"], "-out", f["srv.pem"],
             "-subj", "/CN=localhost")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-keyout", f["ca.key"], "-out", f["ca.pem"], "-subj", "/CN=ca")
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f["cl.key"],
             "-out", f["cl.csr"], "-subj", "/CN=client")
    _openssl("x509", "-req", "-in", f["cl.csr"], "-CA", f["ca.pem"],
             "-CAkey", f["ca.key"], "-CAcreateserial", "-days", "2",
             "-out", f["cl.pem"])
    return f


@pytest.mark.skipif(shutil.which("curl") is None
                    or shutil.which("openssl") is None,
                    reason="needs curl and openssl")
def test_tls_and_http2(ngx):
    f = _certs(ngx.prefix)
    tls_port = free_port()
    paths = [["request", "scheme"], ["request", "protocol"],
             ["connection", "mtls"], ["connection", "requested_server_name"],
             ["connection", "tls_version"], ["destination", "port"]]
    script = probes("request_headers", paths)
    server = """
    server {
        listen 127.0.0.1:%d ssl http2;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_certificate %s;
        ssl_certificate_key %s;
        ssl_client_certificate %s;
        ssl_verify_client optional;
        location / {
            proxy_pass http://backend;
            %s
        }
    }
""" % (tls_port, f["srv.pem"], f["srv.key"], f["ca.pem"], pw("t", script))
    ngx.start(wasm=module("t", "testplugin.wasm"), http=server)

    def fetch(*opts):
        mark = ngx.mark()
        out = subprocess.run(
            ["curl", "-sk", "-o", "/dev/null", "-w", "%{http_code}",
             "--resolve", "sni.test:%d:127.0.0.1" % tls_port] + list(opts)
            + ["https://sni.test:%d/tls" % tls_port],
            stdout=subprocess.PIPE, timeout=20).stdout
        assert out == b"200"
        wait_status(ngx, "get", len(paths), since=mark)
        return results(ngx, mark)

    res = fetch("--http2")
    assert res["request|scheme"] == (OK, b"https")
    assert res["request|protocol"] == (OK, b"HTTP/2")
    assert res["connection|mtls"] == (OK, b"\x00")
    assert res["connection|requested_server_name"] == (OK, b"sni.test")
    assert res["connection|tls_version"][1] in (b"TLSv1.2", b"TLSv1.3")
    assert i64(res["destination|port"][1]) == tls_port

    res = fetch("--http1.1", "--cert", f["cl.pem"], "--key", f["cl.key"])
    assert res["request|protocol"] == (OK, b"HTTP/1.1")
    assert res["connection|mtls"] == (OK, b"\x01")
