#!/usr/bin/python3
"""A real gRPC server (Debian's python3-grpcio) for the nginx gRPC callout
tests. Generic handlers on raw bytes: no .proto, no generated code.

Methods of service "test.Echo":

  Unary    echoes the request message. Request metadata steers it:
             x-status: N     end with gRPC status N (not OK: no message)
             x-message: T    the grpc-message sent with a non-OK status
             x-delay: S      sleep S seconds (float) first
           The initial metadata carries "x-echo-<key>: <value>" for every
           x-md-* key of the request, and "x-timeout" (the deadline the
           server saw, in ms, or "none").
  Stream   bidirectional: echoes each message as "echo:<message>" as it
           comes; when the client half-closes, ends with trailing metadata
           "x-count: N" (messages seen) and status OK. x-delay applies
           before each echo.

Every call is recorded (GrpcUpstream.calls: method, metadata, outcome) and
every peer address (GrpcUpstream.peers), so a test can count the HTTP/2
connections nginx used. GrpcUpstream(tls=(cert, key)) serves over TLS
(grpcio's own, ALPN h2). Run standalone: python3 grpc_upstream.py [PORT]

TlsFront(cert, key, backend_port) is a TLS front for a plain GrpcUpstream,
with Python's ssl module, for what grpcio does not show: it records the
SNI of each handshake (None: none sent) and the ALPN protocol chosen, can
refuse to choose h2 (alpn=None), and with mixed=True also passes plain
connections through (told apart by the first byte, 0x16 for TLS).
"""
import select
import socket
import ssl
import sys
import threading
import time
from concurrent import futures

import grpc

from tls_upstream import server_context


class GrpcUpstream:
    def __init__(self, port=0, tls=None):
        self.port = port
        self.tls = tls         # (cert file, key file), or None
        self.server = None
        self.lock = threading.Lock()
        self.calls = []        # dicts: method, md, outcome
        self.peers = []        # peer of each call, in order

    # ---- recording ----------------------------------------------------

    def _record(self, method, context):
        md = {k: v for k, v in context.invocation_metadata()}
        call = {"method": method, "md": md, "outcome": None,
                "peer": context.peer()}
        with self.lock:
            self.calls.append(call)
            self.peers.append(context.peer())

        def ended():
            # runs when the RPC terminates, a reset included
            time.sleep(0.05)
            if call["outcome"] is None:
                call["outcome"] = "cancelled"

        context.add_callback(ended)
        return call

    def reset(self):
        with self.lock:
            self.calls.clear()
            self.peers.clear()

    def wait_outcome(self, n=1, timeout=5):
        """Wait until n calls have an outcome; returns the calls."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            with self.lock:
                done = [c for c in self.calls if c["outcome"] is not None]
                if len(done) >= n:
                    return list(self.calls)
            time.sleep(0.02)
        with self.lock:
            return list(self.calls)

    # ---- methods ------------------------------------------------------

    @staticmethod
    def _delay(md):
        d = md.get("x-delay")
        if d:
            time.sleep(float(d))

    def unary(self, request, context):
        call = self._record("Unary", context)
        md = call["md"]
        echo = [("x-echo-" + k[5:], v) for k, v in md.items()
                if k.startswith("x-md-")]
        remaining = context.time_remaining()
        echo.append(("x-timeout", "none" if remaining is None
                     else str(int(remaining * 1000))))
        self._delay(md)
        if not context.is_active():
            call["outcome"] = "cancelled"
            return b""
        context.send_initial_metadata(echo)
        status = int(md.get("x-status", "0"))
        if status != 0:
            call["outcome"] = "status %d" % status
            context.abort(_code(status), md.get("x-message", ""))
        call["outcome"] = "ok"
        return request

    def stream(self, request_iterator, context):
        call = self._record("Stream", context)
        md = call["md"]
        context.send_initial_metadata([("x-stream", "open")])
        n = 0
        try:
            for msg in request_iterator:
                n += 1
                self._delay(md)
                yield b"echo:" + msg
        except Exception:
            pass
        # a reset may end the iterator before the RPC reads as inactive
        time.sleep(0.1)
        if not context.is_active():
            call["outcome"] = "cancelled after %d" % n
            return
        context.set_trailing_metadata([("x-count", str(n))])
        call["outcome"] = "ok %d" % n

    # ---- server -------------------------------------------------------

    def start(self):
        handler = grpc.method_handlers_generic_handler("test.Echo", {
            "Unary": grpc.unary_unary_rpc_method_handler(
                self.unary, request_deserializer=None,
                response_serializer=None),
            "Stream": grpc.stream_stream_rpc_method_handler(
                self.stream, request_deserializer=None,
                response_serializer=None),
        })
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=16),
                                  handlers=(handler,))
        addr = "127.0.0.1:%d" % self.port
        if self.tls:
            with open(self.tls[0], "rb") as f:
                cert = f.read()
            with open(self.tls[1], "rb") as f:
                key = f.read()
            self.port = self.server.add_secure_port(
                addr, grpc.ssl_server_credentials([(key, cert)]))
        else:
            self.port = self.server.add_insecure_port(addr)
        self.server.start()
        return self

    def stop(self):
        if self.server:
            self.server.stop(0)
            self.server = None


class TlsFront:
    def __init__(self, cert, key, backend_port, alpn=("h2",), mixed=False,
                 client_ca=None):
        self.backend_port = backend_port
        self.mixed = mixed
        self.ctx = server_context(cert, key, client_ca)
        if alpn:
            self.ctx.set_alpn_protocols(list(alpn))
        self.ctx.sni_callback = self._sni
        self.lock = threading.Lock()
        self.snis = []         # per handshake: the name, or None
        self.alpns = []        # per handshake: the protocol chosen, or None
        self.plain = 0         # plain connections passed through
        self.client_cns = []   # per handshake: the client's CN, or None
        self.failed = 0        # handshakes refused
        self.sock = None

    def _sni(self, sslobj, name, ctx):
        with self.lock:
            self.snis.append(name)

    def start(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def stop(self):
        if self.sock:
            self.sock.close()
            self.sock = None

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,),
                             daemon=True).start()

    def _serve(self, conn):
        conn.settimeout(10)
        try:
            first = conn.recv(1, socket.MSG_PEEK)
            if self.mixed and first != b"\x16":
                with self.lock:
                    self.plain += 1
            else:
                with self.lock:
                    n = len(self.snis)
                try:
                    conn = self.ctx.wrap_socket(conn, server_side=True)
                except (OSError, ssl.SSLError):
                    with self.lock:
                        self.failed += 1
                    raise
                cn = None
                for rdn in (conn.getpeercert() or {}).get("subject", ()):
                    cn = dict(rdn).get("commonName", cn)
                with self.lock:
                    if len(self.snis) == n:     # no SNI: no callback
                        self.snis.append(None)
                    self.alpns.append(conn.selected_alpn_protocol())
                    self.client_cns.append(cn)
            back = socket.create_connection(("127.0.0.1", self.backend_port))
        except (OSError, ssl.SSLError):
            conn.close()
            return
        self._pipe(conn, back)

    @staticmethod
    def _pipe(a, b):
        """Bytes both ways in one thread (an SSL socket is not for two)."""
        a.setblocking(False)
        b.setblocking(False)
        try:
            while True:
                ready, _, _ = select.select([a, b], [], [], 30)
                if not ready:
                    return
                for s in ready:
                    other = b if s is a else a
                    while True:
                        try:
                            data = s.recv(65536)
                        except (ssl.SSLWantReadError, BlockingIOError):
                            break
                        if not data:
                            return
                        other.setblocking(True)
                        other.sendall(data)
                        other.setblocking(False)
        except OSError:
            return
        finally:
            a.close()
            b.close()


def _code(n):
    for c in grpc.StatusCode:
        if c.value[0] == n:
            return c
    return grpc.StatusCode.UNKNOWN


if __name__ == "__main__":
    up = GrpcUpstream(int(sys.argv[1]) if len(sys.argv) > 1 else 50051)
    up.start()
    print("listening on", up.port)
    up.server.wait_for_termination()
