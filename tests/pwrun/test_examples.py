"""The example plugins (examples/, built to build/wasm/) under pwrun."""
from conftest import http, header


def test_hello_ticks(pwrun, wasm):
    r = pwrun(wasm("hello.wasm"), {"configuration": "hi", "ticks": 3,
                                   "clock_ns": 5000000000})
    rep = r.report
    assert rep["ticks"] == {"period_ms": 1000, "fired": 3, "skipped": 0}
    assert [e for e in rep["events"] if e.get("callback") == "on_tick"] == \
        [{"callback": "on_tick", "result": "ok"}] * 3
    assert rep["events"][0] == {"host": "set_tick_period", "ms": 1000}
    assert 'hello: configured with "hi"' in r.logs
    ticks = [m for m in r.logs if m.startswith("hello: tick")]
    assert len(ticks) == 3


def test_http_headers(pwrun, wasm):
    r = pwrun(wasm("http_headers.wasm"), {"exchanges": [
        http("/x", headers=[("x-internal-token", "secret"),
                            ("user-agent", "t")],
             response={"headers": [[":status", "200"]], "body": "up"}),
        http("/hello"),
    ]})
    a, b = r.report["exchanges"]
    req = a["request"]["headers"]
    assert header(req, "x-internal-token") == []
    assert header(req, "x-wasm-filter") != []
    assert header(req, "user-agent") == ["t"]
    assert header(a["response"]["headers"], "x-hello") == ["world"]
    assert a["response"]["body"] == "up"
    assert a["local_response"] is None
    assert "http_headers: request user-agent: t" in r.logs
    # /hello is answered locally: the request never goes upstream
    assert b["local_response"]["status"] == 200
    assert b["local_response"]["body"] == "hello from wasm\n"
    assert b["response"]["source"] == "local"
    assert b["response"]["headers"][0] == [":status", "200"]
    assert b["request"]["complete"] is False


def test_config_header(pwrun, wasm):
    r = pwrun(wasm("config_header.wasm"), {
        "configuration": "x-team: platform",
        "exchanges": [http("/")]})
    assert header(r.ex()["response"]["headers"], "x-team") == ["platform"]


def test_config_header_bad_config_fails_start(pwrun, wasm):
    path = wasm("config_header.wasm")
    r = pwrun(path, {"configuration": "no colon here"}, code=1)
    assert r.stderr.startswith("pwrun: cannot configure %s: " % path)
    assert r.report["start"]["ok"] is False


def test_body_redact_buffers_until_end(pwrun, wasm):
    r = pwrun(wasm("body_redact.wasm"), {
        "configuration": "secret",
        "exchanges": [http("/", response={
            "headers": [[":status", "200"], ["content-length", "27"]],
            "body": ["the sec", "ret is a secret", "!"]})]})
    ex = r.ex()
    resp = ex["response"]
    assert "secret" not in resp["body"]
    assert resp["body"].count("******") == 2
    assert header(resp["headers"], "content-length") == []
    bodies = [a for a in ex["actions"]
              if a.get("callback") == "on_response_body"]
    assert [a["action"] for a in bodies] == ["pause", "pause", "continue"]


def test_callout_auth_allows_denies_and_fails(pwrun, wasm):
    r = pwrun(wasm("callout_auth.wasm"), {"exchanges": [
        http("/ok", headers=[("authorization", "Bearer a")],
             callouts={"auth": {"headers": [[":status", "200"]]}}),
        http("/no", callouts={"auth": {"headers": [[":status", "401"]]}}),
        http("/down", callouts={"auth": "fail"}),
    ]})
    ok, no, down = r.report["exchanges"]
    assert ok["request"]["complete"] is True
    assert ok["response"]["source"] == "upstream"
    co = ok["callouts"][0]
    assert co["upstream"] == "auth"
    assert header(co["headers"], ":path") == ["/auth"]
    assert header(co["headers"], "authorization") == ["Bearer a"]
    assert co["answer"] == "ok"
    acts = ok["actions"]
    assert acts[0] == {"callback": "on_request_headers", "action": "pause"}
    assert acts[1]["callback"] == "on_http_call_response"
    assert acts[1]["token"] == co["token"]
    assert {"host": "continue_stream", "stream": "request"} in acts
    assert no["local_response"]["status"] == 403
    assert no["response"]["source"] == "local"
    assert down["local_response"]["status"] == 403
    assert down["callouts"][0]["answer"] == "fail"


def test_callout_auth_unknown_upstream(pwrun, wasm):
    r = pwrun(wasm("callout_auth.wasm"), {"exchanges": [http("/")]})
    ex = r.ex()
    assert ex["callouts"][0]["answer"] == "refused: unknown upstream"
    # the plugin sees BAD_ARGUMENT and answers 403 itself
    assert "callout_auth: http_call failed: bad_argument" in r.logs
    assert ex["local_response"]["status"] == 403
    assert ex["actions"] == [
        {"callback": "on_request_headers", "action": "pause"},
        {"host": "send_local_response", "status": 403}]


def test_shared_counter(pwrun, wasm):
    r = pwrun(wasm("shared_counter.wasm"),
              {"exchanges": [http("/"), http("/"), http("/")]})
    counts = [header(e["response"]["headers"], "x-request-count")
              for e in r.report["exchanges"]]
    assert counts == [["1"], ["2"], ["3"]]
    kv = r.report["shared_data"]
    assert [(e["key"], e["value"]) for e in kv] == [("request_count", "3")]
    assert kv[0]["cas"] != 0


def test_queue_consumer_gets_enqueued_items(pwrun, wasm):
    r = pwrun(wasm("queue_consumer.wasm"), {
        "enqueue": [{"queue": "events", "items": ["one", "two"]}],
        "exchanges": [{"enqueue_before": [{"queue": "events",
                                           "items": ["three"]}],
                       "request": {"headers": [[":path", "/"]]}}]})
    events = [m for m in r.logs if m.startswith("queue_consumer: event")]
    assert events == ["queue_consumer: event one",
                      "queue_consumer: event two",
                      "queue_consumer: event three"]
    # one notification per item; enqueue_before runs before the exchange
    ready = [e for e in r.report["events"]
             if e.get("callback") == "on_queue_ready"]
    assert len(ready) == 3
    assert all(e["result"] == "ok" for e in ready)
    q = r.report["queues"]
    assert len(q) == 1 and q[0]["items"] == []


def test_queue_producer_fills_a_host_queue(pwrun, wasm):
    r = pwrun(wasm("queue_producer.wasm"), {
        "queues": ["events"],
        "exchanges": [http("/first"), http("/second")]})
    q = r.report["queues"]
    assert q == [{"id": q[0]["id"], "name": "events",
                  "items": ["/first", "/second"]}]
    # pwrun owns that queue: no on_queue_ready goes to the producer
    assert all(a.get("callback") != "on_queue_ready"
               for e in r.report["exchanges"] for a in e["actions"])


def test_queue_producer_without_queue_warns(pwrun, wasm):
    r = pwrun(wasm("queue_producer.wasm"), {"exchanges": [http("/x")]})
    assert any(m.startswith("queue_producer: no queue") for m in r.logs)
    assert r.report["queues"] == []


def test_enqueue_to_missing_queue_is_a_host_error(pwrun, wasm):
    r = pwrun(wasm("hello.wasm"), {"enqueue": [{"queue": "nope",
                                                "items": ["x"]}]})
    assert r.report["host_errors"] == [
        {"what": "enqueue", "detail": 'no queue "nope" in vm ""'}]


def test_metrics(pwrun, wasm):
    r = pwrun(wasm("metrics.wasm"), {"exchanges": [
        http("/", method="POST", body=["abc", "de"]),
        http("/", method="POST", body="0123456789"),
    ]})
    m = {e["name"]: e for e in r.report["metrics"]}
    assert m["requests_total"]["type"] == "counter"
    assert m["requests_total"]["value"] == 2
    assert m["in_flight"]["type"] == "gauge"
    assert m["in_flight"]["value"] == 0
    assert m["body_size"]["type"] == "histogram"
    assert m["body_size"]["value"] == 2
    assert m["body_size"]["sum"] == 15
