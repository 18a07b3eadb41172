#!/usr/bin/python3
"""A small HTTP/1.1 upstream for the nginx end-to-end tests.

By default it answers every request with a JSON echo of what it received:

    {"method": ..., "path": ..., "headers": [[name, value], ...],
     "body": <latin-1 text>, "body_len": N, "chunked": bool}

Query parameters change the answer (they combine):

    status=N         answer with status N
    delay=S          sleep S seconds (float) before answering
    body=TEXT        answer with exactly TEXT (text/plain) instead of the echo
    size=N           answer with N bytes of a repeating pattern (see big_body)
    chunked=1        send the answer with Transfer-Encoding: chunked (in
                     several chunks, with a short pause between them when
                     slow=1)
    header=NAME:VAL  add a response header (may repeat)
    nolength=1       no Content-Length and close the connection at the end
    bodydelay=S      send the headers, then wait S seconds (float) before
                     the body (with Content-Length)

Every request is also recorded (see Upstream.requests), so a test can tell
whether a request reached the upstream at all.

Run standalone: python3 tests/nginx/upstream.py [PORT]
"""
import json
import socket
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PATTERN = b"0123456789abcdefghijklmnopqrstuvwxyz\n"


def big_body(n):
    """The body answered for size=N."""
    reps = n // len(PATTERN) + 1
    return (PATTERN * reps)[:n]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "pw-test-upstream"

    def log_message(self, fmt, *args):
        pass

    def _read_body(self):
        te = self.headers.get("Transfer-Encoding", "")
        if "chunked" in te.lower():
            parts = []
            while True:
                line = self.rfile.readline()
                if not line:
                    break
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    # trailers until the empty line
                    while True:
                        t = self.rfile.readline()
                        if not t or t in (b"\r\n", b"\n"):
                            break
                    break
                parts.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(parts), True
        n = int(self.headers.get("Content-Length", "0") or "0")
        return (self.rfile.read(n) if n > 0 else b""), False

    def _handle(self):
        body, chunked = self._read_body()
        url = urllib.parse.urlsplit(self.path)
        q = urllib.parse.parse_qs(url.query, keep_blank_values=True)
        record = {
            "method": self.command,
            "path": self.path,
            "headers": [[k, v] for k, v in self.headers.items()],
            "body": body.decode("latin-1"),
            "body_len": len(body),
            "chunked": chunked,
        }
        self.server.owner._record(record)

        if "delay" in q:
            time.sleep(float(q["delay"][0]))

        status = int(q.get("status", ["200"])[0])
        if "body" in q:
            out = q["body"][0].encode("latin-1")
            ctype = "text/plain"
        elif "size" in q:
            out = big_body(int(q["size"][0]))
            ctype = "text/plain"
        else:
            out = json.dumps(record).encode()
            ctype = "application/json"
        if self.command == "HEAD" or status in (204, 304):
            out_sent = b""
        else:
            out_sent = out

        self.send_response(status)
        self.send_header("Content-Type", ctype)
        for h in q.get("header", []):
            name, _, value = h.partition(":")
            self.send_header(name.strip(), value.strip())
        if q.get("chunked", ["0"])[0] == "1":
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            slow = q.get("slow", ["0"])[0] == "1"
            step = max(1, len(out_sent) // 4)
            for i in range(0, len(out_sent), step):
                part = out_sent[i:i + step]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                self.wfile.flush()
                if slow:
                    time.sleep(0.05)
            self.wfile.write(b"0\r\n\r\n")
        elif q.get("nolength", ["0"])[0] == "1":
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(out_sent)
            self.close_connection = True
        else:
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            if "bodydelay" in q:
                self.wfile.flush()
                time.sleep(float(q["bodydelay"][0]))
            self.wfile.write(out_sent)
        self.wfile.flush()

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _handle
    do_OPTIONS = _handle


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class Upstream:
    """The upstream server running in a background thread."""

    def __init__(self, port=0):
        self.server = Server(("127.0.0.1", port), Handler)
        self.server.owner = self
        self.port = self.server.server_address[1]
        self.requests = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self.server.serve_forever,
                                        daemon=True)

    def _record(self, r):
        with self._lock:
            self.requests.append(r)

    def seen(self, needle):
        """Requests whose path contains `needle`."""
        with self._lock:
            return [r for r in self.requests if needle in r["path"]]

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


if __name__ == "__main__":
    up = Upstream(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
    print("upstream on 127.0.0.1:%d" % up.port, flush=True)
    try:
        up.server.serve_forever()
    except KeyboardInterrupt:
        pass
