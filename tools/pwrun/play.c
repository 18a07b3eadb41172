/*
 * pwrun: the player. Starts the VM and the plugin, then plays the
 * scenario as a proxy would: ticks, queue items, and each exchange's
 * callbacks in order, delivering canned callout answers after the callback
 * that made the call returns, and holding a direction while the plugin
 * keeps it paused.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pwrun.h"

/* Bounds a plugin that answers every delivery with a new callout. */
#define PWR_MAX_DELIVERIES 100000
#define PWR_STORE_SIZE (16 * 1024 * 1024)

static void pwr_fire_ticks(pwr_run_t *run, uint32_t n);

static const char *const pwr_ex_dir_hooks[4] = {
    "on_request", "on_response", "on_downstream_data", "on_upstream_data"
};

/* Record the VM's failure once: where it happened, the reason, the trap. */
static void
pwr_check_failure(pwr_run_t *run, const char *where)
{
    const pw_trap_t *trap;
    const char *reason;
    pwr_json_t *f, *t;

    if (run->vm == NULL || run->failure_recorded || !pw_vm_failed(run->vm)) {
        return;
    }
    run->failure_recorded = 1;
    f = pwr_jn_push(run->failures, pwr_jn_object());
    pwr_jn_set(f, "callback", pwr_jn_cstr(where));
    if (run->ex) {
        pwr_jn_set(f, "exchange", pwr_jn_int((int64_t) run->ex->index));
    } else {
        pwr_jn_set(f, "exchange", pwr_jn_null());
    }
    reason = pw_vm_fail_reason(run->vm);
    pwr_jn_set(f, "reason", pwr_jn_cstr(reason ? reason : ""));
    trap = pw_vm_last_trap(run->vm);
    if (trap) {
        t = pwr_jn_set(f, "trap", pwr_jn_object());
        pwr_jn_set(t, "message", pwr_jn_bytes(trap->message,
                                              strnlen(trap->message,
                                                      PW_TRAP_MSG_MAX)));
        pwr_jn_set(t, "backtrace",
                   pwr_jn_bytes(trap->backtrace,
                                strnlen(trap->backtrace, PW_TRAP_BT_MAX)));
    } else {
        pwr_jn_set(f, "trap", pwr_jn_null());
    }
}

/* Callbacks are recorded before the call, so what they cause follows. */
static pwr_json_t *
pwr_begin_callback(pwr_run_t *run, const char *name, const char *key,
    int64_t token)
{
    pwr_json_t *e;

    e = pwr_jn_object();
    pwr_jn_set(e, "callback", pwr_jn_cstr(name));
    if (key) {
        pwr_jn_set(e, key, pwr_jn_int(token));
    }
    pwr_record(run, e);
    return e;
}

static void
pwr_end_callback(pwr_run_t *run, pwr_json_t *e, const char *name, int rc)
{
    if (rc == PW_OK) {
        pwr_jn_set(e, "result", pwr_jn_cstr("ok"));
    } else if (rc == PW_ENOTFOUND) {
        pwr_jn_set(e, "result", pwr_jn_cstr("dropped"));
    } else {
        pwr_jn_set(e, "result",
                   pwr_jn_cstr(rc == PW_EFAILED ? "failed" : pw_strerror(rc)));
    }
    pwr_check_failure(run, name);
}

static pw_pairs_t
pwr_hdrs_pairs(const pwr_hdrs_t *h)
{
    pw_pairs_t p;

    p.pairs = h->pairs;
    p.n = h->n;
    return p;
}

static const char *const pwr_dlv_names[] = {
    "on_http_call_response", "on_grpc_receive_initial_metadata",
    "on_grpc_receive", "on_grpc_receive_trailing_metadata", "on_grpc_close",
    "on_queue_ready"
};

/* Deliver queued callout answers and queue notifications, in order. */
static void
pwr_drain(pwr_run_t *run)
{
    pwr_delivery_t d;
    pw_pairs_t h, t;
    const pwr_answer_t *a;
    pwr_json_t *e;
    int rc;

    while (run->dlv_head < run->ndlv) {
        d = run->dlv[run->dlv_head++];
        if (d.dropped) {
            continue;
        }
        if (++run->ndelivered > PWR_MAX_DELIVERIES) {
            if (run->ndelivered == PWR_MAX_DELIVERIES + 1) {
                pwr_host_error(run, "deliveries", "more than 100000 "
                               "deliveries: the rest dropped");
            }
            continue;
        }
        a = d.answer;
        e = pwr_begin_callback(run, pwr_dlv_names[d.kind],
                               d.kind == PWR_DLV_QUEUE ? "queue" : "token",
                               d.token);
        switch (d.kind) {
        case PWR_DLV_HTTP:
            if (a) {
                h = pwr_hdrs_pairs(&a->headers);
                t = pwr_hdrs_pairs(&a->trailers);
                rc = pw_plugin_http_response(run->plugin, d.token, &h, a->body,
                                             &t);
            } else {
                rc = pw_plugin_http_response(run->plugin, d.token, NULL,
                                             PW_STR(""), NULL);
            }
            break;
        case PWR_DLV_GRPC_INITIAL:
            h = pwr_hdrs_pairs(&a->initial_metadata);
            rc = pw_plugin_grpc_initial_metadata(run->plugin, d.token, &h);
            break;
        case PWR_DLV_GRPC_MESSAGE:
            rc = pw_plugin_grpc_message(run->plugin, d.token,
                                        a->messages.chunks[d.index]);
            break;
        case PWR_DLV_GRPC_TRAILING:
            h = pwr_hdrs_pairs(&a->trailing_metadata);
            rc = pw_plugin_grpc_trailing_metadata(run->plugin, d.token, &h);
            break;
        case PWR_DLV_GRPC_CLOSE:
            if (a) {
                rc = pw_plugin_grpc_close(run->plugin, d.token, a->status,
                                          a->message);
            } else {
                /* 14: UNAVAILABLE, what a proxy reports for a dead upstream */
                rc = pw_plugin_grpc_close(run->plugin, d.token, 14,
                                          PW_STR("upstream unavailable"));
            }
            break;
        case PWR_DLV_QUEUE:
            rc = pw_plugin_queue_ready(run->plugin, d.token);
            break;
        default:
            rc = PW_EINVAL;
            break;
        }
        pwr_end_callback(run, e, pwr_dlv_names[d.kind], rc);
    }
}

static void
pwr_fire_ticks(pwr_run_t *run, uint32_t n)
{
    pwr_json_t *e;
    uint32_t i;
    int rc;

    for (i = 0; i < n; i++) {
        if (run->tick_ms == 0) {
            run->ticks_skipped++;
            continue;
        }
        run->wall_ns += (uint64_t) run->tick_ms * 1000000;
        run->mono_ns += (uint64_t) run->tick_ms * 1000000;
        e = pwr_begin_callback(run, "on_tick", NULL, 0);
        rc = pw_plugin_tick(run->plugin);
        run->ticks_fired++;
        pwr_end_callback(run, e, "on_tick", rc);
        pwr_drain(run);
    }
}

static void
pwr_enqueue(pwr_run_t *run, const pwr_enqueues_t *eq)
{
    const pwr_enqueue_t *q;
    uint32_t qid;
    size_t i, j;
    char msg[256];
    int rc;

    for (i = 0; i < eq->n; i++) {
        q = &eq->items[i];
        rc = pw_queue_resolve(run->store, q->vm_id, q->name, &qid);
        if (rc != PW_OK) {
            snprintf(msg, sizeof(msg), "no queue \"%.*s\" in vm \"%.*s\"",
                     (int) (q->name.len > 100 ? 100 : q->name.len),
                     q->name.data,
                     (int) (q->vm_id.len > 100 ? 100 : q->vm_id.len),
                     q->vm_id.data);
            pwr_host_error(run, "enqueue", msg);
            continue;
        }
        pwr_note_qid(run, qid);
        for (j = 0; j < q->items.n; j++) {
            rc = pw_queue_enqueue(run->store, qid, q->items.chunks[j].data,
                                  q->items.chunks[j].len);
            if (rc != PW_OK) {
                pwr_host_error(run, "enqueue", pw_strerror(rc));
            }
        }
        pwr_drain(run);
    }
}

/* ---- exchanges ------------------------------------------------------- */

/*
 * After a hook: record its action, deliver what it set in motion.
 * Returns -1 when the exchange ended, 0 to go on, 1 when paused.
 */
static pwr_json_t *
pwr_before_hook(pwr_ex_t *ex, const char *name)
{
    return pwr_begin_callback(ex->run, name, NULL, 0);
}

static int
pwr_after_hook(pwr_ex_t *ex, pwr_json_t *e, const char *name, int rc,
    pw_action_t action)
{
    pwr_run_t *run = ex->run;

    if (rc != PW_OK) {
        pwr_jn_set(e, "result", pwr_jn_cstr(rc == PW_EFAILED
                                            ? "failed" : pw_strerror(rc)));
        pwr_check_failure(run, name);
        if (ex->failed == NULL) {
            ex->failed = name;
        }
        ex->ended = 1;
        pwr_drain(run);
        return -1;
    }
    if (action == PW_ACTION_CONTINUE) {
        pwr_jn_set(e, "action", pwr_jn_cstr("continue"));
    } else if (action == PW_ACTION_PAUSE) {
        pwr_jn_set(e, "action", pwr_jn_cstr("pause"));
    } else {
        /* Envoy's wider values (StopAllIteration...) also hold the stream */
        pwr_jn_set(e, "action", pwr_jn_int((int64_t) action));
    }
    pwr_drain(run);
    if (ex->ended) {
        return -1;
    }
    return action == PW_ACTION_CONTINUE ? 0 : 1;
}

/*
 * A direction is held: let answers and ticks come until the plugin calls
 * continue_stream. 0 when resumed, -1 when the exchange ended or stalled.
 */
static int
pwr_wait(pwr_ex_t *ex, int dir, const char *hook)
{
    pwr_run_t *run = ex->run;
    uint32_t waited = 0;

    for ( ;; ) {
        if (ex->ended) {
            return -1;
        }
        if (ex->resume[dir]) {
            return 0;
        }
        if (run->tick_ms == 0 || waited >= run->sc->max_wait_ticks
            || pw_vm_failed(run->vm))
        {
            ex->stalled = hook;
            ex->ended = 1;
            return -1;
        }
        pwr_fire_ticks(run, 1);
        waited++;
    }
}

static void
pwr_flush(pwr_ex_t *ex, int buf)
{
    pwr_buf_add(&ex->forwarded[buf], ex->pending[buf].data,
                ex->pending[buf].len);
    ex->pending[buf].len = 0;
}

static int
pwr_set_map(pwr_ex_t *ex, int t, const pwr_hdrs_t *h)
{
    pw_pairs_t p = pwr_hdrs_pairs(h);

    if (pw_map_set_pairs(ex->maps[t], &p) != PW_OK) {
        pwr_host_error(ex->run, "headers", "cannot set a header map");
        return -1;
    }
    ex->have_map[t] = 1;
    return 0;
}

/*
 * One direction of an HTTP exchange: headers, body chunks, trailers.
 * dir 0: request (maps 0/1, buffer 0), 1: response (maps 2/3, buffer 1).
 */
static int
pwr_play_direction(pwr_ex_t *ex, int dir, const pwr_hdrs_t *hdrs,
    const pwr_chunks_t *body, const pwr_hdrs_t *trailers)
{
    static const char *const hooks[2][3] = {
        { "on_request_headers", "on_request_body", "on_request_trailers" },
        { "on_response_headers", "on_response_body",
          "on_response_trailers" }
    };
    int hmap = dir ? PW_MAP_HTTP_RESPONSE_HEADERS
                   : PW_MAP_HTTP_REQUEST_HEADERS;
    int tmap = hmap + 1;
    pw_action_t action = PW_ACTION_CONTINUE;
    pwr_json_t *e;
    size_t i;
    int rc, r, eos;

    if (pwr_set_map(ex, hmap, hdrs) != 0) {
        return -1;
    }
    ex->resume[dir] = 0;
    eos = body->n == 0 && trailers->n == 0;
    e = pwr_before_hook(ex, hooks[dir][0]);
    rc = dir ? pw_http_response_headers(ex->stream, (uint32_t) hdrs->n, eos,
                                        &action)
             : pw_http_request_headers(ex->stream, (uint32_t) hdrs->n, eos,
                                       &action);
    r = pwr_after_hook(ex, e, hooks[dir][0], rc, action);
    if (r < 0 || (r == 1 && pwr_wait(ex, dir, hooks[dir][0]) != 0)) {
        return -1;
    }
    ex->fwd[hmap] = pwr_map_json(ex->maps[hmap]);

    for (i = 0; i < body->n; i++) {
        ex->have_buf[dir] = 1;
        pwr_buf_add(&ex->pending[dir], body->chunks[i].data,
                    body->chunks[i].len);
        if (ex->pending[dir].oom) {
            pwr_host_error(ex->run, "body", "out of memory");
            ex->ended = 1;
            return -1;
        }
        eos = i + 1 == body->n && trailers->n == 0;
        ex->resume[dir] = 0;
        action = PW_ACTION_CONTINUE;
        e = pwr_before_hook(ex, hooks[dir][1]);
        rc = dir ? pw_http_response_body(ex->stream,
                                         (uint32_t) ex->pending[dir].len,
                                         eos, &action)
                 : pw_http_request_body(ex->stream,
                                        (uint32_t) ex->pending[dir].len,
                                        eos, &action);
        r = pwr_after_hook(ex, e, hooks[dir][1], rc, action);
        if (r < 0) {
            return -1;
        }
        /* a paused chunk stays buffered and grows with the next one */
        if (r == 1 && !ex->resume[dir]) {
            if (!eos) {
                continue;
            }
            if (pwr_wait(ex, dir, hooks[dir][1]) != 0) {
                return -1;
            }
        }
        pwr_flush(ex, dir);
    }

    if (trailers->n) {
        if (pwr_set_map(ex, tmap, trailers) != 0) {
            return -1;
        }
        ex->resume[dir] = 0;
        action = PW_ACTION_CONTINUE;
        e = pwr_before_hook(ex, hooks[dir][2]);
        rc = dir ? pw_http_response_trailers(ex->stream,
                                             (uint32_t) trailers->n, &action)
                 : pw_http_request_trailers(ex->stream,
                                            (uint32_t) trailers->n, &action);
        r = pwr_after_hook(ex, e, hooks[dir][2], rc, action);
        if (r < 0 || (r == 1 && pwr_wait(ex, dir, hooks[dir][2]) != 0)) {
            return -1;
        }
        pwr_flush(ex, dir);
        ex->fwd[tmap] = pwr_map_json(ex->maps[tmap]);
    }
    ex->complete[dir] = 1;
    return 0;
}

static void
pwr_play_http(pwr_ex_t *ex)
{
    const pwr_exchange_t *sc = ex->sc;

    if (pwr_play_direction(ex, 0, &sc->req_headers, &sc->req_body,
                           &sc->req_trailers) != 0)
    {
        return;
    }
    ex->responded = 1;
    pwr_play_direction(ex, 1, &sc->resp_headers, &sc->resp_body,
                       &sc->resp_trailers);
}

static void
pwr_play_tcp(pwr_ex_t *ex)
{
    const pwr_tcp_event_t *ev;
    pw_action_t action = PW_ACTION_CONTINUE;
    pwr_json_t *e;
    const char *hook;
    size_t i;
    int rc, r, buf, dir;

    e = pwr_before_hook(ex, "on_new_connection");
    rc = pw_tcp_new_connection(ex->stream, &action);
    r = pwr_after_hook(ex, e, "on_new_connection", rc, action);
    if (r < 0
        || (r == 1 && pwr_wait(ex, PW_STREAM_DOWNSTREAM, "on_new_connection")
                      != 0))
    {
        return;
    }
    for (i = 0; i < ex->sc->ntcp; i++) {
        ev = &ex->sc->tcp[i];
        if (ev->kind == PWR_TCP_CLOSE_DOWNSTREAM
            || ev->kind == PWR_TCP_CLOSE_UPSTREAM)
        {
            hook = ev->kind == PWR_TCP_CLOSE_DOWNSTREAM
                   ? "on_downstream_connection_close"
                   : "on_upstream_connection_close";
            e = pwr_before_hook(ex, hook);
            rc = ev->kind == PWR_TCP_CLOSE_DOWNSTREAM
                 ? pw_tcp_downstream_close(ex->stream, PW_PEER_REMOTE)
                 : pw_tcp_upstream_close(ex->stream, PW_PEER_REMOTE);
            if (pwr_after_hook(ex, e, hook, rc, PW_ACTION_CONTINUE) < 0) {
                return;
            }
            continue;
        }
        dir = ev->kind == PWR_TCP_DOWNSTREAM ? PW_STREAM_DOWNSTREAM
                                             : PW_STREAM_UPSTREAM;
        buf = dir;          /* DOWNSTREAM_DATA 2, UPSTREAM_DATA 3 */
        hook = pwr_ex_dir_hooks[dir];
        ex->have_buf[buf] = 1;
        pwr_buf_add(&ex->pending[buf], ev->data.data, ev->data.len);
        if (ex->pending[buf].oom) {
            pwr_host_error(ex->run, "tcp", "out of memory");
            return;
        }
        ex->resume[dir] = 0;
        action = PW_ACTION_CONTINUE;
        e = pwr_before_hook(ex, hook);
        rc = dir == PW_STREAM_DOWNSTREAM
             ? pw_tcp_downstream_data(ex->stream,
                                      (uint32_t) ex->pending[buf].len,
                                      ev->end, &action)
             : pw_tcp_upstream_data(ex->stream,
                                    (uint32_t) ex->pending[buf].len,
                                    ev->end, &action);
        r = pwr_after_hook(ex, e, hook, rc, action);
        if (r < 0) {
            return;
        }
        if (r == 1 && !ex->resume[dir]) {
            if (!ev->end) {
                continue;
            }
            if (pwr_wait(ex, dir, hook) != 0) {
                return;
            }
        }
        pwr_flush(ex, buf);
    }
}

static pwr_json_t *
pwr_str_or_null(const char *s)
{
    return s ? pwr_jn_cstr(s) : pwr_jn_null();
}

static pwr_json_t *
pwr_take(pwr_json_t **p)
{
    pwr_json_t *v = *p;

    *p = NULL;
    return v ? v : pwr_jn_null();
}

static pwr_json_t *
pwr_joined(pwr_ex_t *ex, int buf)
{
    pwr_buf_t b = { 0 };
    pwr_json_t *v;

    pwr_buf_add(&b, ex->forwarded[buf].data, ex->forwarded[buf].len);
    pwr_buf_add(&b, ex->pending[buf].data, ex->pending[buf].len);
    v = b.oom ? NULL : pwr_jn_bytes(b.data, b.len);
    pwr_buf_free(&b);
    return v;
}

static pwr_json_t *
pwr_http_side(pwr_ex_t *ex, int dir, const char *source)
{
    int h = dir ? PW_MAP_HTTP_RESPONSE_HEADERS : PW_MAP_HTTP_REQUEST_HEADERS;
    pwr_json_t *o;

    o = pwr_jn_object();
    if (source) {
        pwr_jn_set(o, "source", pwr_jn_cstr(source));
    }
    /* as forwarded, or the map as the plugin left it when it never was */
    if (ex->fwd[h]) {
        pwr_jn_set(o, "headers", pwr_take(&ex->fwd[h]));
    } else {
        pwr_jn_set(o, "headers", ex->have_map[h] ? pwr_map_json(ex->maps[h])
                                                 : pwr_jn_array());
    }
    pwr_jn_set(o, "body", pwr_joined(ex, dir));
    if (ex->fwd[h + 1]) {
        pwr_jn_set(o, "trailers", pwr_take(&ex->fwd[h + 1]));
    } else {
        pwr_jn_set(o, "trailers", ex->have_map[h + 1]
                                  ? pwr_map_json(ex->maps[h + 1])
                                  : pwr_jn_array());
    }
    pwr_jn_set(o, "complete", pwr_jn_bool(ex->complete[dir]));
    return o;
}

static pwr_json_t *
pwr_local_as_response(const pwr_json_t *lr)
{
    const pwr_json_t *st, *hs, *body;
    pwr_json_t *o, *h, *pair;
    char code[16];
    size_t i, j;

    st = pwr_json_get(lr, "status");
    hs = pwr_json_get(lr, "headers");
    body = pwr_json_get(lr, "body");
    o = pwr_jn_object();
    pwr_jn_set(o, "source", pwr_jn_cstr("local"));
    h = pwr_jn_set(o, "headers", pwr_jn_array());
    snprintf(code, sizeof(code), "%lld", st ? (long long) st->integer : 0);
    pair = pwr_jn_push(h, pwr_jn_array());
    pwr_jn_push(pair, pwr_jn_cstr(":status"));
    pwr_jn_push(pair, pwr_jn_cstr(code));
    for (i = 0; hs && i < hs->n; i++) {
        pair = pwr_jn_push(h, pwr_jn_array());
        for (j = 0; j < 2; j++) {
            pwr_jn_push(pair, pwr_jn_bytes(hs->items[i]->items[j]->str,
                                           hs->items[i]->items[j]->len));
        }
    }
    pwr_jn_set(o, "body", body ? pwr_jn_bytes(body->str, body->len)
                               : pwr_jn_null());
    pwr_jn_set(o, "trailers", pwr_jn_array());
    pwr_jn_set(o, "complete", pwr_jn_bool(1));
    return o;
}

static pwr_json_t *
pwr_ex_report(pwr_ex_t *ex)
{
    pwr_json_t *r, *resp, *d;

    r = pwr_jn_object();
    pwr_jn_set(r, "type", pwr_jn_cstr(ex->sc->kind == PWR_EX_TCP ? "tcp"
                                                                 : "http"));
    if (ex->sc->kind == PWR_EX_HTTP) {
        pwr_jn_set(r, "request", pwr_http_side(ex, 0, NULL));
        if (ex->local_response) {
            resp = pwr_local_as_response(ex->local_response);
        } else if (ex->responded) {
            resp = pwr_http_side(ex, 1, "upstream");
        } else {
            /* the request never got through: nothing reached the client */
            resp = pwr_jn_object();
            pwr_jn_set(resp, "source", pwr_jn_cstr("none"));
            pwr_jn_set(resp, "headers", pwr_jn_array());
            pwr_jn_set(resp, "body", pwr_jn_str("", 0));
            pwr_jn_set(resp, "trailers", pwr_jn_array());
            pwr_jn_set(resp, "complete", pwr_jn_bool(0));
        }
        pwr_jn_set(r, "response", resp);
        pwr_jn_set(r, "local_response", pwr_take(&ex->local_response));
    } else {
        d = pwr_jn_set(r, "downstream", pwr_jn_object());
        pwr_jn_set(d, "forwarded", pwr_jn_bytes(ex->forwarded[2].data,
                                                ex->forwarded[2].len));
        pwr_jn_set(d, "buffered", pwr_jn_bytes(ex->pending[2].data,
                                               ex->pending[2].len));
        d = pwr_jn_set(r, "upstream", pwr_jn_object());
        pwr_jn_set(d, "forwarded", pwr_jn_bytes(ex->forwarded[3].data,
                                                ex->forwarded[3].len));
        pwr_jn_set(d, "buffered", pwr_jn_bytes(ex->pending[3].data,
                                               ex->pending[3].len));
    }
    pwr_jn_set(r, "actions", pwr_take(&ex->actions));
    pwr_jn_set(r, "callouts", pwr_take(&ex->callouts));
    pwr_jn_set(r, "properties_set", pwr_take(&ex->props_set));
    pwr_jn_set(r, "stalled", pwr_str_or_null(ex->stalled));
    pwr_jn_set(r, "closed", pwr_str_or_null(ex->closed));
    pwr_jn_set(r, "failed", pwr_str_or_null(ex->failed));
    return r;
}

static void
pwr_play_exchange(pwr_run_t *run, size_t index)
{
    pwr_ex_t ex;
    int i, rc;

    memset(&ex, 0, sizeof(ex));
    ex.run = run;
    ex.sc = &run->sc->exchanges[index];
    ex.index = index;
    ex.actions = pwr_jn_array();
    ex.callouts = pwr_jn_array();
    ex.props_set = pwr_jn_array();

    for (i = 0; i < 4; i++) {
        if (pw_map_new(&ex.maps[i]) != PW_OK) {
            pwr_host_error(run, "exchange", "out of memory");
            goto done;
        }
    }
    run->ex = &ex;
    rc = pw_stream_new(run->plugin,
                       ex.sc->kind == PWR_EX_TCP ? PW_STREAM_TCP
                                                 : PW_STREAM_HTTP,
                       &ex, &ex.stream);
    if (rc != PW_OK) {
        pwr_after_hook(&ex, pwr_before_hook(&ex, "pw_stream_new"),
                       "pw_stream_new", rc, PW_ACTION_CONTINUE);
    } else {
        if (ex.sc->kind == PWR_EX_TCP) {
            pwr_play_tcp(&ex);
        } else {
            pwr_play_http(&ex);
        }
        /* on_done, on_log, on_delete; their logs go to the report */
        pw_stream_free(ex.stream);
        ex.stream = NULL;
        pwr_check_failure(run, "on_done/on_log/on_delete");
        pwr_drain(run);
    }

done:
    run->ex = NULL;
    pwr_jn_push(run->exchanges, pwr_ex_report(&ex));
    for (i = 0; i < 4; i++) {
        pw_map_free(ex.maps[i]);
        pwr_buf_free(&ex.pending[i]);
        pwr_buf_free(&ex.forwarded[i]);
        pwr_json_free(ex.fwd[i]);
    }
    pwr_json_free(ex.actions);
    pwr_json_free(ex.callouts);
    pwr_json_free(ex.props_set);
    pwr_json_free(ex.local_response);
    pwr_props_clear(&ex.set_props);
}

/* ---- the whole run ---------------------------------------------------- */

static void
pwr_kv_visit(void *arg, pw_str_t key, pw_str_t val, uint32_t cas)
{
    pwr_json_t *list = arg, *e;

    e = pwr_jn_push(list, pwr_jn_object());
    pwr_jn_set(e, "key", pwr_jn_bytes(key.data, key.len));
    pwr_jn_set(e, "value", pwr_jn_bytes(val.data, val.len));
    pwr_jn_set(e, "cas", pwr_jn_int(cas));
}

static void
pwr_metric_visit(void *arg, uint32_t id, const pw_metric_info_t *m)
{
    static const char *const types[] = { "counter", "gauge", "histogram" };
    pwr_json_t *list = arg, *e;

    e = pwr_jn_push(list, pwr_jn_object());
    pwr_jn_set(e, "name", pwr_jn_bytes(m->name.data, m->name.len));
    pwr_jn_set(e, "type", pwr_jn_cstr((unsigned) m->type < 3
                                      ? types[m->type] : "unknown"));
    pwr_jn_set(e, "value", pwr_jn_int(m->value));
    if (m->type == PW_METRIC_HISTOGRAM) {
        pwr_jn_set(e, "sum", pwr_jn_int(m->sum));
    }
}

static pwr_json_t *
pwr_queues_report(pwr_run_t *run)
{
    pwr_json_t *list, *e, *items;
    const pwr_json_t *n, *id;
    uint8_t *data;
    size_t i, j, len;
    int k;

    list = pwr_jn_array();
    for (i = 0; i < run->nqids; i++) {
        e = pwr_jn_push(list, pwr_jn_object());
        pwr_jn_set(e, "id", pwr_jn_int(run->qids[i]));
        n = NULL;
        for (j = 0; run->queue_names && j < run->queue_names->n; j++) {
            id = pwr_json_get(run->queue_names->items[j], "id");
            if (id && id->integer == (int64_t) run->qids[i]) {
                n = pwr_json_get(run->queue_names->items[j], "name");
            }
        }
        pwr_jn_set(e, "name", n ? pwr_jn_bytes(n->str, n->len)
                                : pwr_jn_null());
        items = pwr_jn_set(e, "items", pwr_jn_array());
        /* what is left at the end, oldest first (bounded) */
        for (k = 0; k < 10000; k++) {
            if (pw_queue_dequeue(run->store, run->qids[i], &data, &len)
                != PW_OK)
            {
                break;
            }
            pwr_jn_push(items, pwr_jn_bytes(data, len));
            free(data);
        }
    }
    return list;
}

static const char *
pwr_abi_name(pw_abi_t abi)
{
    switch (abi) {
    case PW_ABI_0_1_0:
        return "0.1.0";
    case PW_ABI_0_2_0:
        return "0.2.0";
    case PW_ABI_0_2_1:
        return "0.2.1";
    default:
        return "unknown";
    }
}

static pwr_json_t *
pwr_report(pwr_run_t *run)
{
    pwr_json_t *r, *o;
    const pwr_scenario_t *sc = run->sc;

    r = pwr_jn_object();
    o = pwr_jn_set(r, "plugin", pwr_jn_object());
    pwr_jn_set(o, "file", pwr_jn_bytes(run->plugin_path,
                                       strlen(run->plugin_path)));
    pwr_jn_set(o, "abi", pwr_jn_cstr(pwr_abi_name(pw_module_abi(run->module))));
    pwr_jn_set(o, "vm_id", pwr_jn_bytes(sc->vm_id.data, sc->vm_id.len));
    pwr_jn_set(o, "root_id", pwr_jn_bytes(sc->root_id.data,
                                          sc->root_id.len));
    pwr_jn_set(o, "name", pwr_jn_bytes(sc->plugin_name.data,
                                       sc->plugin_name.len));
    o = pwr_jn_set(r, "start", pwr_jn_object());
    pwr_jn_set(o, "ok", pwr_jn_bool(run->start_ok));
    if (run->start_ok) {
        pwr_jn_set(o, "error", pwr_jn_null());
    } else {
        char msg[600];

        snprintf(msg, sizeof(msg), "%s: %s", run->start_what,
                 run->start_error);
        pwr_jn_set(o, "error", pwr_jn_cstr(msg));
    }
    pwr_jn_set(r, "exchanges", pwr_take(&run->exchanges));
    pwr_jn_set(r, "events", pwr_take(&run->events));
    pwr_jn_set(r, "callouts", pwr_take(&run->callouts));
    pwr_jn_set(r, "logs", pwr_take(&run->logs));
    o = pwr_jn_set(r, "ticks", pwr_jn_object());
    pwr_jn_set(o, "period_ms", pwr_jn_int(run->tick_ms));
    pwr_jn_set(o, "fired", pwr_jn_int(run->ticks_fired));
    pwr_jn_set(o, "skipped", pwr_jn_int(run->ticks_skipped));
    o = pwr_jn_set(r, "shared_data", pwr_jn_array());
    if (run->store) {
        pw_kv_foreach(run->store, pwr_kv_visit, o);
    }
    pwr_jn_set(r, "queues", run->store ? pwr_queues_report(run)
                                       : pwr_jn_array());
    o = pwr_jn_set(r, "metrics", pwr_jn_array());
    if (run->store) {
        pw_metric_foreach(run->store, pwr_metric_visit, o);
    }
    pwr_jn_set(r, "properties_set", pwr_take(&run->props_set));
    pwr_jn_set(r, "foreign_calls", pwr_take(&run->foreign_calls));
    pwr_jn_set(r, "failures", pwr_take(&run->failures));
    pwr_jn_set(r, "host_errors", pwr_take(&run->host_errors));
    return r;
}

static void
pwr_start_error(pwr_run_t *run, const char *what, const char *err)
{
    run->start_what = what;
    snprintf(run->start_error, sizeof(run->start_error), "%s",
             err[0] ? err : "unknown error");
}

int
pwr_play(pwr_run_t *run, pwr_json_t **report)
{
    pwr_scenario_t *sc = run->sc;
    pw_store_conf_t sconf;
    pw_vm_conf_t vconf;
    pw_plugin_conf_t pconf;
    pwr_json_t *e;
    char err[512];
    uint32_t qid;
    size_t i;
    int rc, code = 0;

    run->logs = pwr_jn_array();
    run->events = pwr_jn_array();
    run->callouts = pwr_jn_array();
    run->props_set = pwr_jn_array();
    run->foreign_calls = pwr_jn_array();
    run->failures = pwr_jn_array();
    run->exchanges = pwr_jn_array();
    run->host_errors = pwr_jn_array();
    run->queue_names = pwr_jn_array();
    run->wall_ns = sc->clock_ns;
    run->mono_ns = 1000000000ULL;
    err[0] = '\0';

    memset(&sconf, 0, sizeof(sconf));
    sconf.queue_ready = pwr_queue_ready;
    sconf.queue_ready_data = run;
    rc = pw_store_new(PWR_STORE_SIZE, &sconf, &run->store);
    if (rc != PW_OK) {
        pwr_start_error(run, "cannot create the store", pw_strerror(rc));
        code = 1;
        goto report;
    }
    for (i = 0; i < sc->nqueues; i++) {
        rc = pw_queue_register(run->store, sc->vm_id, sc->queues[i],
                               PWR_QUEUE_OWNER_PWRUN, &qid);
        if (rc != PW_OK) {
            pwr_host_error(run, "queues", pw_strerror(rc));
            continue;
        }
        pwr_note_qid(run, qid);
        e = pwr_jn_push(run->queue_names, pwr_jn_object());
        pwr_jn_set(e, "id", pwr_jn_int(qid));
        pwr_jn_set(e, "name", pwr_jn_bytes(sc->queues[i].data,
                                           sc->queues[i].len));
    }

    memset(&vconf, 0, sizeof(vconf));
    vconf.host = &pwr_host;
    vconf.host_data = run;
    vconf.store = run->store;
    vconf.vm_id = sc->vm_id;
    vconf.vm_config = sc->vm_config;
    vconf.env = sc->env;
    vconf.nenv = sc->nenv;
    vconf.max_call_ms = sc->max_call_ms;
    rc = pw_vm_new(run->module, &vconf, &run->vm, err, sizeof(err));
    if (rc != PW_OK) {
        pwr_start_error(run, "cannot start", err);
        if (rc == PW_ETRAP) {
            e = pwr_jn_push(run->failures, pwr_jn_object());
            pwr_jn_set(e, "callback", pwr_jn_cstr("start"));
            pwr_jn_set(e, "exchange", pwr_jn_null());
            pwr_jn_set(e, "reason", pwr_jn_cstr(err));
            pwr_jn_set(e, "trap", pwr_jn_null());
        }
        run->vm = NULL;
        code = 1;
        goto report;
    }
    for (i = 0; i < sc->nforeign; i++) {
        rc = pw_vm_register_foreign(run->vm, sc->foreign[i].name,
                                    pwr_foreign_fn, &sc->foreign[i]);
        if (rc != PW_OK) {
            pwr_host_error(run, "foreign_functions", pw_strerror(rc));
        }
    }

    memset(&pconf, 0, sizeof(pconf));
    pconf.name = sc->plugin_name;
    pconf.root_id = sc->root_id;
    pconf.config = sc->config;
    pconf.host_data = run;
    rc = pw_plugin_new(run->vm, &pconf, &run->plugin, err, sizeof(err));
    if (rc != PW_OK) {
        pwr_start_error(run, "cannot configure", err);
        pwr_check_failure(run, "on_vm_start/on_configure");
        run->plugin = NULL;
        code = 1;
        goto report;
    }
    run->start_ok = 1;
    pwr_drain(run);

    pwr_fire_ticks(run, sc->ticks);
    pwr_enqueue(run, &sc->enqueue);
    for (i = 0; i < sc->nexchanges; i++) {
        pwr_fire_ticks(run, sc->exchanges[i].ticks_before);
        pwr_enqueue(run, &sc->exchanges[i].enqueue_before);
        pwr_play_exchange(run, i);
    }
    pwr_fire_ticks(run, sc->ticks_after);

    /* the root context's on_done/on_delete may still log or write */
    pw_plugin_free(run->plugin);
    run->plugin = NULL;
    pwr_check_failure(run, "on_done/on_delete (root)");

report:
    *report = pwr_report(run);
    return code;
}

void
pwr_run_free(pwr_run_t *run)
{
    if (run->plugin) {
        pw_plugin_free(run->plugin);
    }
    if (run->vm) {
        pw_vm_free(run->vm);
    }
    if (run->store) {
        pw_store_free(run->store);
    }
    pwr_json_free(run->logs);
    pwr_json_free(run->events);
    pwr_json_free(run->callouts);
    pwr_json_free(run->props_set);
    pwr_json_free(run->foreign_calls);
    pwr_json_free(run->failures);
    pwr_json_free(run->exchanges);
    pwr_json_free(run->host_errors);
    pwr_json_free(run->queue_names);
    pwr_props_clear(&run->set_props);
    pwr_buf_free(&run->scratch);
    free(run->dlv);
    free(run->qids);
}
