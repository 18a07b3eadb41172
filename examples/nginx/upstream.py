#!/usr/bin/env python3
"""A small upstream for the nginx demo: answers every request with a text
page that echoes the request line and headers, and mentions a secret (which
the body_redact plugin masks on the way out)."""
import http.server
import sys


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _answer(self):
        n = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(n) if n else b""
        lines = [f"upstream saw: {self.command} {self.path}"]
        lines += [f"  {k}: {v}" for k, v in self.headers.items()]
        if body:
            lines.append(f"  body: {body.decode('latin-1')}")
        lines.append("the secret word is swordfish; keep it secret")
        out = ("\n".join(lines) + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(out)

    do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = _answer

    def log_message(self, fmt, *args):
        pass


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8081
    http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler) \
        .serve_forever()
