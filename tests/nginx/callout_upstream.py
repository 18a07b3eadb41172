#!/usr/bin/python3
"""An HTTP/1.1 upstream for the callout tests, on raw sockets so that a
test controls every byte it answers (resets, garbage, trailers).

Each connection serves requests until the peer closes it (keep-alive);
connections and requests are counted. Paths:

    /echo            200, JSON {method, path, headers, body, trailers},
                     header x-echo: 1, Content-Length
    /status/N        status N, body "status N"
    /slow/MS         sleeps MS ms then 200 "slow"; while sleeping watches the
                     connection and counts it in `closed_early` when the
                     peer closes it first (then answers nothing)
    /reset           reads the request, then resets the connection (RST)
    /close           reads the request, then closes without an answer
    /garbage         answers "this is not http\r\n\r\n"
    /trailers        200, chunked body "hello world" in two chunks, trailers
                     x-trailer: t1 and x-checksum: abc
    /chunked         200, chunked body "abc" + "def", no trailers
    /until-close     200, no length: body "until close", then closes
    /big/N           200, N bytes of big_body(N) (Content-Length)
    /interim         a 100 Continue, then 200 "after interim"
    /token           200, body "tok-N" (N counts the /token requests)
    /auth            200 "ok" when authorization is "Bearer good", else 403
    /close-after     200 "bye" with Connection: close
    /idle-close      200 "idle" (keep-alive), then closes the connection
                     0.1 s later as an idle server would

Run standalone: python3 tests/nginx/callout_upstream.py [PORT]
"""
import json
import select
import socket
import struct
import sys
import threading
import time

from upstream import big_body


class CalloutUpstream:
    def __init__(self, port=0):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self.lock = threading.Lock()
        self.connections = 0
        self.requests = []          # (method, path, headers, body, trailers)
        self.arrivals = []          # (path, time.time())
        self.closed_early = 0
        self.tokens = 0
        self.stopping = False
        self.thread = None

    # ---- counters, read by the tests ----

    def reset_counts(self):
        with self.lock:
            self.connections = 0
            self.requests = []
            self.arrivals = []
            self.closed_early = 0

    def count(self, path_prefix):
        with self.lock:
            return sum(1 for r in self.requests
                       if r[1].startswith(path_prefix))

    # ---- server ----

    def start(self):
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        self.stopping = True
        try:
            self.sock.close()
        except OSError:
            pass

    def _accept(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
            threading.Thread(target=self._serve, args=(conn,),
                             daemon=True).start()

    def _serve(self, conn):
        conn.settimeout(30)
        f = conn.makefile("rb")
        try:
            while True:
                req = self._read_request(f)
                if req is None:
                    break
                if not self._answer(conn, req):
                    break
        except (OSError, ValueError):
            pass
        finally:
            try:
                f.close()
                conn.close()
            except OSError:
                pass

    @staticmethod
    def _read_request(f):
        line = f.readline()
        if not line:
            return None
        method, path, _ = line.decode("latin-1").split(" ", 2)
        headers = []
        while True:
            h = f.readline()
            if h in (b"\r\n", b"\n", b""):
                break
            k, v = h.decode("latin-1").split(":", 1)
            headers.append((k.strip(), v.strip()))
        hmap = {k.lower(): v for k, v in headers}
        body = b""
        trailers = []
        if "chunked" in hmap.get("transfer-encoding", "").lower():
            while True:
                size = int(f.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    break
                body += f.read(size)
                f.readline()
            while True:
                h = f.readline()
                if h in (b"\r\n", b"\n", b""):
                    break
                k, v = h.decode("latin-1").split(":", 1)
                trailers.append((k.strip(), v.strip()))
        elif "content-length" in hmap:
            body = f.read(int(hmap["content-length"]))
        return method, path, headers, body, trailers

    @staticmethod
    def _send(conn, status, body, headers=(), close=False):
        reason = {100: "Continue", 200: "OK", 403: "Forbidden",
                  404: "Not Found"}.get(status, "Status")
        out = ["HTTP/1.1 %d %s" % (status, reason),
               "Content-Length: %d" % len(body)]
        out += ["%s: %s" % kv for kv in headers]
        if close:
            out.append("Connection: close")
        conn.sendall(("\r\n".join(out) + "\r\n\r\n").encode("latin-1")
                     + body)

    def _answer(self, conn, req):
        """Answer one request; False closes the connection."""
        method, path, headers, body, trailers = req
        with self.lock:
            self.requests.append(req)
            self.arrivals.append((path, time.time()))
        hmap = {k.lower(): v for k, v in headers}

        if path == "/echo":
            data = json.dumps({"method": method, "path": path,
                               "headers": headers,
                               "body": body.decode("latin-1"),
                               "trailers": trailers}).encode()
            self._send(conn, 200, data, [("Content-Type", "application/json"),
                                         ("x-echo", "1")])
        elif path.startswith("/status/"):
            code = int(path.split("/")[2])
            self._send(conn, code, b"status %d" % code)
        elif path.startswith("/slow/"):
            delay = int(path.split("/")[2]) / 1000.0
            end = time.time() + delay
            while True:
                left = end - time.time()
                if left <= 0:
                    break
                r, _, _ = select.select([conn], [], [], left)
                if r:
                    try:
                        peek = conn.recv(1, socket.MSG_PEEK)
                    except OSError:
                        peek = b""
                    if not peek:
                        with self.lock:
                            self.closed_early += 1
                        return False
                    time.sleep(0.01)
            self._send(conn, 200, b"slow")
        elif path == "/reset":
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                            struct.pack("ii", 1, 0))
            return False
        elif path == "/close":
            return False
        elif path == "/garbage":
            conn.sendall(b"this is not http\r\n\r\n")
            return False
        elif path == "/trailers":
            conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                         b"x-before: b\r\n\r\n"
                         b"6\r\nhello \r\n5;ext=1\r\nworld\r\n0\r\n"
                         b"x-trailer: t1\r\nx-checksum: abc\r\n\r\n")
        elif path == "/chunked":
            conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                         b"\r\n3\r\nabc\r\n")
            time.sleep(0.05)
            conn.sendall(b"3\r\ndef\r\n0\r\n\r\n")
        elif path == "/until-close":
            conn.sendall(b"HTTP/1.1 200 OK\r\nx-framing: close\r\n\r\n"
                         b"until ")
            time.sleep(0.05)
            conn.sendall(b"close")
            return False
        elif path.startswith("/big/"):
            self._send(conn, 200, big_body(int(path.split("/")[2])))
        elif path == "/interim":
            conn.sendall(b"HTTP/1.1 100 Continue\r\nx-interim: 1\r\n\r\n")
            self._send(conn, 200, b"after interim")
        elif path == "/token":
            with self.lock:
                self.tokens += 1
                n = self.tokens
            self._send(conn, 200, b"tok-%d" % n)
        elif path == "/auth":
            ok = hmap.get("authorization") == "Bearer good"
            self._send(conn, 200 if ok else 403, b"ok" if ok else b"no")
        elif path == "/idle-close":
            self._send(conn, 200, b"idle")
            time.sleep(0.1)
            return False
        elif path == "/close-after":
            self._send(conn, 200, b"bye", close=True)
            return False
        else:
            self._send(conn, 404, b"no such path")
        return hmap.get("connection", "").lower() != "close"


if __name__ == "__main__":
    up = CalloutUpstream(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
    up.start()
    print("listening on 127.0.0.1:%d" % up.port)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        up.stop()
