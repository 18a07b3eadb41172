"""AssemblyScript plugins (@solo-io/proxy-runtime 0.1.8, tests/plugins/as/):
real third-party SDK output. They need a non-empty configuration and the
plugin_root_id property naming their root id."""
from conftest import http, header


def test_as_headers(pwrun, wasm):
    r = pwrun(wasm("as_headers.wasm"), {
        "root_id": "as_headers", "configuration": "x-from-as: yes",
        "exchanges": [http("/as", headers=[("x-req", "1")])]})
    rep = r.report
    assert rep["plugin"]["abi"] == "0.2.0"
    assert rep["start"]["ok"] is True
    assert rep["failures"] == []
    ex = r.ex()
    assert header(ex["response"]["headers"], "x-from-as") == ["yes"]
    assert "as_headers: request :path: /as" in r.logs
    assert "as_headers: request x-req: 1" in r.logs
    assert [a["action"] for a in ex["actions"] if "action" in a] == \
        ["continue", "continue"]


def test_as_headers_config_without_colon(pwrun, wasm):
    r = pwrun(wasm("as_headers.wasm"), {
        "root_id": "as_headers", "configuration": "plain",
        "exchanges": [http("/")]})
    assert header(r.ex()["response"]["headers"], "x-as-config") == ["plain"]


def test_as_local(pwrun, wasm):
    r = pwrun(wasm("as_local.wasm"), {
        "root_id": "as_local", "configuration": "/forbidden",
        "exchanges": [http("/forbidden"), http("/fine")]})
    denied, fine = r.report["exchanges"]
    assert denied["local_response"]["status"] == 403
    assert denied["local_response"]["body"] == "forbidden by as_local\n"
    assert denied["local_response"]["headers"] == [["x-as-local", "1"]]
    assert denied["response"]["source"] == "local"
    assert "as_local: denying /forbidden" in r.logs
    assert fine["local_response"] is None
    assert fine["response"]["source"] == "upstream"
    assert fine["request"]["complete"] is True


def test_as_empty_configuration_fails_to_configure(pwrun, wasm):
    path = wasm("as_headers.wasm")
    r = pwrun(path, {"root_id": "as_headers"}, code=1)
    assert r.stderr.startswith("pwrun: cannot configure %s: " % path)
    assert r.report["start"]["ok"] is False
    assert r.report["start"]["error"].startswith("cannot configure: ")


def test_as_wrong_root_id_fails_to_start(pwrun, wasm):
    path = wasm("as_local.wasm")
    r = pwrun(path, {"root_id": "someone_else", "configuration": "/x"},
              code=1)
    assert r.stderr.startswith("pwrun: cannot ")
    assert r.report["start"]["ok"] is False
