"""HTTP callouts over TLS: upstream blocks listed in tls_upstream, https://
targets and `:scheme: https`; certificate and host name verification and
their settings, the warning when verification is off, SNI, keep-alive and
session reuse over TLS, plain and TLS kept apart, configuration errors,
the failure metric. Certificates are made per run with the openssl
command (tls_upstream.py)."""
import re
import socket
import ssl
import time

import pytest

from conftest import SLOW, module, pw
from test_callout_http import answer_lines, answer_of, values
from test_metrics import METRICS_LOC, sample, scrape
from tls_upstream import TlsCalloutUpstream, make_certs


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return str(make_certs(str(tmp_path_factory.mktemp("certs"))))


def _server(certs, name, **kw):
    return TlsCalloutUpstream("%s/%s.pem" % (certs, name),
                              "%s/%s.key" % (certs, name), **kw).start()


@pytest.fixture(scope="module")
def good(certs):
    up = _server(certs, "good")
    yield up
    up.stop()


@pytest.fixture(scope="module")
def selfsigned(certs):
    up = _server(certs, "self")
    yield up
    up.stop()


@pytest.fixture(scope="module")
def wrong(certs):
    up = _server(certs, "wrong")
    yield up
    up.stop()


@pytest.fixture
def mixed(certs):
    up = _server(certs, "good", mixed=True)
    yield up
    up.stop()


WARNING = "[wasm] TLS callouts do not verify"


def call_script(path, target, authority="localhost", extra="",
                timeout=3000, on_answer="trace; get_headers; get_body"):
    """One call from request_headers, the request paused until the answer."""
    return ("on request_headers: http_call %s %d \"\" :method=GET :path=%s "
            ":authority=%s %s; return pause\n"
            "on http_call_response: %s; set_effective_context caller; "
            "continue_request" % (target, timeout * SLOW, path, authority,
                                  extra, on_answer))


def wasm_block(certs, *lines, ca=True):
    out = [module("tp", "testplugin.wasm")]
    if ca:
        out.append("tls_trusted_certificate %s/ca.pem;" % certs)
    return "\n".join(out + list(lines))


def start(ngx, certs, script, wasm=(), ca=True, http="", **kw):
    ngx.start(wasm=wasm_block(certs, *wasm, ca=ca), http=http,
              proxy=pw("tp", script), **kw)


def ublock(up, name="secure"):
    return "upstream %s { server 127.0.0.1:%d; }" % (name, up.port)


def one_answer(ngx, since=0):
    """(headers, body, trailers) of the next answer."""
    _, nh, nb, nt = answer_of(answer_lines(ngx, since=since)[0])
    return nh, nb, nt


def failed_call(ngx, certs, port, why, on_answer="trace", **kw):
    """An https call to port answered empty; the warn line saying why."""
    start(ngx, certs, call_script("/echo", "https://127.0.0.1:%d" % port,
                                  on_answer=on_answer),
          locations=METRICS_LOC, **kw)
    assert ngx.get("/").status == 200
    assert one_answer(ngx) == (0, 0, 0)
    return ngx.wait_log("failed: tls: " + why, exact=False)[0]


# ---- calls that pass --------------------------------------------------------


def test_upstream_block_in_tls_upstream(ngx, certs, good):
    good.reset_counts()
    start(ngx, certs, call_script("/echo", "secure", extra="x-a=1"),
          wasm=["tls_upstream secure;"], http=ublock(good))
    r = ngx.get("/named")
    assert r.status == 200 and r.json()["path"] == "/named"
    nh, nb, nt = one_answer(ngx)
    assert nh == 4 and nt == 0
    log = ngx.error_log()
    assert "header :status: 200" in log and "header x-echo: 1" in log
    import json
    e = json.loads(values(ngx, "buffer")[0])
    assert len(values(ngx, "buffer")[0]) == nb
    assert e["path"] == "/echo" and ["x-a", "1"] in e["headers"]
    assert ["Host", "localhost"] in e["headers"]
    assert good.handshakes == 1 and good.snis == ["localhost"]
    assert "failed:" not in log
    assert WARNING not in log


def test_https_address_target(ngx, certs, good):
    # an address as :authority: no SNI (RFC 6066), checked against the
    # certificate's IP address
    good.reset_counts()
    start(ngx, certs, call_script("/status/201",
                                  "https://127.0.0.1:%d" % good.port,
                                  authority="127.0.0.1:%d" % good.port))
    assert ngx.get("/").status == 200
    assert one_answer(ngx)[0] == 2
    assert "header :status: 201" in ngx.error_log()
    assert values(ngx, "buffer") == ["status 201"]
    assert good.handshakes == 1 and good.snis == [None]


def test_scheme_https_header(ngx, certs, good):
    good.reset_counts()
    start(ngx, certs, call_script("/status/202", "127.0.0.1:%d" % good.port,
                                  extra=":scheme=https"))
    assert ngx.get("/").status == 200
    assert one_answer(ngx)[0] == 2
    assert values(ngx, "buffer") == ["status 202"]
    assert good.handshakes == 1 and good.snis == ["localhost"]


def test_https_upstream_block_name(ngx, certs, good):
    # https://NAME of an upstream block not listed in tls_upstream
    good.reset_counts()
    start(ngx, certs, call_script("/status/200", "https://secure"),
          http=ublock(good))
    assert ngx.get("/").status == 200
    assert one_answer(ngx)[0] == 2
    assert good.handshakes == 1


def test_server_name_from_tls_upstream(ngx, certs, good):
    # server_name= overrides :authority for SNI and for the name checked
    good.reset_counts()
    start(ngx, certs, call_script("/echo", "secure", authority="callee"),
          wasm=["tls_upstream secure server_name=localhost;"],
          http=ublock(good))
    assert ngx.get("/").status == 200
    assert one_answer(ngx)[0] == 4
    assert good.snis == ["localhost"]
    import json
    assert ["Host", "callee"] in json.loads(values(ngx, "buffer")[0])[
        "headers"]


def test_host_port_in_tls_upstream(ngx, certs, good):
    good.reset_counts()
    target = "127.0.0.1:%d" % good.port
    start(ngx, certs, call_script("/status/200", target),
          wasm=["tls_upstream %s;" % target])
    assert ngx.get("/").status == 200
    assert one_answer(ngx)[0] == 2
    assert good.handshakes == 1


# ---- verification -----------------------------------------------------------


def test_self_signed_refused(ngx, certs, selfsigned):
    selfsigned.reset_counts()
    line = failed_call(ngx, certs, selfsigned.port,
                       "certificate verify failed: self-signed certificate",
                       on_answer="trace; get_status")
    assert values(ngx, "status_code") == ["0"]
    assert "[warn]" in line
    # no request went over the unverified connection
    assert selfsigned.count("/echo") == 0
    families, _ = scrape(ngx)
    assert sample(families, "pw_host_callout_failures_tls_total") == 1
    assert sample(families, "pw_host_callouts_total") == 1
    assert sample(families, "pw_host_callouts_in_flight") == 0


def test_system_store_does_not_know_the_test_ca(ngx, certs, good):
    # no tls_trusted_certificate: the system's store, without our CA
    line = failed_call(ngx, certs, good.port,
                       "certificate verify failed: unable to ", ca=False)
    # the server sends no chain: OpenSSL cannot reach an issuer it knows
    assert re.search(r"unable to (get local issuer certificate|verify the "
                     r"first certificate)", line), line


def test_wrong_name_refused(ngx, certs, wrong):
    wrong.reset_counts()
    failed_call(ngx, certs, wrong.port, 'hostname mismatch: the '
                'certificate is not for "localhost"')
    assert wrong.count("/echo") == 0


def test_wrong_name_accepted_without_host_check(ngx, certs, wrong):
    wrong.reset_counts()
    start(ngx, certs, call_script("/status/200", "https://127.0.0.1:%d"
                                  % wrong.port),
          wasm=["tls_verify_host off;"])
    for _ in range(2):
        assert ngx.get("/").status == 200
    lines = answer_lines(ngx, count=2)
    assert all(answer_of(l)[1] == 2 for l in lines)
    # the chain is still checked: a self-signed one would fail
    assert "failed:" not in ngx.error_log()
    assert ngx.log_count(WARNING + " the server's name (tls_verify_host "
                         "off); \"tls_no_verify_warn on\" silences this") \
        == 1


def test_verify_off_accepts_self_signed_and_warns_once(ngx, certs,
                                                       selfsigned):
    start(ngx, certs, call_script("/status/200", "https://127.0.0.1:%d"
                                  % selfsigned.port),
          wasm=["tls_verify_cert off;", "tls_verify_host off;"])
    for _ in range(3):
        assert ngx.get("/").status == 200
    lines = answer_lines(ngx, count=3)
    assert all(answer_of(l)[1] == 2 for l in lines)
    warn = [l for l in ngx.error_log().splitlines() if WARNING in l]
    assert len(warn) == 1 and "[warn]" in warn[0]
    assert "the server's certificate (tls_verify_cert off)" in warn[0]


def test_no_verify_warn_silences_the_warning(ngx, certs, selfsigned):
    start(ngx, certs, call_script("/status/200", "https://127.0.0.1:%d"
                                  % selfsigned.port),
          wasm=["tls_verify_cert off;", "tls_verify_host off;",
                "tls_no_verify_warn on;"])
    assert ngx.get("/").status == 200
    assert one_answer(ngx)[0] == 2
    assert WARNING not in ngx.error_log()


# ---- failures -----------------------------------------------------------------


def test_tls_to_a_plain_server_fails(ngx, certs):
    # nginx itself, plain HTTP, answers the hello with a 400: no handshake
    failed_call(ngx, certs, ngx.port, "handshake failed")
    families, _ = scrape(ngx)
    assert sample(families, "pw_host_callout_failures_tls_total") == 1


def test_silent_server_times_out_in_the_handshake(ngx, certs):
    # the kernel completes the connect; nobody answers the hello
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(8)
    try:
        start(ngx, certs, call_script("/echo", "https://127.0.0.1:%d"
                                      % s.getsockname()[1], timeout=300,
                                      on_answer="trace"))
        t0 = time.time()
        assert ngx.get("/").status == 200
        assert time.time() - t0 < 2.5 * SLOW
        assert one_answer(ngx) == (0, 0, 0)
        ngx.wait_log("failed: timeout: timed out", exact=False)
    finally:
        s.close()


# ---- connections --------------------------------------------------------------


def test_keepalive_over_tls(ngx, certs, good):
    start(ngx, certs, call_script("/echo", "secure", on_answer="trace"),
          wasm=["tls_upstream secure;"], http=ublock(good))
    good.reset_counts()
    for _ in range(3):
        assert ngx.get("/").status == 200
    lines = answer_lines(ngx, count=3)
    assert all(answer_of(l)[1] == 4 for l in lines)
    assert good.count("/echo") == 3
    assert good.connections == 1 and good.handshakes == 1


def test_session_resumed_on_a_new_connection(ngx, certs, good):
    # /close-after closes every connection: the second handshake resumes
    # the first one's session
    start(ngx, certs, call_script("/close-after", "secure",
                                  on_answer="trace"),
          wasm=["tls_upstream secure;"], http=ublock(good))
    good.reset_counts()
    for _ in range(3):
        assert ngx.get("/").status == 200
    answer_lines(ngx, count=3)
    assert good.connections == 3 and good.handshakes == 3
    assert good.resumed[0] is False and good.resumed[1:] == [True, True]
    assert "failed:" not in ngx.error_log()


def test_plain_and_tls_to_one_port_do_not_share(ngx, certs, mixed):
    # plain calls in one location, TLS calls in another, to one port
    port = mixed.port
    plain = call_script("/status/200", "127.0.0.1:%d" % port,
                        on_answer="trace")
    tls = call_script("/status/200", "https://127.0.0.1:%d" % port,
                      on_answer="trace")
    ngx.start(wasm=wasm_block(certs), proxy=pw("tp", plain),
              locations="location /tls { %s proxy_pass http://backend; }"
              % pw("tp", tls))
    mixed.reset_counts()
    for path in ("/", "/tls", "/", "/tls"):
        assert ngx.get(path).status == 200
    lines = answer_lines(ngx, count=4)
    assert all(answer_of(l)[1] == 2 for l in lines)
    # one plain and one TLS connection, each kept alive and reused
    assert mixed.plain == 1 and mixed.handshakes == 1
    assert mixed.connections == 2
    assert mixed.count("/status/200") == 4


def test_connections_kept_apart_by_server_name(ngx, certs, good):
    # two server names to one address: two connections, two SNIs
    start(ngx, certs, call_script("/status/200", "https://127.0.0.1:%d"
                                  % good.port, on_answer="trace"),
          locations="location /ip { %s proxy_pass http://backend; }"
          % pw("tp", call_script("/status/200", "https://127.0.0.1:%d"
                                 % good.port, authority="127.0.0.1",
                                 on_answer="trace")))
    good.reset_counts()
    for path in ("/", "/ip", "/", "/ip"):
        assert ngx.get(path).status == 200
    answer_lines(ngx, count=4)
    assert good.connections == 2
    assert sorted(good.snis, key=str) == [None, "localhost"]


# ---- configuration --------------------------------------------------------------


@pytest.mark.parametrize("lines,message", [
    (["tls_trusted_certificate /nonexistent/ca.pem;"],
     'tls_trusted_certificate: cannot open "/nonexistent/ca.pem"'),
    (["tls_verify_cert maybe;"],
     'invalid value "maybe" for "tls_verify_cert" (on or off)'),
    (["tls_verify_host on;", "tls_verify_host off;"],
     '"tls_verify_host" is duplicate'),
    (["tls_upstream nosuch;"],
     'tls_upstream "nosuch" names no upstream block'),
    (["tls_upstream https://x:1;"], 'invalid tls_upstream "https://x:1"'),
    (["tls_upstream x:1 sni=y;"], 'invalid "sni=y" for tls_upstream'),
])
def test_configuration_errors(ngx, certs, lines, message):
    rc, out = ngx.test_conf(wasm="\n".join([module("tp", "testplugin.wasm")]
                                           + lines))
    assert rc != 0
    assert "[emerg]" in out and message in out, out


def test_trusted_certificate_without_certificates(ngx, certs, tmp_path):
    bad = tmp_path / "empty.pem"
    bad.write_text("not a certificate\n")
    rc, out = ngx.test_conf(wasm="%s\ntls_trusted_certificate %s;"
                            % (module("tp", "testplugin.wasm"), bad))
    assert rc != 0
    assert 'has no usable PEM certificates' in out, out


def test_trusted_certificate_relative_to_conf_dir(ngx, certs, good):
    import shutil
    shutil.copy(certs + "/ca.pem", ngx.prefix + "/conf/test-ca.pem")
    good.reset_counts()
    ngx.start(wasm="%s\ntls_trusted_certificate test-ca.pem;"
              % module("tp", "testplugin.wasm"),
              proxy=pw("tp", call_script("/status/200", "https://127.0.0.1:%d"
                                         % good.port)))
    assert ngx.get("/").status == 200
    assert one_answer(ngx)[0] == 2
    assert good.handshakes == 1


def test_configuration_accepted(ngx, certs, good):
    rc, out = ngx.test_conf(
        wasm=wasm_block(certs, "tls_verify_cert on;", "tls_verify_host on;",
                        "tls_no_verify_warn off;",
                        "tls_upstream secure server_name=localhost;",
                        "tls_upstream 127.0.0.1:1;"),
        http=ublock(good))
    assert rc == 0, out
    # block names match in any case, as nginx compares them
    rc, out = ngx.test_conf(wasm=wasm_block(certs, "tls_upstream SeCuRe;"),
                            http=ublock(good))
    assert rc == 0, out


# ---- client certificates ------------------------------------------------------


@pytest.fixture(scope="module", params=["tls13", "tls12"])
def mtls(request, certs):
    # requires a client certificate from the test CA; TLS 1.2 too, where
    # the server's refusal comes inside the client's handshake
    up = _server(certs, "good", client_ca=certs + "/ca.pem",
                 max_tls12=request.param == "tls12")
    yield up
    up.stop()


def client_cert(certs, cert="client.pem", key="client.key"):
    return ["tls_certificate %s/%s;" % (certs, cert),
            "tls_certificate_key %s/%s;" % (certs, key)]


def test_client_certificate_presented(ngx, certs, mtls):
    mtls.reset_counts()
    start(ngx, certs, call_script("/echo", "https://127.0.0.1:%d"
                                  % mtls.port, on_answer="trace"),
          wasm=client_cert(certs))
    for _ in range(2):
        assert ngx.get("/").status == 200
    lines = answer_lines(ngx, count=2)
    assert all(answer_of(l)[1] == 4 for l in lines)
    assert "failed:" not in ngx.error_log()
    assert mtls.count("/echo") == 2
    assert mtls.handshakes >= 1 and mtls.failed_handshakes == 0
    assert set(mtls.client_cns) == {"pw test client"}


def test_client_certificate_relative_to_conf_dir(ngx, certs, mtls):
    import shutil
    for name in ("client.pem", "client.key"):
        shutil.copy("%s/%s" % (certs, name), "%s/conf/t-%s"
                    % (ngx.prefix, name))
    mtls.reset_counts()
    start(ngx, certs, call_script("/status/200", "https://127.0.0.1:%d"
                                  % mtls.port),
          wasm=["tls_certificate t-client.pem;",
                "tls_certificate_key t-client.key;"])
    assert ngx.get("/").status == 200
    assert one_answer(ngx)[0] == 2
    assert mtls.client_cns == ["pw test client"]


def test_no_client_certificate_refused(ngx, certs, mtls):
    mtls.reset_counts()
    start(ngx, certs, call_script("/echo", "https://127.0.0.1:%d"
                                  % mtls.port, on_answer="trace"),
          locations=METRICS_LOC)
    assert ngx.get("/").status == 200
    assert one_answer(ngx) == (0, 0, 0)
    line = ngx.wait_log("failed: ", exact=False)[0]
    assert mtls.count("/echo") == 0
    assert mtls.failed_handshakes >= 1 and mtls.handshakes == 0
    families, _ = scrape(ngx)
    if mtls.ctx.maximum_version == ssl.TLSVersion.TLSv1_2:
        # the server's alert ends the client's handshake
        assert "failed: tls: handshake failed" in line, line
        assert sample(families, "pw_host_callout_failures_tls_total") == 1
    else:
        # TLS 1.3: the client's handshake is over before the server checks
        # its certificate; the alert comes while the answer is read
        assert "failed: reset: " in line, line
        assert sample(families, "pw_host_callout_failures_tls_total") == 0


@pytest.mark.parametrize("which,message", [
    ("cert", '"tls_certificate" is set without "tls_certificate_key" (a '
     'client certificate needs both)'),
    ("key", '"tls_certificate_key" is set without "tls_certificate" (a '
     'client certificate needs both)'),
    ("nocert", 'tls_certificate: cannot open "/nonexistent/client.pem"'),
    ("nokey", 'tls_certificate_key: cannot open "/nonexistent/client.key"'),
    ("mismatch", "not a usable PEM certificate and matching key"),
    ("notpem", "not a usable PEM certificate and matching key"),
])
def test_client_certificate_errors(ngx, certs, tmp_path, which, message):
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate\n")
    lines = {
        "cert": ["tls_certificate %s/client.pem;" % certs],
        "key": ["tls_certificate_key %s/client.key;" % certs],
        "nocert": ["tls_certificate /nonexistent/client.pem;",
                   "tls_certificate_key %s/client.key;" % certs],
        "nokey": ["tls_certificate %s/client.pem;" % certs,
                  "tls_certificate_key /nonexistent/client.key;"],
        # good.key is another certificate's key
        "mismatch": client_cert(certs, key="good.key"),
        "notpem": ["tls_certificate %s;" % bad,
                   "tls_certificate_key %s/client.key;" % certs],
    }[which]
    rc, out = ngx.test_conf(wasm=wasm_block(certs, *lines))
    assert rc != 0
    assert "[emerg]" in out and message in out, out
    if which == "mismatch":
        # OpenSSL's reason, with the key's file
        assert "good.key" in out and "key values mismatch" in out, out
    if which == "notpem":
        assert str(bad) in out, out


def test_client_certificate_accepted(ngx, certs):
    rc, out = ngx.test_conf(wasm=wasm_block(certs, *client_cert(certs)))
    assert rc == 0, out
