"""Helpers for the pwrun end-to-end tests.

The tests run the real pwrun binary ($PWRUN, default build/rel/pwrun) on
real plugins: the examples and the test plugin ($PWRUN_WASM_DIR, default
build/wasm) and the WAT edge cases ($PWRUN_WAT_DIR, default
build/rel/tests/pwrun). A test whose plugin is not built is skipped with
the reason; a missing pwrun binary is a failure.
"""
import json
import os
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
PWRUN = os.environ.get("PWRUN", os.path.join(ROOT, "build/rel/pwrun"))
# PWRUN_ENGINE=w2c (read by pwrun itself) runs the suite on that engine;
# only V8 gives trap backtraces.
BACKTRACES = os.environ.get("PWRUN_ENGINE", "v8") in ("", "v8")
WASM_DIR = os.environ.get("PWRUN_WASM_DIR", os.path.join(ROOT, "build/wasm"))
WAT_DIR = os.environ.get("PWRUN_WAT_DIR",
                         os.path.join(ROOT, "build/rel/tests/pwrun"))
SCENARIOS = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                         "scenarios")


class Result:
    def __init__(self, proc):
        self.code = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr
        self.report = None
        if proc.stdout.strip():
            self.report = json.loads(proc.stdout)

    @property
    def logs(self):
        return [l["message"] for l in self.report["logs"]]

    def ex(self, i=0):
        return self.report["exchanges"][i]


def _plugin(directory, name):
    path = os.path.join(directory, name)
    if not os.path.exists(path):
        pytest.skip("%s is not built yet" % path)
    return path


@pytest.fixture
def wasm():
    return lambda name: _plugin(WASM_DIR, name)


@pytest.fixture
def wat():
    return lambda name: _plugin(WAT_DIR, name)


@pytest.fixture
def pwrun(tmp_path):
    """pwrun(plugin, scenario=None, *args, code=0) -> Result.

    scenario is a dict (written to a file), a path, or None.
    """
    assert os.path.exists(PWRUN), "pwrun binary missing: " + PWRUN

    def run(plugin, scenario=None, *args, code=0, stdin=None):
        argv = [PWRUN] + list(args) + [plugin]
        if isinstance(scenario, dict):
            path = tmp_path / "scenario.json"
            path.write_text(json.dumps(scenario))
            argv.append(str(path))
        elif scenario is not None:
            argv.append(scenario)
        proc = subprocess.run(argv, capture_output=True, text=True,
                              timeout=120, input=stdin)
        assert proc.returncode == code, (
            "exit %d, expected %d\nstderr: %s\nstdout: %s"
            % (proc.returncode, code, proc.stderr, proc.stdout[:4000]))
        return Result(proc)

    return run


def http(path="/", method="GET", headers=(), body=None, trailers=None,
         response=None, **kw):
    """One HTTP exchange for a scenario."""
    req = {"headers": [[":method", method], [":path", path],
                       [":authority", "example.com"], [":scheme", "http"]]
           + [list(h) for h in headers]}
    if body is not None:
        req["body"] = body
    if trailers is not None:
        req["trailers"] = trailers
    ex = {"request": req}
    if response is not None:
        ex["response"] = response
    ex.update(kw)
    return ex


def header(pairs, name):
    """Every value of name (case-insensitive) in a list of pairs."""
    return [v for k, v in pairs if k.lower() == name.lower()]
