#!/usr/bin/python3
"""TLS for the callout tests: throwaway certificates made with the openssl
command, and CalloutUpstream (callout_upstream.py, same paths) behind
Python's ssl module.

make_certs(dir) writes, into dir:

    ca.pem                  the test CA
    good.pem / good.key     localhost and 127.0.0.1, signed by the CA
    self.pem / self.key     localhost and 127.0.0.1, self-signed
    wrong.pem / wrong.key   wrong.example only, signed by the CA
    client.pem / client.key a client certificate (CN "pw test client"),
                            signed by the CA

TlsCalloutUpstream(cert, key) records, per TLS connection, the SNI the
client sent (None: none) and whether the session was resumed; with
mixed=True it also serves plain HTTP on the same port, told apart by the
first byte (a TLS handshake starts with 0x16). With client_ca=PATH it
requires a client certificate that verifies against PATH and records its
subject CN (client_cns); max_tls12=True keeps it to TLS 1.2.
"""
import os
import socket
import ssl
import subprocess

from callout_upstream import CalloutUpstream


def _openssl(*args):
    subprocess.run(["openssl"] + list(args), check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def make_certs(d):
    """Write the CA and the three server certificates into d."""
    def p(name):
        return os.path.join(d, name)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
          "-nodes"]
    _openssl("req", "-x509", *ec, "-keyout", p("ca.key"), "-out",
             p("ca.pem"), "-days", "2", "-subj", "/CN=pw test CA",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    for name, san in (("good", "DNS:localhost,IP:127.0.0.1"),
                      ("wrong", "DNS:wrong.example")):
        with open(p(name + ".ext"), "w") as f:
            f.write("subjectAltName=%s\n"
                    "basicConstraints=CA:FALSE\n"
                    "extendedKeyUsage=serverAuth\n" % san)
        _openssl("req", *ec, "-keyout", p(name + ".key"), "-out",
                 p(name + ".csr"), "-subj", "/CN=" + san.split(":")[1]
                 .split(",")[0])
        _openssl("x509", "-req", "-in", p(name + ".csr"), "-CA",
                 p("ca.pem"), "-CAkey", p("ca.key"), "-CAcreateserial",
                 "-out", p(name + ".pem"), "-days", "2", "-extfile",
                 p(name + ".ext"))
    with open(p("client.ext"), "w") as f:
        f.write("basicConstraints=CA:FALSE\n"
                "extendedKeyUsage=clientAuth\n")
    _openssl("req", *ec, "-keyout", p("client.key"), "-out",
             p("client.csr"), "-subj", "/CN=pw test client")
    _openssl("x509", "-req", "-in", p("client.csr"), "-CA", p("ca.pem"),
             "-CAkey", p("ca.key"), "-CAcreateserial", "-out",
             p("client.pem"), "-days", "2", "-extfile", p("client.ext"))
    _openssl("req", "-x509", *ec, "-keyout", p("self.key"), "-out",
             p("self.pem"), "-days", "2", "-subj", "/CN=localhost",
             "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1")
    return d


def server_context(cert, key, client_ca=None):
    """A TLS server context with cert and key; with client_ca, a client
    certificate from that CA is required."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    if client_ca:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(client_ca)
    return ctx


class TlsCalloutUpstream(CalloutUpstream):
    def __init__(self, cert, key, mixed=False, port=0, client_ca=None,
                 max_tls12=False):
        super().__init__(port)
        self.ctx = server_context(cert, key, client_ca)
        if max_tls12:
            self.ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        self.ctx.sni_callback = self._sni
        self.mixed = mixed
        self._reset_tls()

    def _reset_tls(self):
        self.snis = []              # per handshake: the name, or None
        self.resumed = []           # per handshake: session resumed?
        self.handshakes = 0
        self.failed_handshakes = 0
        self.plain = 0              # plain connections (mixed)
        self.client_cns = []        # per handshake: the client's CN

    def reset_counts(self):
        super().reset_counts()
        with self.lock:
            self._reset_tls()

    def _sni(self, sslobj, name, ctx):
        with self.lock:
            self.snis.append(name)

    @staticmethod
    def _client_cn(tconn):
        cert = tconn.getpeercert()
        for rdn in (cert or {}).get("subject", ()):
            for k, v in rdn:
                if k == "commonName":
                    return v
        return None

    def _serve(self, conn):
        conn.settimeout(30)
        if self.mixed:
            try:
                first = conn.recv(1, socket.MSG_PEEK)
            except OSError:
                first = b""
            if first != b"\x16":
                with self.lock:
                    self.plain += 1
                return super()._serve(conn)
        with self.lock:
            n = len(self.snis)
        try:
            tconn = self.ctx.wrap_socket(conn, server_side=True)
        except (ssl.SSLError, OSError):
            with self.lock:
                self.failed_handshakes += 1
            conn.close()
            return
        with self.lock:
            if len(self.snis) == n:         # no SNI: no callback
                self.snis.append(None)
            self.handshakes += 1
            self.resumed.append(tconn.session_reused)
            self.client_cns.append(self._client_cn(tconn))
        super()._serve(tconn)
