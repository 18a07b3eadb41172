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

from conftest import module, pw
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
    # a host name needs a resolver: refused with the reason logged
    lines = call(ngx, "kind=unary up=grpc.example.invalid:50051")
    assert lines == ["start status=%d token=0" % BAD_ARGUMENT], lines
    ngx.wait_log("host names are not resolved", exact=False)
    lines = call(ngx, "kind=stream up=127.0.0.1:notaport")
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
