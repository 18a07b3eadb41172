"""gRPC callouts from plugins (proxy_grpc_call, proxy_grpc_stream,
proxy_grpc_send, proxy_grpc_cancel, proxy_grpc_close, proxy_get_status)
over HTTP/2 against a real gRPC server (grpc_upstream.py, python3-grpcio).

The grpc_callout plugin (plugins/grpc_callout.c) starts the call the
request header x-grpc describes, pauses the request, and answers it locally
with one line per event the plugin saw. Answers follow Envoy: a unary call
gets one on_grpc_receive (OK) or one on_grpc_close (anything else); a
stream gets initial metadata, messages, trailing metadata and close.
"""
import re
import socket
import time

import pytest

from conftest import SLOW, module, pw
from grpc_upstream import GrpcUpstream
from test_metrics import METRICS_LOC, sample, scrape
from upstream import free_port

GRPC = module("g", "grpc_callout.wasm")

BAD_ARGUMENT = 2
PARSE_FAILURE = 4


@pytest.fixture(scope="module")
def gup():
    up = GrpcUpstream().start()
    yield up
    up.stop()


@pytest.fixture
def grpc_up(gup):
    gup.reset()
    return gup


def http_conf(gup, extra=""):
    return ("upstream grpc { server 127.0.0.1:%d; }\n"
            "upstream nowhere { server 127.0.0.1:%d; }\n%s"
            % (gup.port, free_port(), extra))


def start(ngx, gup, config="", **kw):
    kw.setdefault("http", http_conf(gup))
    ngx.start(wasm=GRPC, server=pw("g", config), **kw)


def call(ngx, cmd, **kw):
    r = ngx.get("/g", headers={"x-grpc": cmd}, **kw)
    assert r.status == 200, r
    return r.text.splitlines()


def line(lines, prefix):
    got = [l for l in lines if l.startswith(prefix)]
    assert got, "no %r line in %r" % (prefix, lines)
    return got[0]


def checksum(data):
    s = 0
    for b in data:
        s = (s * 31 + b) & 0xffffffff
    return s


def pattern(n):
    return bytes(ord("a") + i % 26 for i in range(n))


def test_unary_call_with_metadata(ngx, grpc_up):
    start(ngx, grpc_up)
    lines = call(ngx, "kind=unary msg=ping timeout=3000 md=x-md-who:alice "
                      "md=X-MD-Case:Up")
    assert re.match(r"start status=0 token=[1-9]", lines[0]), lines
    # Envoy: a unary call that succeeds is one on_grpc_receive, nothing
    # else (the Rust SDK panics on metadata or a close for a call token)
    assert lines[1:] == ["message len=4 data=ping status=0"], lines
    calls = grpc_up.wait_outcome(1)
    assert len(calls) == 1
    assert calls[0]["method"] == "Unary"
    assert calls[0]["outcome"] == "ok"
    md = calls[0]["md"]
    assert md["x-md-who"] == "alice"
    assert md["x-md-case"] == "Up"          # names go lowercase on HTTP/2


def test_unary_big_message_both_ways(ngx, grpc_up):
    """A message over many DATA frames and flow-control windows, both
    ways: reassembled from the length prefix."""
    start(ngx, grpc_up)
    n = 3 * 1024 * 1024 + 17
    lines = call(ngx, "kind=unary size=%d timeout=10000" % n)
    assert lines[1] == "message len=%d sum=%d status=0" % (
        n, checksum(pattern(n))), lines


def test_unary_deadline_reaches_server(ngx, grpc_up):
    start(ngx, grpc_up)
    call(ngx, "kind=unary timeout=5000")
    calls = grpc_up.wait_outcome(1)
    # grpc-timeout 5000m; the server sees what is left of it
    assert calls[0]["outcome"] == "ok"


def test_unary_error_status_and_message(ngx, grpc_up):
    start(ngx, grpc_up)
    # grpc-message is percent-encoded on the wire and decoded for the plugin
    lines = call(ngx, "kind=unary md=x-status:7 md=x-message:100%_sure")
    assert lines[1:] == ["close status=7 code=7 message=100%_sure"], lines


def test_unary_unknown_method_unimplemented(ngx, grpc_up):
    start(ngx, grpc_up)
    lines = call(ngx, "kind=unary method=Nope")
    assert len(lines) == 2, lines
    assert lines[1].startswith("close status=12 code=12 "), lines


def test_stream_bidirectional(ngx, grpc_up):
    start(ngx, grpc_up)
    lines = call(ngx, "kind=stream send=one,two,three md=x-md-k:v")
    assert lines[0].startswith("start status=0"), lines
    initial = line(lines, "initial ")
    assert "x-stream=open" in initial
    assert ":status=200" in initial
    assert [l for l in lines if l.startswith("message")] == [
        "message len=8 data=echo:one status=0",
        "message len=8 data=echo:two status=0",
        "message len=10 data=echo:three status=0"], lines
    trailing = line(lines, "trailing ")
    assert "x-count=3" in trailing
    assert "grpc-status=0" in trailing
    assert lines[-1] == "close status=0 code=0 message=", lines
    # order: initial, messages, trailing, close
    kinds = [l.split(" ")[0] for l in lines]
    assert kinds == ["start", "initial", "message", "message", "message",
                     "trailing", "close"], lines
    calls = grpc_up.wait_outcome(1)
    assert calls[0]["outcome"] == "ok 3"
    assert calls[0]["md"]["x-md-k"] == "v"


def test_stream_half_close_with_grpc_close(ngx, grpc_up):
    start(ngx, grpc_up)
    lines = call(ngx, "kind=stream send=a,b end=close")
    assert "half-close status=0" in lines
    assert "x-count=2" in line(lines, "trailing ")
    assert lines[-1] == "close status=0 code=0 message="
    assert grpc_up.wait_outcome(1)[0]["outcome"] == "ok 2"


def test_stream_cancel(ngx, grpc_up):
    """After the first echo the plugin cancels: the server sees the stream
    reset, and the plugin hears nothing more."""
    start(ngx, grpc_up)
    lines = call(ngx, "kind=stream send=a,b,c end=none cancel_after=1")
    assert lines[-2] == "message len=6 data=echo:a status=0", lines
    assert lines[-1] == "cancel status=0", lines
    calls = grpc_up.wait_outcome(1)
    assert calls[0]["outcome"].startswith("cancelled"), calls
    ngx.settle(0.5)
    assert "late " not in ngx.error_log()


def test_unary_cancel_at_once(ngx, grpc_up):
    """Cancelled in the hostcall's wake: the stream is reset before or
    after its HEADERS left; either way no answer reaches the plugin."""
    start(ngx, grpc_up)
    lines = call(ngx, "kind=unary md=x-delay:0.5 cancel_after=0")
    assert lines[1:] == ["cancel status=0"], lines
    time.sleep(1)
    assert "grpc_callout: late" not in ngx.error_log()
    assert "grpc_callout: message" not in ngx.error_log()
    assert all(c["outcome"] == "cancelled" for c in grpc_up.calls), \
        grpc_up.calls
    # the connection is fine for the next call
    assert call(ngx, "kind=unary msg=next")[1] == \
        "message len=4 data=next status=0"


def test_unary_timeout_deadline_exceeded(ngx, grpc_up):
    start(ngx, grpc_up)
    t0 = time.time()
    lines = call(ngx, "kind=unary timeout=300 md=x-delay:2")
    took = time.time() - t0
    # the server enforces grpc-timeout too: whichever side is first
    assert len(lines) == 2, lines
    assert lines[1].lower() == \
        "close status=4 code=4 message=deadline exceeded", lines
    assert took < 1.5, took


def test_timeout_silent_server(ngx, grpc_up):
    """A server that accepts and never answers: our own timer ends the
    call with DEADLINE_EXCEEDED and resets the stream."""
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(8)
    try:
        start(ngx, grpc_up)
        t0 = time.time()
        lines = call(ngx, "kind=unary timeout=400 up=127.0.0.1:%d"
                     % hole.getsockname()[1])
        took = time.time() - t0
        assert lines[1:] == [
            "close status=4 code=4 message=deadline exceeded"], lines
        assert 0.35 < took < 1.5, took
        ngx.wait_log("proxy_wasm: grpc call %s timed out"
                     % lines[0].split("token=")[1], exact=False)
    finally:
        hole.close()


def test_refused_port_unavailable(ngx, grpc_up):
    start(ngx, grpc_up)
    lines = call(ngx, "kind=unary up=nowhere")
    assert len(lines) == 2, lines
    assert re.match(r"close status=14 code=14 message=connect\(\) failed",
                    lines[1]), lines
    # a stream too, to an IP literal
    lines = call(ngx, "kind=stream up=127.0.0.1:%d send=a" % free_port())
    assert lines[-1].startswith("close status=14 code=14 "), lines


def test_ip_literal_target(ngx, grpc_up):
    start(ngx, grpc_up)
    lines = call(ngx, "kind=unary up=127.0.0.1:%d msg=lit" % grpc_up.port)
    assert lines[1:] == ["message len=3 data=lit status=0"], lines


def test_unknown_upstream(ngx, grpc_up):
    start(ngx, grpc_up)
    # Envoy answers an unknown cluster with PARSE_FAILURE (the core maps
    # the host's "not found" so)
    lines = call(ngx, "kind=unary up=no_such_upstream")
    assert lines == ["start status=%d token=0" % PARSE_FAILURE], lines
    ngx.wait_log('unknown upstream "no_such_upstream"', exact=False)
    # a host name needs a resolver: refused with the reason logged
    lines = call(ngx, "kind=unary up=grpc.example.invalid:50051")
    assert lines == ["start status=%d token=0" % BAD_ARGUMENT], lines
    ngx.wait_log("no resolver defined to resolve grpc.example.invalid",
                 exact=False)
    lines = call(ngx, "kind=stream up=127.0.0.1:notaport")
    assert lines == ["start status=%d token=0" % BAD_ARGUMENT], lines
    # gRPC has no default port: an address without one is refused, a
    # name without one is an unknown upstream block
    for target in ("127.0.0.1", "[::1]"):
        lines = call(ngx, "kind=unary up=%s" % target)
        assert lines == ["start status=%d token=0" % BAD_ARGUMENT], lines
    ngx.wait_log('grpc call to "[::1]": a port is required', exact=False)
    lines = call(ngx, "kind=unary up=echo.test")
    assert lines == ["start status=%d token=0" % PARSE_FAILURE], lines
    lines = call(ngx, "kind=unary up=127.0.0.1:%d/path" % grpc_up.port)
    assert lines == ["start status=%d token=0" % BAD_ARGUMENT], lines


def test_connection_reused(ngx, grpc_up):
    """Sequential and concurrent calls share one HTTP/2 connection."""
    import threading
    start(ngx, grpc_up)
    for i in range(4):
        assert call(ngx, "kind=unary msg=m%d" % i)[1] == \
            "message len=2 data=m%d status=0" % i
    call(ngx, "kind=stream send=x")
    results = []

    def one(i):
        results.append(call(ngx, "kind=unary msg=c%d md=x-delay:0.3" % i))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(6)]
    t0 = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    took = time.time() - t0
    assert sorted(r[1] for r in results) == sorted(
        "message len=2 data=c%d status=0" % i for i in range(6))
    # in flight at once, multiplexed
    assert took < 1.5, took
    assert len(grpc_up.calls) == 11
    assert len(set(grpc_up.peers)) == 1, grpc_up.peers


def test_connection_lost_then_new_one(ngx, grpc_up):
    """The server goes away between calls: the next call opens a new
    connection (a restarted server on the same port)."""
    up = GrpcUpstream().start()
    try:
        start(ngx, grpc_up, http=http_conf(grpc_up)
              + "upstream other { server 127.0.0.1:%d; }\n" % up.port)
        assert call(ngx, "kind=unary up=other msg=a")[1] == \
            "message len=1 data=a status=0"
        port = up.port
        up.stop()
        time.sleep(0.3)
        lines = call(ngx, "kind=unary up=other msg=b")
        assert lines[1].startswith("close status=14 "), lines
        up = GrpcUpstream(port).start()
        assert call(ngx, "kind=unary up=other msg=c")[1] == \
            "message len=1 data=c status=0"
    finally:
        up.stop()


def test_auth_plugin_allows_and_denies(ngx, grpc_up):
    start(ngx, grpc_up, "auth grpc")
    r = ngx.get("/auth", headers={"x-token": "letmein"})
    assert r.status == 200, r
    assert r.echo_header("x-auth") == "ok"
    assert r.json()["path"] == "/auth"

    r = ngx.get("/auth", headers={"x-token": "guess"})
    assert r.status == 403, r
    assert "data=guess" in r.text

    # the service refuses: a close with its status
    r = ngx.get("/auth", headers={"x-token": "letmein",
                                  "x-status": "16"})
    assert r.status == 403, r
    assert "close status=16" in r.text

    # the service is slow: the call's timeout (2 s) denies
    t0 = time.time()
    r = ngx.get("/auth", headers={"x-token": "letmein", "x-delay": "3"})
    assert r.status == 403, r
    assert "close status=4 " in r.text
    assert time.time() - t0 < 2.9


def test_auth_plugin_upstream_down(ngx, grpc_up):
    start(ngx, grpc_up, "auth nowhere")
    r = ngx.get("/auth", headers={"x-token": "letmein"})
    assert r.status == 403, r
    assert "close status=14 " in r.text


def test_client_gone_during_slow_call(ngx, grpc_up):
    """The client leaves while the call is in flight: no callback for the
    finished request, no alert, the worker goes on."""
    start(ngx, grpc_up)
    s = socket.create_connection(("127.0.0.1", ngx.port))
    s.sendall(b"GET /gone HTTP/1.1\r\nHost: x\r\n"
              b"x-grpc: kind=unary md=x-delay:1 timeout=5000\r\n\r\n")
    time.sleep(0.3)
    s.close()
    s = socket.create_connection(("127.0.0.1", ngx.port))
    s.sendall(b"GET /gone HTTP/1.1\r\nHost: x\r\n"
              b"x-grpc: kind=stream send=a end=none\r\n\r\n")
    time.sleep(0.3)
    s.close()
    time.sleep(1.2)
    assert "grpc_callout: late" not in ngx.error_log()
    # the end of the request reset both streams
    calls = grpc_up.wait_outcome(2)
    assert [c["outcome"][:9] for c in calls] == ["cancelled"] * 2, calls
    # still serving, on the same connection to the server
    assert call(ngx, "kind=unary msg=after")[1] == \
        "message len=5 data=after status=0"
    assert not ngx.bad_lines()


def test_many_calls_no_leak_of_connections(ngx, grpc_up):
    """Fifty calls of all outcomes: one connection, the worker healthy."""
    start(ngx, grpc_up)
    for i in range(10):
        call(ngx, "kind=unary msg=x%d" % i)
        call(ngx, "kind=unary md=x-status:5")
        call(ngx, "kind=stream send=a,b")
        call(ngx, "kind=stream send=a end=none cancel_after=1")
        call(ngx, "kind=unary timeout=50 md=x-delay:0.2")
    peers = set(grpc_up.peers)
    assert len(peers) == 1, peers


def test_worker_quits_with_open_stream(ngx, grpc_up):
    """A stream left open when nginx quits gracefully: closed, no
    "open socket left" alert."""
    start(ngx, grpc_up, level="info")
    s = socket.create_connection(("127.0.0.1", ngx.port))
    s.sendall(b"GET /open HTTP/1.1\r\nHost: x\r\n"
              b"x-grpc: kind=stream send=a end=none\r\n\r\n")
    time.sleep(0.5)
    assert ngx.quit(timeout=10) == 0
    s.close()
    assert not ngx.bad_lines(), ngx.bad_lines()


def test_in_flight_gauge(ngx, grpc_up):
    """callouts_in_flight counts gRPC calls and streams until they end,
    whatever the end (answer, cancel, refused, request gone)."""
    import threading
    start(ngx, grpc_up, locations=METRICS_LOC)
    out = []
    t = threading.Thread(target=lambda: out.append(
        call(ngx, "kind=unary md=x-delay:1 timeout=5000")))
    t.start()
    time.sleep(0.5)
    families, _ = scrape(ngx)
    assert sample(families, "pw_host_callouts_in_flight") == 1
    t.join()
    assert out[0][1].startswith("message len=5"), out
    call(ngx, "kind=stream send=a,b")
    call(ngx, "kind=stream send=a end=none cancel_after=1")
    call(ngx, "kind=unary up=nowhere")
    call(ngx, "kind=unary timeout=50 md=x-delay:0.2")
    s = socket.create_connection(("127.0.0.1", ngx.port))
    s.sendall(b"GET /gone HTTP/1.1\r\nHost: x\r\n"
              b"x-grpc: kind=stream send=a end=none\r\n\r\n")
    time.sleep(0.3)
    s.close()
    ngx.settle(0.3)
    families, _ = scrape(ngx)
    assert sample(families, "pw_host_callouts_in_flight") == 0


def test_call_from_on_configure(ngx, grpc_up):
    """A call from proxy_on_configure (the instance still starting) is
    answered on the root context once the worker runs."""
    start(ngx, grpc_up, "configure grpc")
    ngx.wait_log("grpc_callout: configure call status=0", exact=False)
    ngx.wait_log("grpc_callout: configure answer data=from-configure",
                 exact=False)
    assert grpc_up.wait_outcome(1)[0]["outcome"] == "ok"


# ---- upstream blocks of several servers -------------------------------------


def test_upstream_block_servers_in_turn(ngx, grpc_up):
    """As HTTP calls: the block's primary servers one call each, in turn
    (backup and down servers never); one connection per server."""
    up2 = GrpcUpstream().start()
    try:
        start(ngx, grpc_up, http=http_conf(grpc_up)
              + "upstream two { server 127.0.0.1:%d; server 127.0.0.1:%d;\n"
                "  server 127.0.0.1:%d backup; server 127.0.0.1:%d down; }\n"
              % (grpc_up.port, up2.port, free_port(), free_port()))
        for i in range(6):
            assert call(ngx, "kind=unary up=two msg=t%d" % i)[1] == \
                "message len=2 data=t%d status=0" % i
        assert len(grpc_up.calls) == 3, grpc_up.calls
        assert len(up2.calls) == 3, up2.calls
        assert len(set(grpc_up.peers)) == 1, grpc_up.peers
        assert len(set(up2.peers)) == 1, up2.peers
    finally:
        up2.stop()


# ---- host names through nginx's resolver ------------------------------------

from test_callout_http import TinyDns  # noqa: E402


@pytest.fixture
def dns():
    """A DNS server: A 127.0.0.1 for *.test, NXDOMAIN for the rest."""
    d = TinyDns()
    yield d
    d.stop()


@pytest.fixture
def silent_dns():
    """A DNS server that never answers."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    yield s.getsockname()[1]
    s.close()


def resolver(port, timeout="2s", extra=""):
    return "resolver 127.0.0.1:%d ipv6=off %s; resolver_timeout %s;\n" % (
        port, extra, timeout)


def start_dns(ngx, gup, port, config="", timeout="2s", extra="", **kw):
    start(ngx, gup, config,
          http=http_conf(gup) + resolver(port, timeout, extra), **kw)


def test_host_name_unary(ngx, grpc_up, dns):
    start_dns(ngx, grpc_up, dns.port)
    lines = call(ngx, "kind=unary up=echo.test:%d msg=byname md=x-md-a:b"
                 % grpc_up.port)
    assert lines[1:] == ["message len=6 data=byname status=0"], lines
    assert "echo.test" in dns.queries
    calls = grpc_up.wait_outcome(1)
    assert calls[0]["outcome"] == "ok"
    assert calls[0]["md"]["x-md-a"] == "b"


def test_host_name_stream_sends_before_connected(ngx, grpc_up, dns):
    """The plugin sends right after opening, while the name is still being
    resolved: the messages wait and go once connected."""
    start_dns(ngx, grpc_up, dns.port)
    lines = call(ngx, "kind=stream up=echo.test:%d send=one,two"
                 % grpc_up.port)
    assert [l for l in lines if l.startswith("message")] == [
        "message len=8 data=echo:one status=0",
        "message len=8 data=echo:two status=0"], lines
    assert "x-count=2" in line(lines, "trailing ")
    assert lines[-1] == "close status=0 code=0 message=", lines


def test_host_name_nxdomain_unavailable(ngx, grpc_up, dns):
    start_dns(ngx, grpc_up, dns.port)
    lines = call(ngx, "kind=unary up=nowhere.invalid:%d" % grpc_up.port)
    assert lines[1:] == ["close status=14 code=14 message=nowhere.invalid "
                         "could not be resolved: Host not found"], lines
    ngx.wait_log("proxy_wasm: grpc: nowhere.invalid could not be resolved",
                 exact=False)
    lines = call(ngx, "kind=stream up=nowhere.invalid:%d send=a"
                 % grpc_up.port)
    assert lines[-1].startswith("close status=14 code=14 message=nowhere"), \
        lines
    assert "nowhere.invalid" in dns.queries
    assert grpc_up.calls == []


def test_host_name_resolver_in_location(ngx, grpc_up, dns):
    """During a request the location's resolver counts, as for HTTP calls:
    none in http{}, one in server{}."""
    ngx.start(wasm=GRPC, http=http_conf(grpc_up),
              server=pw("g", "") + "\n" + resolver(dns.port))
    lines = call(ngx, "kind=unary up=echo.test:%d msg=loc" % grpc_up.port)
    assert lines[1:] == ["message len=3 data=loc status=0"], lines


def test_host_name_without_resolver(ngx, grpc_up):
    start(ngx, grpc_up)
    lines = call(ngx, "kind=stream up=echo.test:%d" % grpc_up.port)
    assert lines == ["start status=%d token=0" % BAD_ARGUMENT], lines
    ngx.wait_log('grpc call to "echo.test:%d": no resolver defined'
                 % grpc_up.port, exact=False)


@pytest.mark.no_valgrind
def test_host_name_resolver_timeout(ngx, grpc_up, silent_dns):
    start_dns(ngx, grpc_up, silent_dns, timeout="700ms")
    t0 = time.time()
    lines = call(ngx, "kind=unary up=echo.test:%d" % grpc_up.port)
    took = time.time() - t0
    assert lines[1:] == ["close status=14 code=14 message=echo.test could "
                         "not be resolved: Operation timed out"], lines
    assert 0.6 < took < 2.5, took
    assert grpc_up.calls == []


def test_host_name_cancel_during_resolution(ngx, grpc_up, silent_dns):
    """Cancelled, or its request gone, while the name is being resolved:
    no callback, the resolution is dropped, the worker goes on."""
    start_dns(ngx, grpc_up, silent_dns, timeout="1s")
    lines = call(ngx, "kind=unary up=echo.test:%d cancel_after=0"
                 % grpc_up.port)
    assert lines[1:] == ["cancel status=0"], lines
    s = socket.create_connection(("127.0.0.1", ngx.port))
    s.sendall(b"GET /gone HTTP/1.1\r\nHost: x\r\n"
              b"x-grpc: kind=stream up=echo.test:%d send=a end=none\r\n\r\n"
              % grpc_up.port)
    time.sleep(0.3)
    s.close()
    # past the resolver's timeout: nothing came to the plugin
    ngx.settle(1.5)
    log = ngx.error_log()
    assert "grpc_callout: late" not in log
    assert "could not be resolved" not in log
    assert grpc_up.calls == []
    # the worker goes on
    lines = call(ngx, "kind=unary up=127.0.0.1:%d msg=after" % grpc_up.port)
    assert lines[1:] == ["message len=5 data=after status=0"], lines
    assert not ngx.bad_lines()


def test_host_name_calls_share_a_connection(ngx, grpc_up, dns):
    """Calls by the same name share one connection: those made while the
    first resolution runs and those made after it."""
    import threading
    start_dns(ngx, grpc_up, dns.port)
    target = "up=echo.test:%d" % grpc_up.port
    results = []

    def one(i):
        results.append(call(ngx, "kind=unary %s msg=c%d" % (target, i)))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r[1] for r in results) == sorted(
        "message len=2 data=c%d status=0" % i for i in range(4))
    for i in range(2):
        assert call(ngx, "kind=unary %s msg=s%d" % (target, i))[1] == \
            "message len=2 data=s%d status=0" % i
    call(ngx, "kind=stream %s send=x" % target)
    assert len(grpc_up.calls) == 7
    assert len(set(grpc_up.peers)) == 1, grpc_up.peers


def test_host_name_connection_lost_then_resolved_again(ngx, grpc_up, dns):
    """A live connection serves its name without asking DNS again, even
    once the answer expired (valid=1s); the server behind the name goes
    away: the call fails with UNAVAILABLE; once it is back the next call
    resolves the name again and connects anew."""
    up = GrpcUpstream().start()
    try:
        start_dns(ngx, grpc_up, dns.port, extra="valid=1s")
        target = "up=other.test:%d" % up.port
        assert call(ngx, "kind=unary %s msg=a" % target)[1] == \
            "message len=1 data=a status=0"
        assert dns.queries.count("other.test") == 1
        # nginx counts validity in whole seconds
        time.sleep(2.2)
        assert call(ngx, "kind=unary %s msg=b" % target)[1] == \
            "message len=1 data=b status=0"
        assert dns.queries.count("other.test") == 1
        port = up.port
        up.stop()
        time.sleep(0.3)
        lines = call(ngx, "kind=unary %s msg=c" % target)
        assert lines[1].startswith("close status=14 "), lines
        up = GrpcUpstream(port).start()
        assert call(ngx, "kind=unary %s msg=d" % target)[1] == \
            "message len=1 data=d status=0"
        # the connection closed with the server: a new one resolved again
        # (for c, or for d when c still found the old one closing)
        assert dns.queries.count("other.test") >= 2
        assert len(up.calls) == 1
    finally:
        up.stop()


def test_host_name_from_on_configure(ngx, grpc_up, dns):
    """Outside a request the http{} block's resolver counts."""
    start_dns(ngx, grpc_up, dns.port,
              "configure echo.test:%d" % grpc_up.port)
    ngx.wait_log("grpc_callout: configure answer data=from-configure",
                 exact=False)
    assert "echo.test" in dns.queries


# ---- TLS (grpcs) ------------------------------------------------------------

from grpc_upstream import TlsFront  # noqa: E402
# the certificates of tls_upstream.make_certs: ca.pem; good (localhost,
# 127.0.0.1, by the CA), self (self-signed), wrong (wrong.example, by the CA)
from test_callout_tls import certs  # noqa: E402,F401


def tls_server(certs, name):
    return GrpcUpstream(tls=("%s/%s.pem" % (certs, name),
                             "%s/%s.key" % (certs, name))).start()


@pytest.fixture(scope="module")
def gtls(certs):
    """A gRPC server over TLS with a certificate of the test CA."""
    up = tls_server(certs, "good")
    yield up
    up.stop()


@pytest.fixture
def tls_up(gtls):
    gtls.reset()
    return gtls


def start_tls(ngx, gup, certs, *wasm, http="", ca=True, **kw):
    """nginx with the test CA trusted and the wasm{} lines given; upstream
    blocks grpc (plain) and those of http."""
    lines = [GRPC]
    if ca:
        lines.append("tls_trusted_certificate %s/ca.pem;" % certs)
    ngx.start(wasm="\n".join(lines + list(wasm)),
              http=http_conf(gup, http), server=pw("g", ""), **kw)


def block(name, port):
    return "upstream %s { server 127.0.0.1:%d; }\n" % (name, port)


def test_tls_unary_upstream_block(ngx, grpc_up, tls_up, certs):
    """A block listed in tls_upstream, verified (chain and name) against
    the test CA: the answer as over plain text."""
    start_tls(ngx, grpc_up, certs,
              "tls_upstream secure server_name=localhost;",
              http=block("secure", tls_up.port))
    lines = call(ngx, "kind=unary up=secure msg=overtls timeout=3000 "
                      "md=x-md-who:alice")
    assert lines[1:] == ["message len=7 data=overtls status=0"], lines
    calls = tls_up.wait_outcome(1)
    assert calls[0]["outcome"] == "ok"
    assert calls[0]["md"]["x-md-who"] == "alice"
    assert "tls: " not in ngx.error_log()
    assert "TLS callouts do not verify" not in ngx.error_log()
    # nothing went in plain text to the plain server
    assert grpc_up.calls == []


def test_tls_stream_both_ways(ngx, grpc_up, tls_up, certs):
    """https://IP:port: a bidi stream, messages both ways, trailers; the
    certificate checked against the address."""
    start_tls(ngx, grpc_up, certs)
    lines = call(ngx, "kind=stream up=https://127.0.0.1:%d send=one,two"
                 % tls_up.port)
    assert "x-stream=open" in line(lines, "initial ")
    assert [l for l in lines if l.startswith("message")] == [
        "message len=8 data=echo:one status=0",
        "message len=8 data=echo:two status=0"], lines
    trailing = line(lines, "trailing ")
    assert "x-count=2" in trailing and "grpc-status=0" in trailing
    assert lines[-1] == "close status=0 code=0 message=", lines
    assert tls_up.wait_outcome(1)[0]["outcome"] == "ok 2"


def test_tls_big_message(ngx, grpc_up, tls_up, certs):
    """Many TLS records and HTTP/2 windows each way."""
    start_tls(ngx, grpc_up, certs)
    n = 2 * 1024 * 1024 + 5
    lines = call(ngx, "kind=unary up=https://127.0.0.1:%d size=%d "
                      "timeout=10000" % (tls_up.port, n))
    assert lines[1] == "message len=%d sum=%d status=0" % (
        n, checksum(pattern(n))), lines


def test_tls_calls_share_a_connection(ngx, grpc_up, tls_up, certs):
    import threading
    start_tls(ngx, grpc_up, certs, "tls_upstream 127.0.0.1:%d;"
              % tls_up.port)
    target = "up=127.0.0.1:%d" % tls_up.port
    results = []

    def one(i):
        results.append(call(ngx, "kind=unary %s msg=c%d md=x-delay:0.3"
                            % (target, i)))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r[1] for r in results) == sorted(
        "message len=2 data=c%d status=0" % i for i in range(3))
    assert call(ngx, "kind=unary %s msg=s" % target)[1] == \
        "message len=1 data=s status=0"
    # written with https:// the target is the same: the same connection
    call(ngx, "kind=stream up=https://127.0.0.1:%d send=x" % tls_up.port)
    assert len(tls_up.calls) == 5
    assert len(set(tls_up.peers)) == 1, tls_up.peers


def close_line(lines):
    assert len(lines) >= 2 and lines[-1].startswith("close "), lines
    return lines[-1]


def test_tls_self_signed_unavailable(ngx, grpc_up, certs):
    """An unknown CA: every call queued on the connection ends with
    UNAVAILABLE and the cause, logged at warn, counted as tls."""
    import threading
    up = tls_server(certs, "self")
    try:
        start_tls(ngx, grpc_up, certs, locations=METRICS_LOC)
        target = "up=https://127.0.0.1:%d" % up.port
        out = []
        threads = [threading.Thread(target=lambda c=c: out.append(
            call(ngx, "%s %s" % (c, target))))
            for c in ("kind=unary", "kind=stream send=a")]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        want = ("close status=14 code=14 message=tls: certificate verify "
                "failed: self-signed certificate (18)")
        assert sorted(close_line(l) for l in out) == [want] * 2, out
        ngx.wait_log("[warn]", exact=False)
        assert re.search(r"\[warn\].*grpc call \d+ to 127\.0\.0\.1:%d "
                         r"failed: tls: certificate verify failed"
                         % up.port, ngx.error_log()), ngx.error_log()
        families, _ = scrape(ngx)
        assert sample(families, "pw_host_callout_failures_tls_total") == 2
        assert up.calls == []
    finally:
        up.stop()


def test_tls_wrong_name(ngx, grpc_up, certs):
    """A certificate for wrong.example: refused with tls_verify_host on,
    accepted with it off (the chain still verified)."""
    up = tls_server(certs, "wrong")
    try:
        start_tls(ngx, grpc_up, certs)
        lines = call(ngx, "kind=unary up=https://127.0.0.1:%d" % up.port)
        assert close_line(lines) == (
            'close status=14 code=14 message=tls: hostname mismatch: the '
            'certificate is not for "127.0.0.1"'), lines
        assert up.calls == []
        ngx.stop()
        start_tls(ngx, grpc_up, certs, "tls_verify_host off;",
                  "tls_no_verify_warn on;")
        lines = call(ngx, "kind=unary up=https://127.0.0.1:%d msg=anyway"
                     % up.port)
        assert lines[1:] == ["message len=6 data=anyway status=0"], lines
        assert "TLS callouts do not verify" not in ngx.error_log()
    finally:
        up.stop()


def test_tls_unknown_ca_without_trusted_certificate(ngx, grpc_up, tls_up,
                                                    certs):
    """Without tls_trusted_certificate the system's store knows no test
    CA."""
    start_tls(ngx, grpc_up, certs, "tls_upstream 127.0.0.1:%d;"
              % tls_up.port, ca=False)
    lines = call(ngx, "kind=unary up=127.0.0.1:%d" % tls_up.port)
    assert close_line(lines).startswith(
        "close status=14 code=14 message=tls: certificate verify failed: "
        ), lines
    assert tls_up.calls == []


def test_tls_server_name_is_sni(ngx, grpc_up, certs):
    """server_name= of tls_upstream is the SNI and the name checked; an
    address target sends none (grpcio does not show the SNI: a front with
    Python's ssl module records it)."""
    front = TlsFront("%s/good.pem" % certs, "%s/good.key" % certs,
                     grpc_up.port).start()
    try:
        start_tls(ngx, grpc_up, certs,
                  "tls_upstream front server_name=localhost;",
                  http=block("front", front.port))
        lines = call(ngx, "kind=unary up=front msg=sni")
        assert lines[1:] == ["message len=3 data=sni status=0"], lines
        lines = call(ngx, "kind=unary up=https://127.0.0.1:%d msg=ip"
                     % front.port)
        assert lines[1:] == ["message len=2 data=ip status=0"], lines
        assert front.snis == ["localhost", None], front.snis
        assert front.alpns == ["h2", "h2"], front.alpns
    finally:
        front.stop()


def test_tls_client_certificate(ngx, grpc_up, certs):
    """tls_certificate / tls_certificate_key: a front that requires a
    client certificate of the test CA sees ours; without them the call
    fails and nothing reaches the server."""
    front = TlsFront("%s/good.pem" % certs, "%s/good.key" % certs,
                     grpc_up.port, client_ca="%s/ca.pem" % certs).start()
    try:
        start_tls(ngx, grpc_up, certs,
                  "tls_certificate %s/client.pem;" % certs,
                  "tls_certificate_key %s/client.key;" % certs)
        lines = call(ngx, "kind=unary up=https://127.0.0.1:%d msg=mtls"
                     % front.port)
        assert lines[1:] == ["message len=4 data=mtls status=0"], lines
        assert front.client_cns == ["pw test client"], front.client_cns
        assert front.failed == 0
        ngx.stop()
        grpc_up.reset()
        start_tls(ngx, grpc_up, certs)
        lines = call(ngx, "kind=unary up=https://127.0.0.1:%d msg=no"
                     % front.port)
        assert lines[-1].startswith("close status=14 code=14 "), lines
        assert front.failed >= 1
        assert front.client_cns == ["pw test client"]
        assert grpc_up.calls == []
    finally:
        front.stop()


def test_tls_server_without_h2_alpn(ngx, grpc_up, certs):
    """A TLS server that chooses no ALPN protocol is not spoken HTTP/2
    to: UNAVAILABLE with the cause."""
    front = TlsFront("%s/good.pem" % certs, "%s/good.key" % certs,
                     grpc_up.port, alpn=None).start()
    try:
        start_tls(ngx, grpc_up, certs,
                  "tls_upstream front server_name=localhost;",
                  http=block("front", front.port), locations=METRICS_LOC)
        lines = call(ngx, "kind=stream up=front send=a")
        assert close_line(lines) == (
            "close status=14 code=14 message=tls: the server did not "
            "choose HTTP/2 (no ALPN protocol)"), lines
        # the front saw the handshake (its SNI callback runs before the
        # server's hello; the rest of its view may come after our close)
        assert front.snis == ["localhost"], front.snis
        assert grpc_up.calls == []
        families, _ = scrape(ngx)
        assert sample(families, "pw_host_callout_failures_tls_total") == 1
    finally:
        front.stop()


def test_tls_to_a_plain_server(ngx, grpc_up, certs):
    """tls_upstream on an h2c server: the handshake fails, UNAVAILABLE."""
    start_tls(ngx, grpc_up, certs, "tls_upstream grpc;")
    lines = call(ngx, "kind=unary")
    assert close_line(lines).startswith(
        "close status=14 code=14 message=tls: handshake failed"), lines


def test_tls_and_plain_to_one_port_do_not_share(ngx, grpc_up, certs):
    """The same IP:port plain and with https://: two connections, each
    kept for its own kind."""
    front = TlsFront("%s/good.pem" % certs, "%s/good.key" % certs,
                     grpc_up.port, mixed=True).start()
    try:
        start_tls(ngx, grpc_up, certs)
        for i in range(2):
            for scheme in ("", "https://"):
                lines = call(ngx, "kind=unary up=%s127.0.0.1:%d msg=%s%d"
                             % (scheme, front.port, scheme[:5] or "h2c", i))
                assert lines[1].startswith("message len="), lines
        assert front.plain == 1
        assert front.snis == [None]
        assert len(grpc_up.calls) == 4
    finally:
        front.stop()



def test_tls_silent_server_bounded_by_the_call_timeout(ngx, grpc_up, certs):
    """A server that accepts and never answers the hello: the unary call's
    timeout ends it (DEADLINE_EXCEEDED) and the connection, its last
    call gone, is closed."""
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(8)
    try:
        start_tls(ngx, grpc_up, certs)
        t0 = time.time()
        lines = call(ngx, "kind=unary timeout=400 up=https://127.0.0.1:%d"
                     % hole.getsockname()[1])
        assert lines[1:] == [
            "close status=4 code=4 message=deadline exceeded"], lines
        assert time.time() - t0 < 1.5 * SLOW
        s, _ = hole.accept()
        s.settimeout(3)
        hello = s.recv(1)
        assert hello == b"\x16"
        while s.recv(4096):
            pass
        s.close()
        assert not ngx.bad_lines()
    finally:
        hole.close()


@pytest.mark.no_valgrind
def test_tls_silent_server_stream_handshake_times_out(ngx, grpc_up, certs):
    """A stream has no timeout of its own: the connect timeout (10 s)
    bounds the handshake, then UNAVAILABLE with the cause."""
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(8)
    try:
        start_tls(ngx, grpc_up, certs, locations=METRICS_LOC)
        t0 = time.time()
        lines = call(ngx, "kind=stream send=a up=https://127.0.0.1:%d"
                     % hole.getsockname()[1], timeout=20)
        took = time.time() - t0
        assert close_line(lines) == ("close status=14 code=14 message=tls: "
                                     "handshake timed out"), lines
        assert 9.5 < took < 12, took
        families, _ = scrape(ngx)
        assert sample(families, "pw_host_callout_failures_tls_total") == 1
    finally:
        hole.close()


def test_call_made_in_on_log_ends_with_the_request(ngx, grpc_up):
    """A gRPC call dispatched from on_log, on the stream's context, is
    cancelled with the request (as an HTTP one): the server sees it
    cancelled or never, nothing is delivered, no alert, and the worker
    serves the next request."""
    ngx.start(wasm=module("t", "testplugin.wasm"), http=http_conf(grpc_up),
              server=pw("t", "on log: grpc_call grpc test.Echo Unary 5000 "
                             "from-log x-delay=1\n"
                             "on grpc_close: trace"))
    for i in range(3):
        assert ngx.get("/r%d" % i).status == 200
    ngx.wait_log("status proxy_grpc_call = 0", count=3)
    time.sleep(1.5 * SLOW)
    assert ngx.get("/after").status == 200
    assert ngx.log_count("callback grpc_close") == 0
    assert all(c["outcome"] in (None, "cancelled") or
               c["outcome"].startswith("cancelled")
               for c in grpc_up.calls), grpc_up.calls
    assert not ngx.bad_lines()
