"""HTTP callouts (proxy_http_call) against a real upstream on loopback
(callout_upstream.py): named upstream blocks and host:port targets, the
answer's :status, headers, body and trailers, failures delivered as empty
answers, several calls in flight, keep-alive reuse, calls from request
phases, ticks and on_configure, the auth and token plugins, a client that
leaves during a call, bad arguments, metrics."""
import re
import socket
import time

import pytest

from conftest import SLOW, module, pw
from callout_upstream import CalloutUpstream
from test_metrics import METRICS_LOC, sample, scrape
from upstream import big_body, free_port


@pytest.fixture(scope="module")
def cup():
    up = CalloutUpstream().start()
    yield up
    up.stop()


def ublock(cup, name="cu"):
    return "upstream %s { server 127.0.0.1:%d; }" % (name, cup.port)


def call_script(path, target="cu", timeout=2000, body='""', extra="",
                on_answer="trace; get_headers; get_body"):
    """A testplugin script: one call from request_headers, the request
    paused until the answer, then resumed."""
    return ("on request_headers: http_call %s %d %s :method=GET :path=%s "
            ":authority=callee %s; return pause\n"
            "on http_call_response: %s; get_headers call_trailers; "
            "set_effective_context caller; continue_request"
            % (target, timeout, body, path, extra, on_answer))


def start_tp(ngx, cup, script, **kw):
    kw.setdefault("http", ublock(cup))
    kw.setdefault("wasm", module("tp", "testplugin.wasm"))
    ngx.start(proxy=pw("tp", script), **kw)


def answer_lines(ngx, count=1, since=0, timeout=5):
    return ngx.wait_log("callback http_call_response", count=count,
                        since=since, timeout=timeout, exact=False)


def answer_of(line):
    m = re.search(r"token=(\d+) headers=(\d+) body=(\d+) trailers=(\d+)",
                  line)
    assert m, line
    return tuple(int(x) for x in m.groups())


def values(ngx, label, since=0):
    out = []
    for l in ngx.error_log()[since:].splitlines():
        m = re.search(r"\] \d+#\d+: (?:\*\d+ )?\[wasm\] tp: value %s = "
                      r"(.*?)(?:, client: .*)?$" % re.escape(label), l)
        if m:
            out.append(m.group(1))
    return out


# ---- answers ----------------------------------------------------------------


def test_named_upstream_request_and_answer(ngx, cup):
    start_tp(ngx, cup, call_script(
        "/echo", body="hi", extra="x-a=1 content-length=99 host=evil"))
    r = ngx.get("/named")
    assert r.status == 200 and r.json()["path"] == "/named"
    _, nh, nb, nt = answer_of(answer_lines(ngx)[0])
    assert nh == 4 and nt == 0
    log = ngx.error_log()
    assert "header :status: 200" in log
    assert "header x-echo: 1" in log
    assert "header content-type: application/json" in log
    echo = values(ngx, "buffer")[0]
    assert len(echo) == nb
    import json
    e = json.loads(echo)
    assert e["method"] == "GET" and e["path"] == "/echo"
    assert e["body"] == "hi"
    # Host from :authority; the plugin's own host and length are dropped
    assert ["Host", "callee"] in e["headers"]
    assert ["x-a", "1"] in e["headers"]
    assert ["Content-Length", "2"] in e["headers"]
    assert not any(k.lower() == "host" and v == "evil"
                   for k, v in e["headers"])


def test_host_port_target(ngx, cup):
    start_tp(ngx, cup, call_script("/status/201",
                                   target="127.0.0.1:%d" % cup.port))
    assert ngx.get("/").status == 200
    _, nh, nb, _ = answer_of(answer_lines(ngx)[0])
    assert nh == 2 and nb == len("status 201")
    assert "header :status: 201" in ngx.error_log()
    assert values(ngx, "buffer") == ["status 201"]


def test_answer_trailers_and_chunked_body(ngx, cup):
    start_tp(ngx, cup, call_script("/trailers"))
    assert ngx.get("/").status == 200
    _, nh, nb, nt = answer_of(answer_lines(ngx)[0])
    # :status and x-before; transfer-encoding is the connection's
    assert (nh, nb, nt) == (2, 11, 2)
    log = ngx.error_log()
    assert "header x-before: b" in log
    assert "header transfer-encoding" not in log
    assert "header x-trailer: t1" in log and "header x-checksum: abc" in log
    assert values(ngx, "buffer") == ["hello world"]


def test_request_trailers_sent_chunked(ngx, cup):
    # proxy_http_call with trailers (raw: the script command has none)
    # (from on_configure: the SDK does not know the token of a raw call, so
    # it could not find the request again)
    start_tp(ngx, cup,
             "on configure: raw proxy_http_call s:cu "
             "hdrs::method=POST,:path=/echo,:authority=x s:payload "
             "hdrs:x-t=1,x-u=2 1000 out\n"
             "on http_call_response: get_body")
    ngx.wait_log("value buffer = ", exact=False)
    import json
    e = json.loads(values(ngx, "buffer")[0])
    assert e["body"] == "payload"
    assert e["trailers"] == [["x-t", "1"], ["x-u", "2"]]
    assert ["Transfer-Encoding", "chunked"] in e["headers"]


@pytest.mark.parametrize("path,body", [
    ("/chunked", "abcdef"),
    ("/until-close", "until close"),
    ("/interim", "after interim"),
])
def test_answer_framings(ngx, cup, path, body):
    start_tp(ngx, cup, call_script(path))
    assert ngx.get("/").status == 200
    answer_lines(ngx)
    assert values(ngx, "buffer") == [body]
    assert "header :status: 200" in ngx.error_log()
    assert "header x-interim" not in ngx.error_log()


def test_big_answer(ngx, cup):
    start_tp(ngx, cup, call_script("/big/3000000",
                                   on_answer="trace; get_header :status"))
    assert ngx.get("/").status == 200
    _, nh, nb, _ = answer_of(answer_lines(ngx)[0])
    assert nb == 3000000


def test_head_call_has_no_body(ngx, cup):
    start_tp(ngx, cup,
             "on request_headers: http_call cu 1000 \"\" :method=HEAD "
             ":path=/big/1000 :authority=x; return pause\n"
             "on http_call_response: trace; set_effective_context caller; "
             "continue_request")
    assert ngx.get("/").status == 200
    _, nh, nb, _ = answer_of(answer_lines(ngx)[0])
    assert nh == 2 and nb == 0


# ---- failures -----------------------------------------------------------------


def closed_port():
    return free_port()


@pytest.mark.parametrize("case", ["refused", "reset", "close", "garbage",
                                  "timeout"])
def test_failures_are_empty_answers(ngx, cup, case):
    target, path, timeout, cause = {
        "refused": ("127.0.0.1:%d" % closed_port(), "/echo", 2000,
                    "refused"),
        "reset": ("cu", "/reset", 2000, "reset"),
        "close": ("cu", "/close", 2000, "reset"),
        "garbage": ("cu", "/garbage", 2000, "malformed"),
        "timeout": ("cu", "/slow/3000", 300, "timeout"),
    }[case]
    start_tp(ngx, cup, call_script(path, target=target, timeout=timeout,
                                   on_answer="trace; get_status"),
             locations=METRICS_LOC)
    t0 = time.time()
    r = ngx.get("/")
    took = time.time() - t0
    assert r.status == 200
    _, nh, nb, nt = answer_of(answer_lines(ngx)[0])
    assert (nh, nb, nt) == (0, 0, 0)
    assert values(ngx, "status_code") == ["0"]
    lines = ngx.wait_log("failed: %s:" % cause, exact=False)
    assert "[warn]" in lines[0]
    if case == "timeout":
        assert 0.25 < took < 2.5 * SLOW
    families, _ = scrape(ngx)
    assert sample(families,
                  "pw_host_callout_failures_%s_total" % cause) == 1
    assert sample(families, "pw_host_callouts_total") == 1
    assert sample(families, "pw_host_callouts_in_flight") == 0


def test_too_large_answer_is_a_failure(ngx, cup):
    start_tp(ngx, cup, call_script("/big/%d" % (17 * 1024 * 1024),
                                   on_answer="trace"))
    assert ngx.get("/", timeout=20).status == 200
    _, nh, _, _ = answer_of(answer_lines(ngx)[0])
    assert nh == 0
    ngx.wait_log("failed: malformed: answer too large", exact=False)


# ---- concurrency and connections ----------------------------------------------


@pytest.mark.no_valgrind
def test_several_calls_in_flight(ngx, cup):
    # from on_configure: three calls of the root context, answered in any
    # order; the upstream sees them all before the first is answered
    calls = "; ".join("http_call cu 5000 \"\" :method=GET :path=/slow/600 "
                      ":authority=x" for _ in range(3))
    cup.reset_counts()
    start_tp(ngx, cup, "on configure: %s\n"
             "on http_call_response: trace; get_body" % calls,
             locations=METRICS_LOC)
    lines = answer_lines(ngx, count=3, timeout=5)
    assert sorted(answer_of(l)[0] for l in lines) == [1, 2, 3]
    assert values(ngx, "buffer") == ["slow"] * 3
    times = [t for p, t in cup.arrivals if p == "/slow/600"]
    assert len(times) == 3
    assert max(times) - min(times) < 0.5, times
    assert cup.connections == 3
    families, _ = scrape(ngx)
    assert sample(families, "pw_host_callouts_total") == 3
    assert sample(families, "pw_host_callouts_in_flight") == 0
    assert sample(families, "pw_host_callout_duration_milliseconds_total") \
        >= 3 * 550


@pytest.mark.no_valgrind
def test_calls_of_a_request_after_it_resumed_are_cancelled(ngx, cup):
    # the first answer resumes the request; the two others are cancelled
    # when it ends, never delivered
    calls = "; ".join("http_call cu 5000 \"\" :method=GET :path=/slow/%d "
                      ":authority=x" % ms for ms in (100, 1500, 1500))
    start_tp(ngx, cup,
             "on request_headers: %s; return pause\n"
             "on http_call_response: trace; set_effective_context caller; "
             "continue_request" % calls, locations=METRICS_LOC)
    cup.reset_counts()
    t0 = time.time()
    assert ngx.get("/").status == 200
    assert time.time() - t0 < 1.2
    deadline = time.time() + 3
    while cup.closed_early < 2 and time.time() < deadline:
        time.sleep(0.02)
    assert cup.closed_early == 2
    assert len(answer_lines(ngx)) == 1
    families, _ = scrape(ngx)
    assert sample(families, "pw_host_callouts_cancelled_total") == 2
    assert sample(families, "pw_host_callouts_in_flight") == 0


def test_keepalive_connection_reused(ngx, cup):
    start_tp(ngx, cup, call_script("/echo", on_answer="trace"))
    cup.reset_counts()
    for _ in range(5):
        assert ngx.get("/").status == 200
    answer_lines(ngx, count=5)
    assert cup.count("/echo") == 5
    assert cup.connections == 1


def test_connection_close_not_reused(ngx, cup):
    start_tp(ngx, cup, call_script("/close-after", on_answer="trace"))
    cup.reset_counts()
    for _ in range(3):
        assert ngx.get("/").status == 200
    answer_lines(ngx, count=3)
    assert cup.connections == 3
    assert values(ngx, "buffer") == []


@pytest.mark.no_valgrind
def test_idle_connection_closed_by_peer_is_not_used(ngx, cup):
    start_tp(ngx, cup, call_script("/idle-close", on_answer="trace; get_body"))
    cup.reset_counts()
    for _ in range(3):
        assert ngx.get("/").status == 200
        time.sleep(0.4)         # the upstream drops it after 0.1 s
    lines = answer_lines(ngx, count=3)
    assert all(answer_of(l)[1] > 0 for l in lines)
    assert values(ngx, "buffer") == ["idle"] * 3
    assert cup.connections == 3
    assert "failed:" not in ngx.error_log()


# ---- contexts -----------------------------------------------------------------


def test_call_from_on_configure(ngx, cup):
    start_tp(ngx, cup,
             "on configure: http_call cu 30000 \"\" :method=GET :path=/token "
             ":authority=x\n"
             "on http_call_response: trace; get_body")
    line = answer_lines(ngx)[0]
    assert "headers=2" in line
    assert re.match(r"tok-\d+$", values(ngx, "buffer")[0])


def test_calls_under_stream_isolation(ngx, cup):
    # each request runs in a fresh instance that the call keeps alive
    ngx.start(wasm=module("tp", "testplugin.wasm"), http=ublock(cup),
              proxy="proxy_wasm_isolation stream;\n"
              + pw("tp", call_script("/status/200", on_answer="trace")))
    for _ in range(3):
        assert ngx.get("/").status == 200
    lines = answer_lines(ngx, count=3)
    assert all(answer_of(l)[1] == 2 for l in lines)


def test_auth_plugin_resumes_or_denies(ngx, cup):
    ngx.start(wasm=module("auth", "callout_auth.wasm"),
              http=ublock(cup, "auth"), proxy=pw("auth"))
    cup.reset_counts()
    r = ngx.get("/in", headers={"Authorization": "Bearer good"})
    assert r.status == 200 and r.json()["path"] == "/in"
    r = ngx.get("/out", headers={"Authorization": "Bearer bad"})
    assert r.status == 403 and r.body == b"forbidden\n"
    r = ngx.get("/none")
    assert r.status == 403
    assert cup.count("/auth") == 3
    log = ngx.error_log()
    assert len(re.findall(r"callout_auth: call \d+ answered 200", log)) == 1
    assert len(re.findall(r"callout_auth: call \d+ answered 403", log)) == 2


def test_auth_plugin_denies_when_auth_is_down(ngx, cup):
    ngx.start(wasm=module("auth", "callout_auth.wasm"),
              http="upstream auth { server 127.0.0.1:%d; }" % closed_port(),
              proxy=pw("auth"))
    r = ngx.get("/x", headers={"Authorization": "Bearer good"})
    assert r.status == 403


def token_values(ngx):
    return re.findall(r"callout_token: stored (tok-\d+)", ngx.error_log())


@pytest.mark.no_valgrind
def test_token_refreshed_by_tick(ngx, cup):
    ngx.start(wasm=module("tok", "callout_token.wasm"),
              http=ublock(cup, "tokens"), proxy=pw("tok", "tokens 150"))
    deadline = time.time() + 5
    while len(token_values(ngx)) < 3 and time.time() < deadline:
        time.sleep(0.05)
    stored = token_values(ngx)
    assert len(stored) >= 3 and len(set(stored)) == len(stored)
    r = ngx.get("/")
    assert r.status == 200
    assert r.echo_header("x-token") in token_values(ngx)


def test_token_fetched_from_on_configure(ngx, cup):
    ngx.start(wasm=module("tok", "callout_token.wasm"),
              http=ublock(cup, "tokens"), proxy=pw("tok", "tokens 0 now"))
    ngx.wait_log("callout_token: stored tok-", exact=False)
    r = ngx.get("/")
    assert r.echo_header("x-token") == token_values(ngx)[0]


def test_token_plugin_without_token(ngx, cup):
    ngx.start(wasm=module("tok", "callout_token.wasm"),
              http="upstream tokens { server 127.0.0.1:%d; }"
              % closed_port(), proxy=pw("tok", "tokens 0 now"))
    ngx.wait_log("callout_token: call", exact=False)
    r = ngx.get("/")
    assert r.status == 503 and r.body == b"no token yet\n"


def test_client_leaves_during_slow_call(ngx, cup):
    start_tp(ngx, cup, call_script("/slow/20000", timeout=30000,
                                   on_answer="trace"),
             locations=METRICS_LOC)
    cup.reset_counts()
    s = socket.create_connection(("127.0.0.1", ngx.port))
    s.sendall(b"GET /leave HTTP/1.1\r\nHost: x\r\n\r\n")
    deadline = time.time() + 3 * SLOW
    while cup.count("/slow/") == 0 and time.time() < deadline:
        time.sleep(0.02)
    assert cup.count("/slow/") == 1
    s.close()
    deadline = time.time() + 3 * SLOW
    while cup.closed_early == 0 and time.time() < deadline:
        time.sleep(0.02)
    assert cup.closed_early == 1
    ngx.settle(0.3)
    assert "callback http_call_response" not in ngx.error_log()
    families, _ = scrape(ngx)
    assert sample(families, "pw_host_callouts_in_flight") == 0
    assert sample(families, "pw_host_callouts_cancelled_total") == 1


def test_quit_while_call_in_flight(ngx, cup):
    start_tp(ngx, cup,
             "on configure: http_call cu 5000 \"\" :method=GET "
             ":path=/slow/500 :authority=x\n"
             "on http_call_response: trace")
    time.sleep(0.1)
    assert ngx.quit() == 0
    # the worker waited for the answer before it exited
    assert "callback http_call_response" in ngx.error_log()


# ---- arguments ----------------------------------------------------------------


@pytest.mark.parametrize("target,headers,status", [
    ("nosuch", ":method=GET :path=/ :authority=x", 2),
    ("http://nosuch", ":method=GET :path=/ :authority=x", 2),
    ("cu:80/x", ":method=GET :path=/ :authority=x", 2),
    ("", ":method=GET :path=/ :authority=x", 2),
    ("nosuch.example:80", ":method=GET :path=/ :authority=x", 2),
    ("cu", ":path=/ :authority=x", 2),
    ("cu", ":method=GET :authority=x", 2),
    ("cu", ":method=GET :path=/", 2),
    ("cu", ":method=GET :path=nopath :authority=x", 2),
    ("cu", "\":method=G T\" :path=/ :authority=x", 2),
    ("cu", ":method=GET :path=/ :authority=x \"x-bad=a\rb\"", 2),
])
def test_bad_arguments(ngx, cup, target, headers, status):
    start_tp(ngx, cup,
             "on request_headers: http_call %s 1000 \"\" %s"
             % (target or '""', headers))
    assert ngx.get("/").status == 200
    ngx.wait_log("status proxy_http_call = %d" % status, exact=False)
    assert "callback http_call_response" not in ngx.error_log()


@pytest.mark.parametrize("target,port", [
    ("192.0.2.1", 80), ("http://192.0.2.1", 80), ("https://192.0.2.1", 443),
    ("192.0.2.1:8080", 8080), ("http://[100::1]", 80)])
def test_address_default_port(ngx, cup, target, port):
    # nothing answers there (TEST-NET-1, IPv6 discard prefix): the
    # failure names the address the call went to
    start_tp(ngx, cup, call_script("/", target=target, timeout=300,
                                   on_answer="trace"))
    assert ngx.get("/").status == 200
    _, nh, _, _ = answer_of(answer_lines(ngx)[0])
    assert nh == 0
    addr = "[100::1]" if "100::1" in target else "192.0.2.1"
    ngx.wait_log('to "%s" (%s:%d) failed:' % (target, addr, port),
                 exact=False)


def test_upstream_block_name_in_any_case(ngx, cup):
    # as nginx compares block names (proxy_pass http://CU finds it too)
    start_tp(ngx, cup, call_script("/status/203", target="Cu"),
             http=ublock(cup, "cU"))
    assert ngx.get("/").status == 200
    answer_lines(ngx)
    assert "header :status: 203" in ngx.error_log()
    assert values(ngx, "buffer") == ["status 203"]


def test_tls_upstream_name_in_any_case(ngx, cup):
    # listed as cu, called as CU: TLS, which the plain upstream fails
    start_tp(ngx, cup, call_script("/echo", target="CU", on_answer="trace"),
             wasm=module("tp", "testplugin.wasm") + "\ntls_upstream cu;")
    assert ngx.get("/").status == 200
    _, nh, _, _ = answer_of(answer_lines(ngx)[0])
    assert nh == 0
    ngx.wait_log('to "CU" (127.0.0.1:%d) failed: tls:' % cup.port,
                 exact=False)


def test_unknown_upstream_is_logged(ngx, cup):
    start_tp(ngx, cup, "on request_headers: http_call nosuch 1000 \"\" "
             ":method=GET :path=/ :authority=x")
    ngx.get("/")
    ngx.wait_log('http call: unknown upstream "nosuch"', exact=False)


# ---- host names through nginx's resolver ----------------------------------------


class TinyDns:
    """A UDP DNS server: A 127.0.0.1 for names ending in .test, NXDOMAIN
    for the others; counts the queries."""

    def __init__(self):
        import threading
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.queries = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        import struct
        while True:
            try:
                q, peer = self.sock.recvfrom(512)
            except OSError:
                return
            qid, = struct.unpack("!H", q[:2])
            i, labels = 12, []
            while q[i]:
                labels.append(q[i + 1:i + 1 + q[i]].decode())
                i += 1 + q[i]
            qtype, = struct.unpack("!H", q[i + 1:i + 3])
            question = q[12:i + 5]
            name = ".".join(labels)
            self.queries.append(name)
            if not name.endswith(".test"):
                hdr = struct.pack("!HHHHHH", qid, 0x8183, 1, 0, 0, 0)
                self.sock.sendto(hdr + question, peer)
                continue
            an = b""
            if qtype == 1:
                an = struct.pack("!HHHIH", 0xc00c, 1, 1, 60, 4) \
                    + socket.inet_aton("127.0.0.1")
            hdr = struct.pack("!HHHHHH", qid, 0x8180, 1, 1 if an else 0,
                              0, 0)
            self.sock.sendto(hdr + question + an, peer)

    def stop(self):
        self.sock.close()


@pytest.fixture
def dns():
    d = TinyDns()
    yield d
    d.stop()


def resolver(dns):
    return "resolver 127.0.0.1:%d ipv6=off; resolver_timeout 2s;" % dns.port


def test_host_name_resolved(ngx, cup, dns):
    start_tp(ngx, cup, call_script("/status/202",
                                   target="callee.test:%d" % cup.port),
             http=ublock(cup) + resolver(dns))
    assert ngx.get("/").status == 200
    _, nh, _, _ = answer_of(answer_lines(ngx)[0])
    assert nh == 2
    assert "header :status: 202" in ngx.error_log()
    assert "callee.test" in dns.queries


def test_host_name_resolved_from_on_configure(ngx, cup, dns):
    start_tp(ngx, cup,
             "on configure: http_call callee.test:%d 30000 \"\" :method=GET "
             ":path=/token :authority=x\n"
             "on http_call_response: trace; get_body" % cup.port,
             http=ublock(cup) + resolver(dns))
    assert "headers=2" in answer_lines(ngx)[0]
    assert re.match(r"tok-\d+$", values(ngx, "buffer")[0])


def test_unresolvable_name_is_an_empty_answer(ngx, cup, dns):
    start_tp(ngx, cup, call_script("/echo", target="nowhere.invalid:80",
                                   on_answer="trace"),
             http=ublock(cup) + resolver(dns))
    assert ngx.get("/").status == 200
    _, nh, _, _ = answer_of(answer_lines(ngx)[0])
    assert nh == 0
    ngx.wait_log("nowhere.invalid could not be resolved", exact=False)
    ngx.wait_log("failed: other: name not resolved", exact=False)


def test_call_made_in_on_log_ends_with_the_request(ngx, cup):
    """A call dispatched from on_log (as a log shipper would, on the
    stream's context) is cancelled with the request, as Envoy cancels a
    context's calls when it goes: it never reaches the callee, nothing is
    delivered, the metric counts it, the worker goes on."""
    start_tp(ngx, cup,
             "on log: http_call cu 2000 \"\" :method=GET "
             ":path=/echo/from-log :authority=callee\n"
             "on http_call_response: trace", locations=METRICS_LOC)
    for i in range(3):
        assert ngx.get("/r%d" % i).status == 200
    ngx.wait_log("status proxy_http_call = 0", count=3)
    time.sleep(0.3 * SLOW)
    assert ngx.get("/after").status == 200
    assert not [r for r in cup.requests if r[1] == "/echo/from-log"]
    assert ngx.log_count("callback http_call_response") == 0
    families, _ = scrape(ngx)
    assert sample(families, "pw_host_callouts_cancelled_total") == 4
    assert sample(families, "pw_host_callouts_in_flight") == 0
