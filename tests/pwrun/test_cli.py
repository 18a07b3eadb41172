"""pwrun's command line: usage, --check, bad input files and scenarios."""
import json
import os
import random
import subprocess

import pytest

from conftest import PWRUN, SCENARIOS


def run_raw(*argv, stdin=None):
    return subprocess.run([PWRUN] + list(argv), capture_output=True,
                          text=True, timeout=120, input=stdin)


def one_line(stderr):
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


def test_help_and_usage():
    p = run_raw("--help")
    assert p.returncode == 0
    assert "usage: pwrun" in p.stdout
    p = run_raw()
    assert p.returncode == 2
    assert "usage: pwrun" in p.stderr
    p = run_raw("--bogus", "x.wasm")
    assert p.returncode == 2
    assert "unknown or incomplete option --bogus" in p.stderr
    p = run_raw("a.wasm", "b.json", "c")
    assert p.returncode == 2
    assert "too many arguments" in p.stderr


def test_missing_plugin_file(tmp_path):
    p = run_raw(str(tmp_path / "nope.wasm"))
    assert p.returncode == 2
    assert one_line(p.stderr) == ("pwrun: cannot read %s: No such file or "
                                  "directory" % (tmp_path / "nope.wasm"))
    assert p.stdout == ""


def test_check_accepts_good_plugin(wasm):
    path = wasm("hello.wasm")
    p = run_raw("--check", path)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "%s: ok, ABI 0.2.1" % path


def test_check_v010_plugin(wasm):
    path = wasm("testplugin_v010.wasm")
    p = run_raw("--check", path)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip().endswith("ok, ABI 0.1.0")


@pytest.mark.parametrize("name,reason", [
    ("missing_import.wasm", "missing import env.foo"),
    ("bad_configure_sig.wasm", "bad signature for proxy_on_configure"),
    ("no_marker.wasm", "no proxy_abi_version marker"),
])
def test_check_refuses_with_reason(wat, name, reason):
    path = wat(name)
    p = run_raw("--check", path)
    assert p.returncode == 1
    line = one_line(p.stderr)
    assert line.startswith("pwrun: cannot load %s: " % path)
    assert reason in line


def test_garbage_bytes_refused(tmp_path):
    rnd = random.Random(7)
    for i, blob in enumerate([b"", b"\0asm", b"\0asm\x01\0\0\0\x01\xff",
                              bytes(rnd.getrandbits(8) for _ in range(4096)),
                              b"\0asm\x01\0\0\0" + bytes(range(256))]):
        path = tmp_path / ("garbage%d.wasm" % i)
        path.write_bytes(blob)
        for argv in (["--check", str(path)], [str(path)]):
            p = run_raw(*argv)
            assert p.returncode == 1, (blob[:16], p.stderr)
            assert one_line(p.stderr).startswith(
                "pwrun: cannot load %s: " % path)
            assert p.stdout == ""


def test_default_scenario_starts_one_root(pwrun, wasm):
    r = pwrun(wasm("hello.wasm"))
    rep = r.report
    assert rep["start"] == {"ok": True, "error": None}
    assert rep["plugin"]["abi"] == "0.2.1"
    assert rep["plugin"]["root_id"] == ""
    assert rep["exchanges"] == []
    assert 'hello: configured with ""' in r.logs
    # report keys come in a stable, documented order
    assert list(rep) == ["plugin", "start", "exchanges", "events",
                         "callouts", "logs", "ticks", "shared_data",
                         "queues", "metrics", "properties_set",
                         "foreign_calls", "failures", "host_errors"]


def test_config_option_overrides(pwrun, wasm):
    r = pwrun(wasm("hello.wasm"), None, "--config", "from-cli",
              "--root-id", "r1", "--vm-id", "v1", "--vm-config", "xyz")
    assert 'hello: configured with "from-cli"' in r.logs
    assert "hello: vm started (vm configuration 3 bytes)" in r.logs
    assert r.report["plugin"]["root_id"] == "r1"
    assert r.report["plugin"]["vm_id"] == "v1"


def test_compact_output(pwrun, wasm):
    r = pwrun(wasm("hello.wasm"), None, "--compact")
    assert r.stdout.count("\n") == 1
    assert r.report["start"]["ok"] is True


def test_scenario_from_stdin(pwrun, wasm):
    r = pwrun(wasm("hello.wasm"), "-", stdin='{"configuration": "stdin"}')
    assert 'hello: configured with "stdin"' in r.logs


@pytest.mark.parametrize("text,msg", [
    ("", "line 1, column 1: unexpected end of input"),
    ("{", "line 1, column 2: expected a string key"),
    ('{"exchanges": [1,]}', "unexpected character ']'"),
    ('{"configuration": "a\\qb"}', "bad escape \\q"),
    ('{"x": "\\ud800"}', "lone high surrogate"),
    ("[" * 100 + "]" * 100, "nesting deeper than 64"),
    ('{"configuration": 5}', "configuration: expected a string"),
    ('{"confguration": "x"}', 'unknown key "confguration"'),
    ('{"exchanges": [{"request": {"headers": [["a"]]}}]}',
     "expected [name, value]"),
    ('{"exchanges": [{"request": {"body": {"bytes_hex": "abc"}}}]}',
     "odd number of hex digits"),
    ('{"exchanges": [{"type": "udp"}]}', 'type is "http" or "tcp"'),
    ('{"ticks": -1}', "ticks: expected an integer"),
    ('{"log_level": "loud"}', "log_level: expected one of"),
    ('{"callouts": {"up": "maybe"}}', "expected an answer object"),
    ('{"properties": {"a.b": {"int": "x"}}}', "expected an integer"),
    ('{"exchanges": [{"type": "tcp", "tcp": [{"close": "sideways"}]}]}',
     'close is "downstream" or "upstream"'),
    ("\xff", "unexpected byte"),
    ("{} x", "trailing characters"),
])
def test_bad_scenarios_exit_2_with_clear_error(tmp_path, wasm, text, msg):
    plugin = wasm("hello.wasm")
    path = tmp_path / "bad.json"
    path.write_bytes(text.encode("utf-8", "surrogateescape")
                     if text != "\xff" else b"\xff")
    p = run_raw(plugin, str(path))
    assert p.returncode == 2, p.stdout
    line = one_line(p.stderr)
    assert line.startswith("pwrun: bad scenario %s: " % path)
    assert msg in line
    assert p.stdout == ""


def test_mutated_scenarios_never_crash(tmp_path, wasm):
    """Random corruptions of a real scenario: a report or a clean error."""
    plugin = wasm("testplugin.wasm")
    with open(os.path.join(SCENARIOS, "callout_pause.json")) as f:
        seed = f.read()
    rnd = random.Random(1234)
    alphabet = '{}[]",:\\0123456789eE.-tfn \x00\x7f'
    outcomes = set()
    for i in range(40):
        chars = list(seed)
        for _ in range(rnd.randint(1, 4)):
            chars[rnd.randrange(len(chars))] = rnd.choice(alphabet)
        path = tmp_path / ("m%d.json" % i)
        path.write_text("".join(chars))
        p = run_raw(plugin, str(path))
        # a corrupted configuration may make the plugin refuse it (1)
        assert p.returncode in (0, 1, 2), (p.returncode, p.stderr)
        if p.returncode == 0:
            assert json.loads(p.stdout)["start"]["ok"] is True
        elif p.returncode == 1:
            assert one_line(p.stderr).startswith("pwrun: cannot configure")
            assert json.loads(p.stdout)["start"]["ok"] is False
        else:
            assert one_line(p.stderr).startswith("pwrun: bad scenario")
        outcomes.add(p.returncode)
    assert 2 in outcomes
