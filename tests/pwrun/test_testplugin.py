"""pwrun driving the configurable test plugin (tests/plugins/testplugin.c).

The plugin's configuration is a script (tests/plugins/README.md): per
callback, which host calls to make and what to return; every host call
logs "status <import> = <n>" and results "value <label> = <v>".
"""
import json
import os

from conftest import SCENARIOS, http, header

PLUGIN = "testplugin.wasm"


def run_script(pwrun, wasm, script, exchanges=(), plugin=PLUGIN, **top):
    sc = {"configuration": script, "exchanges": list(exchanges)}
    sc.update(top)
    return pwrun(wasm(plugin), sc)


def cbs(ex, name=None):
    """The callbacks recorded in an exchange, optionally of one name."""
    return [a for a in ex["actions"]
            if "callback" in a and (name is None or a["callback"] == name)]


def test_scenario_file_callout_resumes(pwrun, wasm):
    r = pwrun(wasm(PLUGIN), os.path.join(SCENARIOS, "callout_pause.json"))
    ex = r.ex()
    assert ex["actions"] == [
        {"callback": "on_request_headers", "action": "pause"},
        {"callback": "on_http_call_response", "token": 1, "result": "ok"},
        {"host": "continue_stream", "stream": "request"},
        {"callback": "on_response_headers", "action": "continue"},
        {"callback": "on_response_body", "action": "continue"},
    ]
    co = ex["callouts"][0]
    assert co["upstream"] == "auth" and co["timeout_ms"] == 500
    assert co["body"] == "ping"
    assert header(co["headers"], ":path") == ["/check"]
    assert "value status_code = 200" in r.logs
    assert "value buffer = allowed" in r.logs
    assert ex["request"]["complete"] and ex["response"]["complete"]
    assert ex["response"]["body"] == "upstream body"
    assert ex["stalled"] is None


def test_paused_without_resume_stalls(pwrun, wasm):
    r = run_script(pwrun, wasm, "on request_headers: return pause",
                   [http("/")])
    ex = r.ex()
    assert ex["stalled"] == "on_request_headers"
    assert ex["request"]["complete"] is False
    assert ex["response"] == {"source": "none", "headers": [], "body": "",
                              "trailers": [], "complete": False}
    assert cbs(ex, "on_response_headers") == []


def test_tick_resumes_paused_stream(pwrun, wasm):
    # the first stream context is id 2 (root is 1)
    r = run_script(pwrun, wasm,
                   "on configure: set_tick 100\n"
                   "on request_headers: return pause\n"
                   "on tick: set_effective_context 2; continue_stream request",
                   [http("/")], clock_ns=1000)
    ex = r.ex()
    assert [a.get("callback") or a.get("host") for a in ex["actions"]] == [
        "on_request_headers", "on_tick", "continue_stream",
        "on_response_headers"]
    assert ex["request"]["complete"] is True
    assert r.report["ticks"]["fired"] == 1


def test_wait_gives_up_after_max_wait_ticks(pwrun, wasm):
    r = run_script(pwrun, wasm,
                   "on configure: set_tick 10\n"
                   "on request_headers: return pause",
                   [http("/")], max_wait_ticks=3)
    ex = r.ex()
    assert len(cbs(ex, "on_tick")) == 3
    assert ex["stalled"] == "on_request_headers"


def test_request_body_buffered_then_rewritten(pwrun, wasm):
    r = run_script(pwrun, wasm,
                   "on request_body: get_body; return pause\n"
                   "on request_trailers: set_body REWRITTEN; "
                   "add_header x-t yes",
                   [http("/", method="POST", body=["ab", "cd"],
                         trailers=[["x-orig", "1"]])])
    ex = r.ex()
    assert [a["action"] for a in cbs(ex, "on_request_body")] == \
        ["pause", "pause"]
    # the plugin saw the buffer grow while it held it
    assert "value buffer = ab" in r.logs
    assert "value buffer = abcd" in r.logs
    assert ex["request"]["body"] == "REWRITTEN"
    assert ex["request"]["trailers"] == [["x-orig", "1"], ["x-t", "yes"]]
    assert ex["request"]["complete"] is True


def test_body_eos_flags_and_binary_body(pwrun, wasm):
    r = run_script(pwrun, wasm, "trace",
                   [http("/", method="POST",
                         body=["a", {"bytes_hex": "00ff"}])])
    ex = r.ex()
    assert ex["request"]["body"] == {"bytes_hex": "6100ff"}
    traces = [m for m in r.logs if m.startswith("callback request_")]
    assert traces[0].endswith("eos=0")
    assert traces[1].endswith("size=1 eos=0")
    # the first chunk was let through: the second callback sees only its own
    assert traces[2].endswith("size=2 eos=1")


def test_header_values_joined(pwrun, wasm):
    r = run_script(pwrun, wasm, "on request_headers: get_header a; "
                   "get_header missing",
                   [http("/", headers=[("a", "1"), ("A", "2")])])
    assert "value a = 1,2" in r.logs
    assert "status proxy_get_header_map_value = 1" in r.logs


def test_local_response_in_response_phase(pwrun, wasm):
    r = run_script(pwrun, wasm,
                   "on response_headers: send_local_response 502 nope "
                   "x-why=plugin",
                   [http("/", response={"headers": [[":status", "200"]],
                                        "body": "never sent"})])
    ex = r.ex()
    assert ex["request"]["complete"] is True
    assert ex["local_response"] == {"status": 502, "details": "",
                                    "headers": [["x-why", "plugin"]],
                                    "body": "nope", "grpc_status": -1}
    assert ex["response"]["source"] == "local"
    assert ex["response"]["headers"] == [[":status", "502"],
                                         ["x-why", "plugin"]]
    assert cbs(ex, "on_response_body") == []


def test_close_stream(pwrun, wasm):
    r = run_script(pwrun, wasm, "on request_headers: close_stream",
                   [http("/")])
    ex = r.ex()
    assert ex["closed"] == "request"
    assert {"host": "close_stream", "stream": "request"} in ex["actions"]
    assert ex["response"]["source"] == "none"


def test_grpc_unary_answer_is_one_message(pwrun, wasm):
    # as in Envoy: an OK unary call gets its answer and nothing after it;
    # proxy_get_status then says OK
    r = run_script(pwrun, wasm,
                   "on request_headers: grpc_call up pkg.Svc Get 1000 req; "
                   "return pause\n"
                   "on grpc_receive: get_body; get_status; "
                   "set_effective_context caller; continue_stream request\n"
                   "on grpc_close: log info closed",
                   [http("/", callouts={"up": {
                       "initial_metadata": [["im", "1"]],
                       "messages": ["m1", "m2"],
                       "trailing_metadata": [["tm", "2"]],
                       "status": 0}})])
    ex = r.ex()
    assert [a["callback"] for a in cbs(ex)] == [
        "on_request_headers", "on_grpc_receive", "on_response_headers"]
    assert "value buffer = m1" in r.logs
    assert "value status_code = 0" in r.logs
    assert "closed" not in r.logs
    # a failed unary call gets only its close
    r = run_script(pwrun, wasm,
                   "on request_headers: grpc_call up pkg.Svc Get 1000 req\n"
                   "on grpc_close: get_status",
                   [http("/", callouts={"up": {
                       "messages": ["m1"], "status": 7,
                       "message": "denied"}})])
    assert [a["callback"] for a in cbs(r.ex())] == [
        "on_request_headers", "on_grpc_close", "on_response_headers"]
    assert "value status_code = 7" in r.logs


def test_grpc_call_full_answer(pwrun, wasm):
    r = run_script(pwrun, wasm,
                   "on request_headers: grpc_stream up pkg.Svc Get "
                   "x-md=1; return pause\n"
                   "on grpc_initial_metadata: get_headers\n"
                   "on grpc_receive: get_body\n"
                   "on grpc_trailing_metadata: get_headers\n"
                   "on grpc_close: get_status; set_effective_context caller;"
                   " continue_stream request",
                   [http("/", callouts={"up": {
                       "initial_metadata": [["im", "1"]],
                       "messages": ["m1", {"bytes_hex": "0001"}],
                       "trailing_metadata": [["tm", "2"]],
                       "status": 7, "message": "denied"}})])
    ex = r.ex()
    assert [a["callback"] for a in cbs(ex)] == [
        "on_request_headers", "on_grpc_receive_initial_metadata",
        "on_grpc_receive", "on_grpc_receive", "on_grpc_receive_trailing_metadata",
        "on_grpc_close", "on_response_headers"]
    co = ex["callouts"][0]
    assert (co["kind"], co["service"], co["method"]) == \
        ("grpc_stream", "pkg.Svc", "Get")
    assert co["metadata"] == [["x-md", "1"]]
    assert "header im: 1" in r.logs
    assert "value buffer = m1" in r.logs
    assert "value buffer = \\x00\\x01" in r.logs
    assert "value status_code = 7" in r.logs
    assert "value status_message = denied" in r.logs
    assert ex["request"]["complete"] is True


def test_grpc_fail_closes_unavailable(pwrun, wasm):
    r = run_script(pwrun, wasm,
                   "on request_headers: grpc_call up s m 1000 x\n"
                   "on grpc_close: get_status",
                   [http("/", callouts={"up": "fail"})])
    assert "value status_code = 14" in r.logs
    assert r.ex()["callouts"][0]["answer"] == "fail"


def test_grpc_stream_send_and_cancel(pwrun, wasm):
    r = run_script(pwrun, wasm,
                   "on request_headers: grpc_stream up s m; "
                   "grpc_send last hello 0; grpc_send last bye 1\n"
                   "on grpc_receive: get_body; grpc_cancel last",
                   [http("/", callouts={"up": {"messages": ["r1", "r2"],
                                               "close": False}})])
    ex = r.ex()
    co = ex["callouts"][0]
    assert co["kind"] == "grpc_stream"
    assert co["sent"] == [{"message": "hello", "end_stream": False},
                          {"message": "bye", "end_stream": True}]
    assert co["ended_by_plugin"] == "cancel"
    # cancelled after the first message: the second is never delivered
    assert len(cbs(ex, "on_grpc_receive")) == 1
    assert cbs(ex, "on_grpc_close") == []


def test_callout_answer_lists_and_none(pwrun, wasm):
    r = run_script(pwrun, wasm,
                   "on request_headers: "
                   "http_call up 10 a :method=GET :path=/ :authority=u; "
                   "http_call up 10 b :method=GET :path=/ :authority=u; "
                   "http_call up 10 c :method=GET :path=/ :authority=u; "
                   "http_call never 10 d :method=GET :path=/ :authority=u\n"
                   "on http_call_response: get_headers",
                   [http("/", callouts={
                       "up": [{"headers": [[":status", "201"]]}, "fail"],
                       "never": "none"})])
    ex = r.ex()
    assert [c["answer"] for c in ex["callouts"]] == ["ok", "fail", "fail",
                                                     "none"]
    # three answers delivered in order; "none" is never answered
    assert [a["token"] for a in cbs(ex, "on_http_call_response")] == \
        [c["token"] for c in ex["callouts"][:3]]
    assert r.logs.count("value headers = 0") == 2
    assert "header :status: 201" in r.logs


def test_root_context_callout_from_tick(pwrun, wasm):
    r = run_script(pwrun, wasm,
                   "on configure: set_tick 5\n"
                   "on tick: http_call up 10 x :method=GET :path=/ "
                   ":authority=u\n"
                   "on http_call_response: get_body",
                   ticks=2, callouts={"up": {"headers": [[":status", "200"]],
                                             "body": "root"}})
    rep = r.report
    assert len(rep["callouts"]) == 2
    assert [e["callback"] for e in rep["events"] if "callback" in e] == [
        "on_tick", "on_http_call_response", "on_tick",
        "on_http_call_response"]
    assert r.logs.count("value buffer = root") == 2


def test_properties(pwrun, wasm):
    r = run_script(pwrun, wasm,
                   "on request_headers: get_property source address; "
                   "get_property node id; get_property request url_path; "
                   "get_property request query; get_property plugin_root_id; "
                   "get_property no such; get_property a.b; "
                   "set_property filter_state k v1; "
                   "get_property filter_state k\n"
                   "on response_headers: get_property response code",
                   [http("/p?q=1", properties={"a.b": "dotted-in-key"})],
                   properties=[
                       [["source", "address"], "10.0.0.1:5"],
                       ["node.id", {"int": 7}],
                       [["a.b"], {"bool": True}]],
                   root_id="rid")
    logs = r.logs
    assert "value property = 10.0.0.1:5" in logs
    assert "value property = \\x07\\x00\\x00\\x00\\x00\\x00\\x00\\x00" in logs
    assert "value property = /p" in logs
    assert "value property = q=1" in logs
    assert "value property = rid" in logs
    # a.b as one segment: the list form; "a.b" as a key splits at the dot
    assert "value property = \\x01" in logs
    assert "status proxy_get_property = 1" in logs
    assert "value property = v1" in logs
    assert "value property = \\xc8\\x00\\x00\\x00\\x00\\x00\\x00\\x00" in logs
    assert r.ex()["properties_set"] == [{"path": "filter_state.k",
                                         "value": "v1"}]


def test_foreign_functions(pwrun, wasm):
    r = run_script(pwrun, wasm,
                   "on request_headers: call_foreign compress abc; "
                   "call_foreign missing x",
                   [http("/")], foreign_functions={"compress": "ZZ"})
    assert "value foreign = ZZ" in r.logs
    assert "status proxy_call_foreign_function = 1" in r.logs
    assert r.report["foreign_calls"] == [{"name": "compress",
                                          "args": "abc"}]


def test_env_clock_and_log_level(pwrun, wasm):
    r = run_script(pwrun, wasm,
                   "on configure: environ; time; log_level; set_tick 250\n"
                   "on tick: time",
                   env={"GREETING": "hi", "EMPTY": ""}, clock_ns=42000000000,
                   log_level="warn", ticks=2)
    logs = r.logs
    assert "value environ = GREETING=hi" in logs
    assert "value environ = EMPTY=" in logs
    # a virtual clock: start value, then + one tick period per tick
    assert [m for m in logs if m.startswith("value time")] == [
        "value time = 42000000000", "value time = 42250000000",
        "value time = 42500000000"]
    assert "value log_level = 3" in logs


def test_vm_config_script(pwrun, wasm):
    r = run_script(pwrun, wasm, "", vm_config="on vm_start: log info vm-cfg")
    assert "vm-cfg" in r.logs


def test_runaway_plugin_interrupted(pwrun, wasm):
    r = run_script(pwrun, wasm, "on request_headers: loop",
                   [http("/"), http("/")], max_call_ms=200)
    first = r.ex(0)
    assert first["failed"] == "on_request_headers"
    assert r.report["failures"][0]["callback"] == "on_request_headers"
    assert r.report["failures"][0]["reason"] != ""


def test_trap_mid_exchange_exit_0(pwrun, wasm):
    r = run_script(pwrun, wasm, "on response_headers: unreachable",
                   [http("/")])
    ex = r.ex()
    assert ex["request"]["complete"] is True
    assert ex["failed"] == "on_response_headers"
    f = r.report["failures"][0]
    assert "unreachable" in f["trap"]["message"]
    assert f["exchange"] == 0


def test_shared_data_binary_value(pwrun, wasm):
    r = run_script(pwrun, wasm,
                   'on configure: set_shared text hello; '
                   'set_shared bin "\\xff\\x00"')
    kv = {e["key"]: e["value"] for e in r.report["shared_data"]}
    assert kv == {"text": "hello", "bin": {"bytes_hex": "ff00"}}


def test_tcp_exchange(pwrun, wasm):
    r = run_script(pwrun, wasm,
                   "on new_connection: log info conn\n"
                   "on downstream_data: get_body; set_body UP\n"
                   "on upstream_data: return pause",
                   [{"type": "tcp", "tcp": [
                       {"downstream": "hello"},
                       {"upstream": "a"},
                       {"upstream": "b", "end": True},
                       {"close": "downstream"}]}])
    ex = r.ex()
    assert ex["type"] == "tcp"
    assert [a["callback"] for a in cbs(ex)] == [
        "on_new_connection", "on_downstream_data", "on_upstream_data",
        "on_upstream_data"]
    assert ex["downstream"] == {"forwarded": "UP", "buffered": ""}
    # upstream data held by the plugin: never forwarded
    assert ex["upstream"] == {"forwarded": "", "buffered": "ab"}
    assert ex["stalled"] == "on_upstream_data"
    assert "value buffer = hello" in r.logs


def test_abi_010_variant_continue_request(pwrun, wasm):
    r = run_script(pwrun, wasm,
                   "on request_headers: http_call up 10 x :method=GET "
                   ":path=/ :authority=u; return pause\n"
                   "on http_call_response: set_effective_context caller; "
                   "continue_request",
                   [http("/", callouts={"up": {"headers": [[":status",
                                                             "200"]]}})],
                   plugin="testplugin_v010.wasm")
    assert r.report["plugin"]["abi"] == "0.1.0"
    ex = r.ex()
    assert "status proxy_continue_request = 0" in r.logs
    assert {"host": "continue_stream", "stream": "request"} in ex["actions"]
    assert ex["request"]["complete"] is True


def test_report_is_stable(pwrun, wasm):
    """Two runs of one scenario give byte-identical reports."""
    path = os.path.join(SCENARIOS, "callout_pause.json")
    a = pwrun(wasm(PLUGIN), path).stdout
    b = pwrun(wasm(PLUGIN), path).stdout
    assert a == b
    assert json.loads(a)["exchanges"][0]["request"]["complete"] is True
