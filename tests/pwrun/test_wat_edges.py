"""Edge-case modules written in WAT (tests/pwrun/wat/)."""
from conftest import BACKTRACES, http, header

import pytest


@pytest.mark.parametrize("name,reason", [
    ("no_marker.wasm", "no proxy_abi_version marker"),
    ("missing_import.wasm", "missing import env.foo"),
    ("bad_configure_sig.wasm", "bad signature for proxy_on_configure"),
])
def test_refused_at_load_with_reason(pwrun, wat, name, reason):
    path = wat(name)
    r = pwrun(path, code=1)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("pwrun: cannot load %s: " % path)
    assert reason in lines[0]
    assert r.report is None          # nothing ran: no report


def test_v010_with_three_param_request_headers(pwrun, wat):
    r = pwrun(wat("v010_3param.wasm"), {"exchanges": [http("/a")]})
    assert r.report["plugin"]["abi"] == "0.1.0"
    ex = r.ex()
    assert ex["actions"][0] == {"callback": "on_request_headers",
                                "action": "continue"}
    # called with its real arity: end_of_stream is 1 (no body)
    assert header(ex["request"]["headers"], "x-arity3") == ["eos=1"]
    # with a body, headers are not the end of the stream
    r = pwrun(wat("v010_3param.wasm"),
              {"exchanges": [http("/a", method="POST", body="x")]})
    assert header(r.ex()["request"]["headers"], "x-arity3") == ["eos=0"]


def test_start_entry_point_is_called(pwrun, wat):
    r = pwrun(wat("entry_start.wasm"))
    assert r.logs == ["_start ran"]


def test_initialize_wins_over_start(pwrun, wat):
    r = pwrun(wat("entry_initialize.wasm"))
    assert r.logs == ["initialize=1 start=0"]


@pytest.mark.parametrize("name", ["alloc_malloc.wasm", "alloc_memalloc.wasm"])
def test_allocator_export(pwrun, wat, name):
    r = pwrun(wat(name), {"configuration": "cfg-bytes"})
    # the configuration reached the plugin through its one allocator
    assert r.logs == ["cfg-bytes", "allocations: 1"]


def test_trap_in_configure_is_reported(pwrun, wat):
    path = wat("trap_configure.wasm")
    r = pwrun(path, code=1)
    line = r.stderr.strip()
    assert line.startswith("pwrun: cannot configure %s: " % path)
    assert "unreachable" in line
    rep = r.report
    assert rep["start"]["ok"] is False
    assert "unreachable" in rep["start"]["error"]
    assert len(rep["failures"]) == 1
    f = rep["failures"][0]
    assert "unreachable" in f["trap"]["message"]
    # the name section names the trapping function
    if BACKTRACES:
        assert "configure_boom" in f["trap"]["backtrace"]


def test_trap_in_request_headers_is_contained(pwrun, wat):
    r = pwrun(wat("trap_headers.wasm"),
              {"exchanges": [http("/1"), http("/2")]})
    rep = r.report
    assert rep["start"]["ok"] is True
    first, second = rep["exchanges"]
    assert first["failed"] == "on_request_headers"
    assert first["actions"] == [{"callback": "on_request_headers",
                                 "result": "failed"}]
    assert first["request"]["complete"] is False
    assert first["response"]["source"] == "none"
    # the VM stays failed: the next exchange does not enter the plugin
    assert second["failed"] is not None
    assert len(rep["failures"]) == 1
    f = rep["failures"][0]
    assert f["callback"] == "on_request_headers"
    assert f["exchange"] == 0
    assert "unreachable" in f["trap"]["message"]
    if BACKTRACES:
        assert "deep_helper" in f["trap"]["backtrace"]
