/*
 * gRPC calls and streams from plugins (proxy_grpc_call, proxy_grpc_stream,
 * proxy_grpc_send, proxy_grpc_cancel, proxy_grpc_close) over HTTP/2 with
 * nghttp2, on nginx's event loop: plain text (h2c, prior knowledge), or
 * over TLS (ngx_pw_tls.c, ALPN h2) for targets written https:// or listed
 * in tls_upstream.
 *
 * One HTTP/2 connection per target (and TLS server name) per worker
 * carries every call to that target, one stream per call. nghttp2
 * callbacks only record what arrived on the call (a queue of events); a
 * posted event per call hands them to the plugin afterwards, so a plugin
 * never runs inside nghttp2 or inside the hostcall that started the call,
 * and may cancel, send or start other calls from any callback.
 *
 * Answers follow Envoy: a unary call ends with one on_grpc_receive (the
 * answer, status OK) or one on_grpc_close (any other outcome); a stream
 * gets on_grpc_receive_initial_metadata, on_grpc_receive per message,
 * on_grpc_receive_trailing_metadata and on_grpc_close.
 */
#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <ngx_event_connect.h>
#include <ngx_http.h>
#include <nghttp2/nghttp2.h>
#include "ngx_http_pw_callout.h"
#include "ngx_http_pw_callout_target.h"
#include "ngx_pw_tls.h"


#define NGX_HTTP_PW_GRPC_CONNECT_TIMEOUT  10000
#define NGX_HTTP_PW_GRPC_IDLE_TIMEOUT     60000
/* as gRPC's default limit of a received message */
#define NGX_HTTP_PW_GRPC_MAX_MESSAGE      (4 * 1024 * 1024)
#define NGX_HTTP_PW_GRPC_MAX_METADATA     (64 * 1024)

/* gRPC status codes */
#define NGX_HTTP_PW_GRPC_OK                  0
#define NGX_HTTP_PW_GRPC_CANCELLED           1
#define NGX_HTTP_PW_GRPC_UNKNOWN             2
#define NGX_HTTP_PW_GRPC_DEADLINE_EXCEEDED   4
#define NGX_HTTP_PW_GRPC_NOT_FOUND           5
#define NGX_HTTP_PW_GRPC_PERMISSION_DENIED   7
#define NGX_HTTP_PW_GRPC_RESOURCE_EXHAUSTED  8
#define NGX_HTTP_PW_GRPC_UNIMPLEMENTED       12
#define NGX_HTTP_PW_GRPC_INTERNAL            13
#define NGX_HTTP_PW_GRPC_UNAVAILABLE         14
#define NGX_HTTP_PW_GRPC_UNAUTHENTICATED     16

/* what a call has to hand to the plugin */
#define NGX_HTTP_PW_GRPC_EV_INITIAL   0
#define NGX_HTTP_PW_GRPC_EV_MESSAGE   1
#define NGX_HTTP_PW_GRPC_EV_TRAILING  2
#define NGX_HTTP_PW_GRPC_EV_CLOSE     3


typedef struct ngx_http_pw_grpc_ev_s    ngx_http_pw_grpc_ev_t;
typedef struct ngx_http_pw_grpc_conn_s  ngx_http_pw_grpc_conn_t;
typedef struct ngx_http_pw_grpc_s       ngx_http_pw_grpc_t;

struct ngx_http_pw_grpc_ev_s {
    ngx_http_pw_grpc_ev_t      *next;
    ngx_uint_t                  type;
    pw_pairs_t                  md;          /* points inside this block */
    pw_str_t                    data;        /* message, or close message */
    uint32_t                    status;
};

struct ngx_http_pw_grpc_conn_s {
    ngx_queue_t                 link;        /* in ngx_http_pw_grpc_conns */
    ngx_str_t                   key;         /* the target as given,
                                                without https:// */
    ngx_str_t                   server_name; /* TLS (malloc'd), or empty */
    ngx_str_t                   name;        /* address or host, for logs */
    ngx_http_pw_target_t        target;      /* host points into key */
    u_char                      text[NGX_SOCKADDR_STRLEN];
    ngx_resolver_t             *resolver;
    ngx_msec_t                  resolver_timeout;
    ngx_resolver_ctx_t         *rctx;
    ngx_event_t                 start;       /* posted: resolve, connect */
    ngx_peer_connection_t       pc;
    ngx_connection_t           *c;
    nghttp2_session            *h2;
    ngx_queue_t                 calls;       /* open streams */
    ngx_event_t                 idle;
    ngx_uint_t                  calls_made;  /* streams opened, for logs */
    unsigned                    connected:1; /* HTTP/2 may flow */
    unsigned                    closing:1;   /* no new streams */
    unsigned                    tls:1;
    unsigned                    tls_failed:1; /* closing for TLS */
};

struct ngx_http_pw_grpc_s {
    ngx_queue_t                 link;        /* in ngx_http_pw_grpc_calls */
    ngx_queue_t                 clink;       /* in conn->calls */
    ngx_http_pw_grpc_conn_t    *conn;        /* NULL once the stream ended */
    int32_t                     stream_id;
    uint32_t                    token;
    ngx_msec_t                  timeout;     /* the unary call's, or 0 */
    ngx_pw_root_t              *root;
    ngx_pw_instance_t          *inst;
    ngx_http_pw_fctx_t         *fctx;
    ngx_event_t                 timer;
    ngx_event_t                 post;

    ngx_http_pw_buf_t           out;         /* framed messages to send */
    size_t                      out_pos;
    ngx_http_pw_buf_t           in;          /* received DATA, unframed */
    size_t                      in_pos;
    ngx_http_pw_buf_t           hb;          /* header block being read */
    ngx_uint_t                  hn;

    ngx_http_pw_grpc_ev_t      *events;
    ngx_http_pw_grpc_ev_t     **last;
    ngx_http_pw_grpc_ev_t      *answer;      /* unary: the message */

    ngx_uint_t                  http_status;
    uint32_t                    status;
    u_char                     *status_msg;  /* malloc'd, decoded */
    size_t                      status_msg_len;

    unsigned                    unary:1;
    unsigned                    out_eos:1;   /* half-close asked */
    unsigned                    headers_seen:1;
    unsigned                    has_status:1;
    unsigned                    done:1;      /* final event queued */
    unsigned                    cancelled:1;
    unsigned                    counted:1;   /* in fctx->ncallouts */
    unsigned                    delivering:1;
    unsigned                    ref_pending:1;
};


static void ngx_http_pw_grpc_conn_close(ngx_http_pw_grpc_conn_t *conn,
    const char *why);


static ngx_queue_t  ngx_http_pw_grpc_conns;
static ngx_queue_t  ngx_http_pw_grpc_calls;
static ngx_uint_t   ngx_http_pw_grpc_inited;


static void
ngx_http_pw_grpc_init(void)
{
    if (!ngx_http_pw_grpc_inited) {
        ngx_queue_init(&ngx_http_pw_grpc_conns);
        ngx_queue_init(&ngx_http_pw_grpc_calls);
        ngx_http_pw_grpc_inited = 1;
    }
}


/* ---- events to the plugin ---- */

static ngx_http_pw_grpc_ev_t *
ngx_http_pw_grpc_ev_new(ngx_uint_t type, ngx_http_pw_buf_t *hb, ngx_uint_t hn,
    const u_char *data, size_t len)
{
    u_char                 *p, *end, *copy;
    size_t                  size, hlen;
    uint32_t                klen, vlen;
    pw_pair_t              *pairs;
    ngx_uint_t              i;
    ngx_http_pw_grpc_ev_t  *ev;

    hlen = hb ? hb->len : 0;
    size = sizeof(ngx_http_pw_grpc_ev_t) + hn * sizeof(pw_pair_t) + hlen
           + len;

    ev = malloc(size);
    if (ev == NULL) {
        return NULL;
    }

    ngx_memzero(ev, sizeof(ngx_http_pw_grpc_ev_t));
    ev->type = type;

    pairs = (pw_pair_t *) (ev + 1);
    copy = (u_char *) (pairs + hn);

    if (hlen) {
        ngx_memcpy(copy, hb->data, hlen);
    }

    /* records of the header block: u32 klen, u32 vlen, key, value */
    p = copy;
    end = copy + hlen;

    for (i = 0; i < hn && p + 8 <= end; i++) {
        ngx_memcpy(&klen, p, 4);
        ngx_memcpy(&vlen, p + 4, 4);
        p += 8;
        pairs[i].key.data = (const char *) p;
        pairs[i].key.len = klen;
        p += klen;
        pairs[i].value.data = (const char *) p;
        pairs[i].value.len = vlen;
        p += vlen;
    }

    ev->md.pairs = pairs;
    ev->md.n = i;

    if (len) {
        ngx_memcpy(end, data, len);
    }

    ev->data.data = (const char *) end;
    ev->data.len = len;

    return ev;
}


static void
ngx_http_pw_grpc_push(ngx_http_pw_grpc_t *call, ngx_http_pw_grpc_ev_t *ev)
{
    ev->next = NULL;
    *call->last = ev;
    call->last = &ev->next;

    if (!call->delivering && !call->post.posted) {
        ngx_post_event(&call->post, &ngx_posted_events);
    }
}


static void
ngx_http_pw_grpc_push_close(ngx_http_pw_grpc_t *call, uint32_t status,
    const u_char *msg, size_t len)
{
    ngx_http_pw_grpc_ev_t  *ev;

    ev = ngx_http_pw_grpc_ev_new(NGX_HTTP_PW_GRPC_EV_CLOSE, NULL, 0, msg, len);
    if (ev == NULL) {
        /* the plugin is not told: drop the call at delivery time */
        ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, 0,
                      "proxy_wasm: grpc call %uD: no memory for its answer",
                      call->token);
        call->cancelled = 1;
        if (!call->delivering && !call->post.posted) {
            ngx_post_event(&call->post, &ngx_posted_events);
        }
        return;
    }

    ev->status = status;
    ngx_http_pw_grpc_push(call, ev);
}


static void
ngx_http_pw_grpc_conn_kick(ngx_http_pw_grpc_conn_t *conn)
{
    if (conn->connected && conn->c && !conn->c->write->posted) {
        ngx_post_event(conn->c->write, &ngx_posted_events);
    }
}


static void
ngx_http_pw_grpc_conn_arm_idle(ngx_http_pw_grpc_conn_t *conn)
{
    if (!ngx_queue_empty(&conn->calls)) {
        return;
    }

    if (!conn->connected) {
        /* nothing to keep yet (a resolution, a connect or a handshake
         * stops): a stalled server does not hold the worker */
        ngx_http_pw_grpc_conn_close(conn, "unused");
        return;
    }

    /* while the worker exits an idle connection goes at once, and the
     * timer holds the worker until then */
    conn->idle.cancelable = ngx_exiting ? 0 : 1;
    ngx_add_timer(&conn->idle, ngx_exiting ? 1
                                           : NGX_HTTP_PW_GRPC_IDLE_TIMEOUT);
}


/*
 * The call's stream is over (or abandoned): detach it from the connection
 * (reset when rst) and, unless cancelled, queue what the plugin gets last.
 */
static void
ngx_http_pw_grpc_finish(ngx_http_pw_grpc_t *call, uint32_t status,
    const char *msg, ngx_uint_t rst)
{
    size_t                    len;
    ngx_http_pw_grpc_conn_t  *conn;

    if (call->done) {
        return;
    }

    call->done = 1;

    if (call->timer.timer_set) {
        ngx_del_timer(&call->timer);
    }

    conn = call->conn;

    if (conn) {
        if (call->stream_id > 0) {
            if (rst) {
                (void) nghttp2_submit_rst_stream(conn->h2,
                                                 NGHTTP2_FLAG_NONE,
                                                 call->stream_id,
                                                 NGHTTP2_CANCEL);
                ngx_http_pw_grpc_conn_kick(conn);
            }
            (void) nghttp2_session_set_stream_user_data(conn->h2,
                                                        call->stream_id,
                                                        NULL);
        }

        ngx_queue_remove(&call->clink);
        call->conn = NULL;
        ngx_http_pw_grpc_conn_arm_idle(conn);
    }

    if (call->cancelled) {
        return;
    }

    if (call->unary) {
        if (status == NGX_HTTP_PW_GRPC_OK && call->answer) {
            ngx_http_pw_grpc_push(call, call->answer);
            call->answer = NULL;
            return;
        }

        if (status == NGX_HTTP_PW_GRPC_OK) {
            status = NGX_HTTP_PW_GRPC_INTERNAL;
            msg = "no response message";
        }
    }

    if (msg) {
        len = ngx_strlen(msg);
        ngx_http_pw_grpc_push_close(call, status, (u_char *) msg, len);

    } else {
        ngx_http_pw_grpc_push_close(call, status, call->status_msg,
                                    call->status_msg_len);
    }
}


/* The call no longer counts among its filter's calls. */
static void
ngx_http_pw_grpc_uncount(ngx_http_pw_grpc_t *call)
{
    if (call->counted) {
        call->counted = 0;
        call->fctx->ncallouts--;
    }
}


static void
ngx_http_pw_grpc_free(ngx_http_pw_grpc_t *call)
{
    ngx_pw_instance_t      *inst;
    ngx_http_pw_grpc_ev_t  *ev, *next;

    call->cancelled = 1;
    ngx_http_pw_grpc_finish(call, 0, NULL, 1);

    if (call->timer.timer_set) {
        ngx_del_timer(&call->timer);
    }

    if (call->post.posted) {
        ngx_delete_posted_event(&call->post);
    }

    for (ev = call->events; ev; ev = next) {
        next = ev->next;
        free(ev);
    }

    free(call->answer);
    free(call->status_msg);
    ngx_http_pw_buf_release(&call->out);
    ngx_http_pw_buf_release(&call->in);
    ngx_http_pw_buf_release(&call->hb);

    ngx_queue_remove(&call->link);
    ngx_http_pw_grpc_uncount(call);

    ngx_pw_host_metric((ngx_cycle_t *) ngx_cycle, "callouts_in_flight", NULL,
                       -1);

    inst = call->inst;

    if (call->ref_pending) {
        free(call);
        return;
    }

    free(call);
    ngx_pw_instance_release(inst);
}


/*
 * Take the reference a call made while its instance started could not
 * (the count is set when the start returns): NGX_DECLINED when that
 * instance did not become its module's running one (its start failed and
 * freed it, or it is a per-request instance).
 */
static ngx_int_t
ngx_http_pw_grpc_ref(ngx_http_pw_grpc_t *call)
{
    if (ngx_pw_instance_take_ref(call->inst) != NGX_OK) {
        return NGX_DECLINED;
    }

    call->ref_pending = 0;

    return NGX_OK;
}


static void
ngx_http_pw_grpc_deliver(ngx_event_t *ev)
{
    ngx_pw_root_t          *root;
    ngx_pw_instance_t      *inst;
    ngx_http_pw_grpc_t     *call;
    ngx_http_pw_grpc_ev_t  *e;

    call = ev->data;

    if (call->ref_pending) {
        if (ngx_http_pw_grpc_ref(call) != NGX_OK) {
            ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                          "proxy_wasm: grpc call %uD dropped: its instance "
                          "did not start", call->token);
            ngx_http_pw_grpc_free(call);
            return;
        }

        if (call->timeout && !call->done) {
            ngx_add_timer(&call->timer, call->timeout);
        }
    }

    inst = call->inst;
    root = call->root;

    call->delivering = 1;

    while (call->events && !call->cancelled) {
        e = call->events;
        call->events = e->next;
        if (call->events == NULL) {
            call->last = &call->events;
        }

        if (inst->failed || root->plugin == NULL) {
            free(e);
            call->cancelled = 1;
            break;
        }

        switch (e->type) {

        case NGX_HTTP_PW_GRPC_EV_INITIAL:
            (void) pw_plugin_grpc_initial_metadata(root->plugin, call->token,
                                                   &e->md);
            break;

        case NGX_HTTP_PW_GRPC_EV_MESSAGE:
            (void) pw_plugin_grpc_message(root->plugin, call->token,
                                          e->data);
            break;

        case NGX_HTTP_PW_GRPC_EV_TRAILING:
            (void) pw_plugin_grpc_trailing_metadata(root->plugin,
                                                    call->token, &e->md);
            break;

        default: /* NGX_HTTP_PW_GRPC_EV_CLOSE */
            (void) pw_plugin_grpc_close(root->plugin, call->token,
                                        e->status, e->data);
            break;
        }

        free(e);

        if (ngx_pw_instance_check(inst, ngx_cycle->log)) {
            call->cancelled = 1;
        }
    }

    call->delivering = 0;

    if (call->cancelled || (call->done && call->events == NULL)) {
        ngx_http_pw_grpc_free(call);
    }
}


static void
ngx_http_pw_grpc_timeout(ngx_event_t *ev)
{
    ngx_http_pw_grpc_t  *call = ev->data;

    ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                  "proxy_wasm: grpc call %uD timed out", call->token);

    ngx_http_pw_grpc_finish(call, NGX_HTTP_PW_GRPC_DEADLINE_EXCEEDED,
                            "deadline exceeded", 1);
}


/* ---- the HTTP/2 connection ---- */

static void
ngx_http_pw_grpc_conn_close(ngx_http_pw_grpc_conn_t *conn, const char *why)
{
    ngx_queue_t         *q;
    ngx_http_pw_grpc_t  *call;

    conn->closing = 1;

    while (!ngx_queue_empty(&conn->calls)) {
        q = ngx_queue_head(&conn->calls);
        call = ngx_queue_data(q, ngx_http_pw_grpc_t, clink);

        /* the session goes: no reset, no stream data */
        ngx_queue_remove(&call->clink);
        call->conn = NULL;
        call->stream_id = 0;

        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "proxy_wasm: grpc call %uD to %V failed: %s",
                      call->token, &conn->name, why);

        if (conn->tls_failed) {
            ngx_pw_host_metric((ngx_cycle_t *) ngx_cycle,
                               "callout_failures_tls", NULL, 1);
        }

        ngx_http_pw_grpc_finish(call, NGX_HTTP_PW_GRPC_UNAVAILABLE, why, 0);
    }

    if (conn->idle.timer_set) {
        ngx_del_timer(&conn->idle);
    }

    if (conn->start.posted) {
        ngx_delete_posted_event(&conn->start);
    }

    if (conn->rctx) {
        ngx_resolve_name_done(conn->rctx);
        conn->rctx = NULL;
    }

    if (conn->h2) {
        nghttp2_session_del(conn->h2);
    }

    if (conn->c) {
        ngx_pw_tls_close(conn->c);
    }

    ngx_queue_remove(&conn->link);
    free(conn->key.data);
    free(conn->server_name.data);
    free(conn);
}


static void
ngx_http_pw_grpc_idle(ngx_event_t *ev)
{
    ngx_http_pw_grpc_conn_t  *conn = ev->data;

    if (ngx_queue_empty(&conn->calls)) {
        ngx_http_pw_grpc_conn_close(conn, "idle");
    }
}


static void
ngx_http_pw_grpc_conn_send(ngx_http_pw_grpc_conn_t *conn)
{
    int  rv;

    rv = nghttp2_session_send(conn->h2);
    if (rv != 0) {
        ngx_http_pw_grpc_conn_close(conn, nghttp2_strerror(rv));
        return;
    }

    if (!nghttp2_session_want_read(conn->h2)
        && !nghttp2_session_want_write(conn->h2))
    {
        ngx_http_pw_grpc_conn_close(conn, "connection closed (GOAWAY)");
        return;
    }

    if (ngx_handle_write_event(conn->c->write, 0) != NGX_OK) {
        ngx_http_pw_grpc_conn_close(conn, "cannot watch the connection");
    }
}


/*
 * The HTTP/2 session may talk: its preface and SETTINGS, then the streams
 * submitted meanwhile.
 */
static void
ngx_http_pw_grpc_conn_ready(ngx_http_pw_grpc_conn_t *conn)
{
    conn->connected = 1;
    ngx_http_pw_grpc_conn_kick(conn);
}


static void ngx_http_pw_grpc_read_handler(ngx_event_t *rev);
static void ngx_http_pw_grpc_write_handler(ngx_event_t *wev);


/* A TLS failure ends every call on conn with "tls: why". */
static void
ngx_http_pw_grpc_conn_tls_fail(ngx_http_pw_grpc_conn_t *conn,
    const char *why)
{
    u_char  buf[512], *p;

    p = ngx_snprintf(buf, sizeof(buf) - 1, "tls: %s", why);
    *p = '\0';

    conn->tls_failed = 1;
    ngx_http_pw_grpc_conn_close(conn, (char *) buf);
}


/* The handshake ended: err NULL when it and the checks passed. */
static void
ngx_http_pw_grpc_conn_tls_done(ngx_connection_t *c, const char *err)
{
    u_char                   *p, why[128];
    ngx_str_t                 proto;
    ngx_http_pw_grpc_conn_t  *conn = c->data;

    if (c->write->timer_set) {
        ngx_del_timer(c->write);
    }

    c->read->handler = ngx_http_pw_grpc_read_handler;
    c->write->handler = ngx_http_pw_grpc_write_handler;

    if (err) {
        ngx_http_pw_grpc_conn_tls_fail(conn, err);
        return;
    }

    if (c->close) {
        ngx_http_pw_grpc_conn_close(conn, "worker is shutting down");
        return;
    }

    /* gRPC needs HTTP/2: a server that did not choose it would read our
     * preface as garbage */
    ngx_pw_tls_alpn(c, &proto);

    if (proto.len != 2 || ngx_strncmp(proto.data, "h2", 2) != 0) {
        if (proto.len == 0) {
            p = ngx_snprintf(why, sizeof(why) - 1, "the server did not "
                             "choose HTTP/2 (no ALPN protocol)");

        } else {
            p = ngx_snprintf(why, sizeof(why) - 1, "the server chose ALPN "
                             "\"%*s\", not h2", ngx_min(proto.len, 32),
                             proto.data);
        }
        *p = '\0';

        ngx_http_pw_grpc_conn_tls_fail(conn, (char *) why);
        return;
    }

    ngx_http_pw_grpc_conn_ready(conn);

    /* what came with the end of the handshake may be read already */
    ngx_post_event(c->read, &ngx_posted_events);
}


/*
 * The TCP connection is up: over TLS the handshake comes between connect
 * and the HTTP/2 preface, bounded by the connect timeout.
 */
static void
ngx_http_pw_grpc_conn_connected(ngx_http_pw_grpc_conn_t *conn)
{
    ngx_int_t             rc;
    const char           *err;
    ngx_connection_t     *c = conn->c;
    ngx_pw_tls_params_t   params;

    if (c->write->timer_set) {
        ngx_del_timer(c->write);
    }

    if (!conn->tls) {
        ngx_http_pw_grpc_conn_ready(conn);
        return;
    }

    params.server_name = conn->server_name;
    ngx_str_set(&params.alpn, NGX_PW_TLS_ALPN_H2);
    params.peer = conn->name;

    err = NULL;
    rc = ngx_pw_tls_handshake(c, &params, ngx_http_pw_grpc_conn_tls_done,
                              &err);

    if (rc == NGX_AGAIN) {
        ngx_add_timer(c->write, NGX_HTTP_PW_GRPC_CONNECT_TIMEOUT);
        return;
    }

    ngx_http_pw_grpc_conn_tls_done(c, rc == NGX_OK ? NULL
                                      : err ? err : "handshake failed");
}


static ngx_int_t
ngx_http_pw_grpc_test_connect(ngx_connection_t *c)
{
    int        err;
    socklen_t  len;

    err = 0;
    len = sizeof(int);

    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, (void *) &err, &len) == -1) {
        err = ngx_socket_errno;
    }

    if (err) {
        ngx_log_error(NGX_LOG_ERR, c->log, err, "connect() failed");
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* The connect() ended (a handler before HTTP/2 or TLS runs). */
static void
ngx_http_pw_grpc_conn_tcp_up(ngx_http_pw_grpc_conn_t *conn)
{
    if (ngx_http_pw_grpc_test_connect(conn->c) != NGX_OK) {
        ngx_http_pw_grpc_conn_close(conn, "connect() failed");
        return;
    }

    ngx_http_pw_grpc_conn_connected(conn);
}


static void
ngx_http_pw_grpc_write_handler(ngx_event_t *wev)
{
    ngx_connection_t         *c = wev->data;
    ngx_http_pw_grpc_conn_t  *conn = c->data;

    if (wev->timedout) {
        ngx_http_pw_grpc_conn_close(conn, "connect() timed out");
        return;
    }

    if (!conn->connected) {
        ngx_http_pw_grpc_conn_tcp_up(conn);
        return;
    }

    ngx_http_pw_grpc_conn_send(conn);
}


static void
ngx_http_pw_grpc_read_handler(ngx_event_t *rev)
{
    ssize_t                   n, rv;
    ngx_connection_t         *c = rev->data;
    ngx_http_pw_grpc_conn_t  *conn = c->data;
    static u_char             buf[16384];

    if (c->close) {
        ngx_http_pw_grpc_conn_close(conn, "worker is shutting down");
        /* the exiting worker's loop may sleep before it looks at posted
         * events: tell the plugins now */
        ngx_event_process_posted((ngx_cycle_t *) ngx_cycle,
                                 &ngx_posted_events);
        return;
    }

    if (!conn->connected && conn->tls) {
        /* the TLS handshake reads first */
        ngx_http_pw_grpc_conn_tcp_up(conn);
        return;
    }

    for ( ;; ) {
        n = c->recv(c, buf, sizeof(buf));

        if (n == NGX_AGAIN) {
            break;
        }

        if (n == NGX_ERROR || n == 0) {
            ngx_http_pw_grpc_conn_close(conn,
                                        n == 0 ? "connection closed by peer"
                                        : conn->connected ? "recv() failed"
                                        : "connect() failed");
            return;
        }

        if (!conn->connected) {
            ngx_http_pw_grpc_conn_connected(conn);
        }

        rv = nghttp2_session_mem_recv(conn->h2, buf, n);
        if (rv < 0) {
            ngx_http_pw_grpc_conn_close(conn, nghttp2_strerror((int) rv));
            return;
        }
    }

    if (ngx_handle_read_event(rev, 0) != NGX_OK) {
        ngx_http_pw_grpc_conn_close(conn, "cannot watch the connection");
        return;
    }

    if (conn->connected) {
        ngx_http_pw_grpc_conn_send(conn);
    }
}


/* ---- nghttp2 callbacks (record only; never call the plugin) ---- */

static ssize_t
ngx_http_pw_grpc_h2_send(nghttp2_session *session, const uint8_t *data,
    size_t length, int flags, void *user_data)
{
    ssize_t                   n;
    ngx_http_pw_grpc_conn_t  *conn = user_data;

    n = conn->c->send(conn->c, (u_char *) data, length);

    if (n == NGX_AGAIN) {
        return NGHTTP2_ERR_WOULDBLOCK;
    }

    if (n == NGX_ERROR) {
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    }

    return n;
}


static ssize_t
ngx_http_pw_grpc_h2_read_data(nghttp2_session *session, int32_t stream_id,
    uint8_t *buf, size_t length, uint32_t *data_flags,
    nghttp2_data_source *source, void *user_data)
{
    size_t               n;
    ngx_http_pw_grpc_t  *call;

    call = nghttp2_session_get_stream_user_data(session, stream_id);
    if (call == NULL) {
        /* cancelled: its RST_STREAM is on the way */
        return NGHTTP2_ERR_DEFERRED;
    }

    n = call->out.len - call->out_pos;

    if (n == 0) {
        if (call->out_eos) {
            *data_flags |= NGHTTP2_DATA_FLAG_EOF;
            return 0;
        }
        return NGHTTP2_ERR_DEFERRED;
    }

    if (n > length) {
        n = length;
    }

    ngx_memcpy(buf, call->out.data + call->out_pos, n);
    call->out_pos += n;

    if (call->out_pos == call->out.len) {
        call->out_pos = 0;
        call->out.len = 0;
        if (call->out_eos) {
            *data_flags |= NGHTTP2_DATA_FLAG_EOF;
        }
    }

    return (ssize_t) n;
}


static int
ngx_http_pw_grpc_h2_header(nghttp2_session *session,
    const nghttp2_frame *frame, const uint8_t *name, size_t namelen,
    const uint8_t *value, size_t valuelen, uint8_t flags, void *user_data)
{
    u_char               *d, *s;
    uint32_t              len;
    ngx_int_t             code;
    ngx_http_pw_grpc_t   *call;

    if (frame->hd.type != NGHTTP2_HEADERS) {
        return 0;
    }

    call = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
    if (call == NULL || call->done) {
        return 0;
    }

    if (namelen == 7 && ngx_strncmp(name, ":status", 7) == 0) {
        code = ngx_atoi((u_char *) value, valuelen);
        call->http_status = code == NGX_ERROR ? 0 : (ngx_uint_t) code;

    } else if (namelen == 11 && ngx_strncmp(name, "grpc-status", 11) == 0) {
        code = ngx_atoi((u_char *) value, valuelen);
        call->status = code == NGX_ERROR ? NGX_HTTP_PW_GRPC_UNKNOWN
                                         : (uint32_t) code;
        call->has_status = 1;

    } else if (namelen == 12 && ngx_strncmp(name, "grpc-message", 12) == 0) {
        free(call->status_msg);
        call->status_msg_len = 0;
        call->status_msg = malloc(valuelen + 1);
        if (call->status_msg) {
            /* grpc-message is percent-encoded */
            d = call->status_msg;
            s = (u_char *) value;
            ngx_unescape_uri(&d, &s, valuelen, 0);
            call->status_msg_len = d - call->status_msg;
        }
    }

    if (call->hb.len + namelen + valuelen + 8 > NGX_HTTP_PW_GRPC_MAX_METADATA
        || call->hn >= PW_MAX_MAP_PAIRS)
    {
        return 0;
    }

    len = (uint32_t) namelen;
    if (ngx_http_pw_buf_add(&call->hb, &len, 4) != NGX_OK) {
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
    len = (uint32_t) valuelen;
    if (ngx_http_pw_buf_add(&call->hb, &len, 4) != NGX_OK
        || ngx_http_pw_buf_add(&call->hb, name, namelen) != NGX_OK
        || ngx_http_pw_buf_add(&call->hb, value, valuelen) != NGX_OK)
    {
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    }

    call->hn++;

    return 0;
}


static void
ngx_http_pw_grpc_push_md(ngx_http_pw_grpc_t *call, ngx_uint_t type,
    ngx_uint_t with_block)
{
    ngx_http_pw_grpc_ev_t  *ev;

    ev = ngx_http_pw_grpc_ev_new(type, with_block ? &call->hb : NULL,
                                 with_block ? call->hn : 0, NULL, 0);
    if (ev == NULL) {
        ngx_http_pw_grpc_finish(call, NGX_HTTP_PW_GRPC_INTERNAL,
                                "out of memory", 1);
        return;
    }

    ngx_http_pw_grpc_push(call, ev);
}


static int
ngx_http_pw_grpc_h2_frame(nghttp2_session *session,
    const nghttp2_frame *frame, void *user_data)
{
    ngx_http_pw_grpc_t  *call;

    if (frame->hd.type != NGHTTP2_HEADERS) {
        return 0;
    }

    call = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
    if (call == NULL || call->done) {
        return 0;
    }

    if (call->http_status >= 100 && call->http_status < 200
        && !call->headers_seen)
    {
        /* informational: not metadata */
        call->http_status = 0;

    } else if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) {
        /* trailers, or a trailers-only answer */
        if (!call->unary) {
            if (!call->headers_seen) {
                /* as Envoy: empty initial metadata first */
                call->headers_seen = 1;
                ngx_http_pw_grpc_push_md(call, NGX_HTTP_PW_GRPC_EV_INITIAL,
                                         0);
            }
            ngx_http_pw_grpc_push_md(call, NGX_HTTP_PW_GRPC_EV_TRAILING, 1);
        }

    } else if (!call->headers_seen) {
        call->headers_seen = 1;
        if (!call->unary) {
            ngx_http_pw_grpc_push_md(call, NGX_HTTP_PW_GRPC_EV_INITIAL, 1);
        }
    }

    call->hb.len = 0;
    call->hn = 0;

    return 0;
}


static int
ngx_http_pw_grpc_h2_data(nghttp2_session *session, uint8_t flags,
    int32_t stream_id, const uint8_t *data, size_t len, void *user_data)
{
    u_char                 *p;
    size_t                  avail;
    uint32_t                mlen;
    ngx_http_pw_grpc_t     *call;
    ngx_http_pw_grpc_ev_t  *ev;

    call = nghttp2_session_get_stream_user_data(session, stream_id);
    if (call == NULL || call->done) {
        return 0;
    }

    if (ngx_http_pw_buf_add(&call->in, data, len) != NGX_OK) {
        ngx_http_pw_grpc_finish(call, NGX_HTTP_PW_GRPC_INTERNAL,
                                "out of memory", 1);
        return 0;
    }

    /* length-prefixed messages: 1 byte compressed flag, 4 bytes length */
    for ( ;; ) {
        avail = call->in.len - call->in_pos;
        if (avail < 5) {
            break;
        }

        p = call->in.data + call->in_pos;
        mlen = ((uint32_t) p[1] << 24) | ((uint32_t) p[2] << 16)
               | ((uint32_t) p[3] << 8) | p[4];

        if (p[0] != 0) {
            ngx_http_pw_grpc_finish(call, NGX_HTTP_PW_GRPC_INTERNAL,
                                    "compressed message (not supported)", 1);
            return 0;
        }

        if (mlen > NGX_HTTP_PW_GRPC_MAX_MESSAGE) {
            ngx_http_pw_grpc_finish(call,
                                    NGX_HTTP_PW_GRPC_RESOURCE_EXHAUSTED,
                                    "message larger than 4 MiB", 1);
            return 0;
        }

        if (avail - 5 < mlen) {
            break;
        }

        ev = ngx_http_pw_grpc_ev_new(NGX_HTTP_PW_GRPC_EV_MESSAGE, NULL, 0,
                                     p + 5, mlen);
        if (ev == NULL) {
            ngx_http_pw_grpc_finish(call, NGX_HTTP_PW_GRPC_INTERNAL,
                                    "out of memory", 1);
            return 0;
        }

        call->in_pos += 5 + mlen;

        if (call->unary) {
            /* the answer goes to the plugin once the status is OK */
            free(call->answer);
            call->answer = ev;

        } else {
            ngx_http_pw_grpc_push(call, ev);
        }
    }

    if (call->in_pos == call->in.len) {
        call->in.len = 0;
        call->in_pos = 0;

    } else if (call->in_pos > 65536) {
        ngx_memmove(call->in.data, call->in.data + call->in_pos,
                    call->in.len - call->in_pos);
        call->in.len -= call->in_pos;
        call->in_pos = 0;
    }

    return 0;
}


static uint32_t
ngx_http_pw_grpc_from_http(ngx_uint_t status)
{
    /* gRPC's "HTTP to gRPC status code mapping" */
    switch (status) {
    case 400:
        return NGX_HTTP_PW_GRPC_INTERNAL;
    case 401:
        return NGX_HTTP_PW_GRPC_UNAUTHENTICATED;
    case 403:
        return NGX_HTTP_PW_GRPC_PERMISSION_DENIED;
    case 404:
        return NGX_HTTP_PW_GRPC_UNIMPLEMENTED;
    case 429:
    case 502:
    case 503:
    case 504:
        return NGX_HTTP_PW_GRPC_UNAVAILABLE;
    default:
        return NGX_HTTP_PW_GRPC_UNKNOWN;
    }
}


static int
ngx_http_pw_grpc_h2_close(nghttp2_session *session, int32_t stream_id,
    uint32_t error_code, void *user_data)
{
    ngx_http_pw_grpc_t  *call;

    call = nghttp2_session_get_stream_user_data(session, stream_id);
    if (call == NULL || call->done) {
        return 0;
    }

    /* the stream is gone from the session: nothing to reset */
    call->stream_id = 0;

    if (call->has_status) {
        ngx_http_pw_grpc_finish(call, call->status, NULL, 0);

    } else if (error_code == NGHTTP2_REFUSED_STREAM) {
        ngx_http_pw_grpc_finish(call, NGX_HTTP_PW_GRPC_UNAVAILABLE,
                                "stream refused", 0);

    } else if (error_code == NGHTTP2_CANCEL) {
        ngx_http_pw_grpc_finish(call, NGX_HTTP_PW_GRPC_CANCELLED,
                                "stream cancelled by the server", 0);

    } else if (error_code != NGHTTP2_NO_ERROR) {
        ngx_http_pw_grpc_finish(call, NGX_HTTP_PW_GRPC_INTERNAL,
                                "stream reset", 0);

    } else if (call->http_status != 200) {
        ngx_http_pw_grpc_finish(call,
                                ngx_http_pw_grpc_from_http(call->http_status),
                                "not a gRPC answer (HTTP status)", 0);

    } else {
        ngx_http_pw_grpc_finish(call, NGX_HTTP_PW_GRPC_INTERNAL,
                                "stream ended without grpc-status", 0);
    }

    return 0;
}


static void
ngx_http_pw_grpc_conn_connect(ngx_http_pw_grpc_conn_t *conn)
{
    ngx_int_t  rc;

    conn->name.data = conn->text;
    conn->name.len = ngx_sock_ntop((struct sockaddr *) conn->target.sockaddr,
                                   conn->target.socklen, conn->text,
                                   NGX_SOCKADDR_STRLEN, 1);

    conn->pc.sockaddr = (struct sockaddr *) conn->target.sockaddr;
    conn->pc.socklen = conn->target.socklen;
    conn->pc.name = &conn->name;
    conn->pc.get = ngx_event_get_peer;
    conn->pc.log = ngx_cycle->log;
    conn->pc.log_error = NGX_ERROR_ERR;

    rc = ngx_event_connect_peer(&conn->pc);

    if (rc == NGX_ERROR || rc == NGX_BUSY || rc == NGX_DECLINED) {
        if (conn->pc.connection) {
            ngx_pw_tls_close(conn->pc.connection);
            conn->pc.connection = NULL;
        }
        ngx_http_pw_grpc_conn_close(conn, "connect() failed");
        return;
    }

    conn->c = conn->pc.connection;
    conn->c->data = conn;
    conn->c->read->handler = ngx_http_pw_grpc_read_handler;
    conn->c->write->handler = ngx_http_pw_grpc_write_handler;
    /* told (c->close) when the worker shuts down gracefully */
    conn->c->idle = 1;

    if (rc == NGX_AGAIN) {
        ngx_add_timer(conn->c->write, NGX_HTTP_PW_GRPC_CONNECT_TIMEOUT);
        return;
    }

    ngx_http_pw_grpc_conn_connected(conn);
}


static void
ngx_http_pw_grpc_conn_resolved(ngx_resolver_ctx_t *ctx)
{
    u_char                    why[256], *p;
    ngx_int_t                 rc;
    ngx_http_pw_grpc_conn_t  *conn = ctx->data;

    conn->rctx = NULL;

    rc = ngx_http_pw_target_resolved(ctx, &conn->target);

    if (rc != NGX_OK) {
        /* what the plugin reads with proxy_get_status */
        p = ngx_snprintf(why, sizeof(why) - 1, "%V could not be resolved: %s",
                         &ctx->name,
                         ctx->state ? ngx_resolver_strerror(ctx->state)
                                    : "no usable address");
        *p = '\0';

        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "proxy_wasm: grpc: %s (%i)", why, ctx->state);

        ngx_resolve_name_done(ctx);
        ngx_http_pw_grpc_conn_close(conn, (char *) why);
        return;
    }

    ngx_resolve_name_done(ctx);
    ngx_http_pw_grpc_conn_connect(conn);
}


/* From the event loop: resolve the host, or connect to the address. */
static void
ngx_http_pw_grpc_conn_start(ngx_event_t *ev)
{
    ngx_http_pw_grpc_conn_t  *conn = ev->data;

    if (ngx_queue_empty(&conn->calls)) {
        ngx_http_pw_grpc_conn_close(conn, "unused");
        return;
    }

    if (conn->target.socklen) {
        ngx_http_pw_grpc_conn_connect(conn);
        return;
    }

    /* a cached answer comes at once: conn may be gone on return */
    if (ngx_http_pw_target_resolve(conn->resolver, conn->resolver_timeout,
                                   &conn->target.host,
                                   ngx_http_pw_grpc_conn_resolved, conn,
                                   &conn->rctx)
        != NGX_OK)
    {
        ngx_http_pw_grpc_conn_close(conn, "cannot start resolving");
    }
}


/*
 * A connection to the target t (named key by the plugin): its HTTP/2
 * session takes streams at once; resolving and connecting start from the
 * event loop.
 */
static ngx_http_pw_grpc_conn_t *
ngx_http_pw_grpc_conn_new(ngx_str_t *key, ngx_http_pw_target_t *t,
    ngx_str_t *server_name, ngx_resolver_t *resolver,
    ngx_msec_t resolver_timeout)
{
    ngx_int_t                  rc;
    nghttp2_settings_entry     iv[2];
    nghttp2_session_callbacks *cbs;
    ngx_http_pw_grpc_conn_t   *conn;

    conn = calloc(1, sizeof(ngx_http_pw_grpc_conn_t));
    if (conn == NULL) {
        return NULL;
    }

    conn->key.data = malloc(key->len);
    if (conn->key.data == NULL) {
        free(conn);
        return NULL;
    }

    ngx_memcpy(conn->key.data, key->data, key->len);
    conn->key.len = key->len;

    if (server_name->len) {
        conn->server_name.data = malloc(server_name->len);
        if (conn->server_name.data == NULL) {
            free(conn->key.data);
            free(conn);
            return NULL;
        }
        ngx_memcpy(conn->server_name.data, server_name->data,
                   server_name->len);
        conn->server_name.len = server_name->len;
        conn->tls = 1;
    }

    conn->target = *t;
    if (t->host.len) {
        conn->target.host.data = conn->key.data + (t->host.data - key->data);
    }

    /* until the address is known */
    conn->name = t->host.len ? conn->target.host : conn->key;

    conn->resolver = resolver;
    conn->resolver_timeout = resolver_timeout;

    ngx_queue_init(&conn->calls);
    ngx_queue_insert_tail(&ngx_http_pw_grpc_conns, &conn->link);

    conn->idle.handler = ngx_http_pw_grpc_idle;
    conn->idle.data = conn;
    conn->idle.log = ngx_cycle->log;
    conn->start.handler = ngx_http_pw_grpc_conn_start;
    conn->start.data = conn;
    conn->start.log = ngx_cycle->log;

    if (nghttp2_session_callbacks_new(&cbs) != 0) {
        ngx_http_pw_grpc_conn_close(conn, "out of memory");
        return NULL;
    }

    nghttp2_session_callbacks_set_send_callback(cbs,
                                                ngx_http_pw_grpc_h2_send);
    nghttp2_session_callbacks_set_on_header_callback(cbs,
        ngx_http_pw_grpc_h2_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs,
        ngx_http_pw_grpc_h2_frame);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs,
        ngx_http_pw_grpc_h2_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs,
        ngx_http_pw_grpc_h2_close);

    rc = nghttp2_session_client_new(&conn->h2, cbs, conn);
    nghttp2_session_callbacks_del(cbs);

    if (rc != 0) {
        conn->h2 = NULL;
        ngx_http_pw_grpc_conn_close(conn, "out of memory");
        return NULL;
    }

    iv[0].settings_id = NGHTTP2_SETTINGS_ENABLE_PUSH;
    iv[0].value = 0;
    iv[1].settings_id = NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE;
    iv[1].value = 1024 * 1024;

    if (nghttp2_submit_settings(conn->h2, NGHTTP2_FLAG_NONE, iv, 2) != 0) {
        ngx_http_pw_grpc_conn_close(conn, "out of memory");
        return NULL;
    }

    ngx_post_event(&conn->start, &ngx_posted_events);

    return conn;
}


/*
 * The connection for the target: by the name the plugin gave and the
 * transport (plain, or TLS with its server name: never shared between
 * the two), and for an address (a block's server, a literal) by that
 * address too; a host name takes whatever connection it resolved to
 * before.
 */
static ngx_http_pw_grpc_conn_t *
ngx_http_pw_grpc_conn_get(ngx_str_t *key, ngx_http_pw_target_t *t,
    ngx_str_t *server_name, ngx_resolver_t *resolver,
    ngx_msec_t resolver_timeout)
{
    ngx_queue_t              *q;
    ngx_http_pw_grpc_conn_t  *conn;

    for (q = ngx_queue_head(&ngx_http_pw_grpc_conns);
         q != ngx_queue_sentinel(&ngx_http_pw_grpc_conns);
         q = ngx_queue_next(q))
    {
        conn = ngx_queue_data(q, ngx_http_pw_grpc_conn_t, link);

        if (conn->closing || conn->key.len != key->len
            || ngx_memcmp(conn->key.data, key->data, key->len) != 0
            || conn->server_name.len != server_name->len
            || ngx_memcmp(conn->server_name.data, server_name->data,
                          server_name->len) != 0)
        {
            continue;
        }

        if (t->socklen == 0
            || ngx_cmp_sockaddr((struct sockaddr *) conn->target.sockaddr,
                                conn->target.socklen,
                                (struct sockaddr *) t->sockaddr, t->socklen,
                                1)
               == NGX_OK)
        {
            return conn;
        }
    }

    return ngx_http_pw_grpc_conn_new(key, t, server_name, resolver,
                                     resolver_timeout);
}


/* ---- the hostcalls ---- */

static ngx_int_t
ngx_http_pw_grpc_nv(nghttp2_nv *nv, const char *name, size_t nlen,
    const char *value, size_t vlen)
{
    nv->name = (uint8_t *) name;
    nv->namelen = nlen;
    nv->value = (uint8_t *) value;
    nv->valuelen = vlen;
    nv->flags = NGHTTP2_NV_FLAG_NONE;
    return 1;
}


/* Open the call's stream on conn: NGX_OK, NGX_DECLINED when conn takes no
 * new stream (GOAWAY), NGX_ERROR. */
static ngx_int_t
ngx_http_pw_grpc_submit(ngx_http_pw_grpc_t *call,
    ngx_http_pw_grpc_conn_t *conn, pw_str_t service, pw_str_t method,
    const pw_pairs_t *metadata, uint32_t timeout_ms)
{
    u_char                 *path, *lower, *p, tbuf[NGX_INT32_LEN + 2];
    size_t                  n, i, j, plen, klen;
    int32_t                 sid;
    ngx_int_t               rc;
    nghttp2_nv             *nva;
    nghttp2_data_provider   prd;

    n = 7 + (metadata ? metadata->n : 0);
    klen = 0;
    for (i = 0; metadata && i < metadata->n; i++) {
        klen += metadata->pairs[i].key.len;
    }

    plen = 2 + service.len + method.len;

    nva = malloc(n * sizeof(nghttp2_nv) + plen + klen);
    if (nva == NULL) {
        return NGX_ERROR;
    }

    path = (u_char *) (nva + n);
    p = path;
    *p++ = '/';
    p = ngx_cpymem(p, service.data, service.len);
    *p++ = '/';
    p = ngx_cpymem(p, method.data, method.len);
    lower = p;

    i = 0;
    i += ngx_http_pw_grpc_nv(&nva[i], ":method", 7, "POST", 4);
    i += ngx_http_pw_grpc_nv(&nva[i], ":scheme", 7,
                             conn->tls ? "https" : "http", conn->tls ? 5 : 4);
    i += ngx_http_pw_grpc_nv(&nva[i], ":path", 5, (char *) path, plen);
    i += ngx_http_pw_grpc_nv(&nva[i], ":authority", 10,
                             (char *) conn->key.data, conn->key.len);
    i += ngx_http_pw_grpc_nv(&nva[i], "content-type", 12,
                             "application/grpc", 16);
    i += ngx_http_pw_grpc_nv(&nva[i], "te", 2, "trailers", 8);

    if (timeout_ms) {
        /* at most 8 digits */
        if (timeout_ms <= 99999999) {
            p = ngx_sprintf(tbuf, "%uDm", timeout_ms);
        } else {
            p = ngx_sprintf(tbuf, "%uDS", timeout_ms / 1000);
        }
        i += ngx_http_pw_grpc_nv(&nva[i], "grpc-timeout", 12, (char *) tbuf,
                                 p - tbuf);
    }

    for (j = 0; metadata && j < metadata->n; j++) {
        klen = metadata->pairs[j].key.len;
        if (klen == 0 || metadata->pairs[j].key.data[0] == ':') {
            continue;
        }
        /* HTTP/2 field names are lowercase */
        ngx_strlow(lower, (u_char *) metadata->pairs[j].key.data, klen);
        i += ngx_http_pw_grpc_nv(&nva[i], (char *) lower, klen,
                                 metadata->pairs[j].value.data,
                                 metadata->pairs[j].value.len);
        lower += klen;
    }

    prd.source.ptr = NULL;
    prd.read_callback = ngx_http_pw_grpc_h2_read_data;

    /* nghttp2 copies the header fields */
    sid = nghttp2_submit_request(conn->h2, NULL, nva, i, &prd, call);

    free(nva);

    if (sid == NGHTTP2_ERR_STREAM_ID_NOT_AVAILABLE
        || sid == NGHTTP2_ERR_START_STREAM_NOT_ALLOWED)
    {
        conn->closing = 1;
        return NGX_DECLINED;
    }

    if (sid < 0) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "proxy_wasm: grpc call to %V: %s", &conn->name,
                      nghttp2_strerror(sid));
        return NGX_ERROR;
    }

    call->stream_id = sid;
    call->conn = conn;
    ngx_queue_insert_tail(&conn->calls, &call->clink);
    conn->calls_made++;

    if (conn->idle.timer_set) {
        ngx_del_timer(&conn->idle);
    }

    rc = NGX_OK;
    ngx_http_pw_grpc_conn_kick(conn);

    return rc;
}


static ngx_int_t
ngx_http_pw_grpc_frame(ngx_http_pw_grpc_t *call, pw_str_t msg)
{
    u_char  hdr[5];

    hdr[0] = 0;
    hdr[1] = (u_char) (msg.len >> 24);
    hdr[2] = (u_char) (msg.len >> 16);
    hdr[3] = (u_char) (msg.len >> 8);
    hdr[4] = (u_char) msg.len;

    if (ngx_http_pw_buf_add(&call->out, hdr, 5) != NGX_OK
        || ngx_http_pw_buf_add(&call->out, msg.data, msg.len) != NGX_OK)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * The target named by the plugin (see ngx_http_pw_callout_target.h; gRPC
 * has no default port), an https:// prefix taken off key: PW_ENOTFOUND
 * for a bare word that names no upstream block (an unknown cluster),
 * PW_EINVAL for anything else that cannot be used now, the reason logged,
 * PW_EUNIMPLEMENTED when TLS is asked but not available. *server_name:
 * set when the call uses TLS (https://, tls_upstream), else empty.
 */
static int
ngx_http_pw_grpc_target(ngx_str_t *key, ngx_http_pw_fctx_t *f,
    ngx_http_pw_target_t *t, ngx_str_t *server_name,
    ngx_resolver_t **resolver, ngx_msec_t *timeout)
{
    ngx_int_t    rc;
    ngx_uint_t   https;
    const char  *err;

    *resolver = NULL;
    *timeout = 0;
    ngx_str_null(server_name);

    https = key->len > 8
            && ngx_strncasecmp(key->data, (u_char *) "https://", 8) == 0;
    if (https) {
        key->data += 8;
        key->len -= 8;
    }

    rc = ngx_http_pw_target_parse(key, 0, t, &err);

    switch (rc) {

    case NGX_OK:
        break;

    case NGX_DECLINED:
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "proxy_wasm: grpc call: unknown upstream \"%V\" (no "
                      "such upstream block; host names need a port)", key);
        return PW_ENOTFOUND;

    case NGX_ABORT:
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "proxy_wasm: grpc call to \"%V\": %s", key, err);
        return PW_EINVAL;

    default:
        return PW_ENOMEM;
    }

    /* :authority is the target: its host is the server name */
    rc = ngx_pw_tls_target(key, https, key, key, server_name,
                           ngx_cycle->log);
    if (rc == NGX_ERROR) {
        return PW_EUNIMPLEMENTED;
    }

    if (rc == 1 && server_name->len == 0) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "proxy_wasm: grpc call to \"%V\": no server name for "
                      "TLS", key);
        return PW_EINVAL;
    }

    if (t->socklen) {
        return PW_OK;
    }

    /* also when a connection resolved before would serve: what is
     * accepted does not depend on earlier calls */
    *resolver = ngx_http_pw_target_resolver(f ? f->ctx->r : NULL, timeout);

    if (*resolver == NULL) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "proxy_wasm: grpc call to \"%V\": no resolver defined "
                      "to resolve %V", key, &t->host);
        return PW_EINVAL;
    }

    return PW_OK;
}


static int
ngx_http_pw_grpc_start(const pw_hctx_t *c, uint32_t token, pw_str_t upstream,
    pw_str_t service, pw_str_t method, const pw_pairs_t *metadata,
    pw_str_t *message, uint32_t timeout_ms)
{
    int                        rc;
    ngx_int_t                  n;
    ngx_str_t                  key, server_name;
    ngx_msec_t                 rtimeout;
    ngx_uint_t                 attempt;
    ngx_pw_root_t             *root;
    ngx_resolver_t            *resolver;
    ngx_http_pw_grpc_t        *call;
    ngx_http_pw_fctx_t        *f;
    ngx_http_pw_target_t       t;
    ngx_http_pw_grpc_conn_t   *conn;

    ngx_http_pw_grpc_init();

    conn = NULL;

    root = c->plugin_data;
    if (root == NULL) {
        return PW_EINVAL;
    }

    if (message && message->len > 0xffffffff - 5) {
        return PW_ELIMIT;
    }

    f = ngx_http_pw_hctx_fctx(c);
    key.data = (u_char *) upstream.data;
    key.len = upstream.len;

    rc = ngx_http_pw_grpc_target(&key, f, &t, &server_name, &resolver,
                                 &rtimeout);
    if (rc != PW_OK) {
        return rc;
    }

    call = calloc(1, sizeof(ngx_http_pw_grpc_t));
    if (call == NULL) {
        return PW_ENOMEM;
    }

    call->token = token;
    call->root = root;
    call->inst = root->inst;
    call->fctx = f;
    call->unary = message != NULL;
    call->last = &call->events;

    call->post.handler = ngx_http_pw_grpc_deliver;
    call->post.data = call;
    call->post.log = ngx_cycle->log;
    call->timer.handler = ngx_http_pw_grpc_timeout;
    call->timer.data = call;
    call->timer.log = ngx_cycle->log;

    if (message) {
        if (ngx_http_pw_grpc_frame(call, *message) != NGX_OK) {
            ngx_http_pw_buf_release(&call->out);
            free(call);
            return PW_ENOMEM;
        }
        call->out_eos = 1;
    }

    ngx_queue_insert_tail(&ngx_http_pw_grpc_calls, &call->link);
    if (f) {
        f->ncallouts++;
        call->counted = 1;
    }

    if (call->inst->refs == 0) {
        /* from on_vm_start/on_configure: see ngx_http_pw_grpc_ref() */
        call->ref_pending = 1;
        ngx_post_event(&call->post, &ngx_posted_events);

    } else {
        call->inst->refs++;
    }

    ngx_pw_host_metric((ngx_cycle_t *) ngx_cycle, "callouts_in_flight", NULL,
                       1);

    n = NGX_ERROR;

    for (attempt = 0; attempt < 2; attempt++) {
        conn = ngx_http_pw_grpc_conn_get(&key, &t, &server_name, resolver,
                                         rtimeout);
        if (conn == NULL) {
            break;
        }

        n = ngx_http_pw_grpc_submit(call, conn, service, method, metadata,
                                    timeout_ms);
        if (n != NGX_DECLINED) {
            break;
        }
    }

    if (n != NGX_OK) {
        /* answered from the event loop, not from inside this hostcall */
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "proxy_wasm: grpc call %uD to \"%V\" failed: %s",
                      token, &key,
                      conn ? "cannot open a stream" : "out of memory");
        ngx_http_pw_grpc_finish(call, NGX_HTTP_PW_GRPC_UNAVAILABLE,
                                conn ? "cannot open a stream"
                                     : "out of memory", 0);
        return PW_OK;
    }

    call->timeout = (ngx_msec_t) timeout_ms;

    /* a call from on_vm_start/on_configure waits for the event loop: its
     * timer starts there (ngx_http_pw_grpc_deliver), on the loop's clock */
    if (call->timeout && !call->ref_pending) {
        ngx_add_timer(&call->timer, call->timeout);
    }

    return PW_OK;
}


static ngx_http_pw_grpc_t *
ngx_http_pw_grpc_find(const pw_hctx_t *c, uint32_t token)
{
    ngx_queue_t         *q;
    ngx_pw_root_t       *root;
    ngx_http_pw_grpc_t  *call;

    root = c->plugin_data;
    if (root == NULL || !ngx_http_pw_grpc_inited) {
        return NULL;
    }

    for (q = ngx_queue_head(&ngx_http_pw_grpc_calls);
         q != ngx_queue_sentinel(&ngx_http_pw_grpc_calls);
         q = ngx_queue_next(q))
    {
        call = ngx_queue_data(q, ngx_http_pw_grpc_t, link);
        if (call->token == token && call->inst == root->inst
            && !call->cancelled)
        {
            return call;
        }
    }

    return NULL;
}


int
ngx_http_pw_grpc_call(const pw_hctx_t *c, uint32_t token, pw_str_t upstream,
    pw_str_t service, pw_str_t method, const pw_pairs_t *metadata,
    pw_str_t message, uint32_t timeout_ms)
{
    return ngx_http_pw_grpc_start(c, token, upstream, service, method,
                                  metadata, &message, timeout_ms);
}


int
ngx_http_pw_grpc_stream(const pw_hctx_t *c, uint32_t token,
    pw_str_t upstream, pw_str_t service, pw_str_t method,
    const pw_pairs_t *metadata)
{
    return ngx_http_pw_grpc_start(c, token, upstream, service, method,
                                  metadata, NULL, 0);
}


/* New data (a message, or the end of the plugin's side) for a live stream */
static void
ngx_http_pw_grpc_resume(ngx_http_pw_grpc_t *call)
{
    if (call->conn && call->stream_id > 0) {
        (void) nghttp2_session_resume_data(call->conn->h2, call->stream_id);
        ngx_http_pw_grpc_conn_kick(call->conn);
    }
}


int
ngx_http_pw_grpc_send(const pw_hctx_t *c, uint32_t token, pw_str_t message,
    int end_stream)
{
    ngx_http_pw_grpc_t  *call;

    call = ngx_http_pw_grpc_find(c, token);
    if (call == NULL || call->done) {
        /* the stream ended (its close is on the way) */
        return PW_ENOTFOUND;
    }

    if (call->unary || call->out_eos) {
        return PW_EINVAL;
    }

    if (message.len > 0xffffffff - 5) {
        return PW_ELIMIT;
    }

    if (ngx_http_pw_grpc_frame(call, message) != NGX_OK) {
        return PW_ENOMEM;
    }

    if (end_stream) {
        call->out_eos = 1;
    }

    ngx_http_pw_grpc_resume(call);

    return PW_OK;
}


/* Reset the stream; the plugin hears nothing more of it. */
int
ngx_http_pw_grpc_cancel(const pw_hctx_t *c, uint32_t token)
{
    ngx_http_pw_grpc_t  *call;

    call = ngx_http_pw_grpc_find(c, token);
    if (call == NULL) {
        return PW_OK;
    }

    call->cancelled = 1;
    ngx_http_pw_grpc_finish(call, NGX_HTTP_PW_GRPC_CANCELLED, NULL, 1);

    if (!call->delivering) {
        ngx_http_pw_grpc_free(call);
    }

    return PW_OK;
}


/*
 * Half-close: no more messages from the plugin (END_STREAM); the answer
 * and on_grpc_close still come. A unary call is half-closed already.
 */
int
ngx_http_pw_grpc_close(const pw_hctx_t *c, uint32_t token)
{
    ngx_http_pw_grpc_t  *call;

    call = ngx_http_pw_grpc_find(c, token);
    if (call == NULL || call->done || call->out_eos) {
        return PW_OK;
    }

    call->out_eos = 1;

    ngx_http_pw_grpc_resume(call);

    return PW_OK;
}


void
ngx_http_pw_grpc_cancel_all(ngx_http_pw_fctx_t *f)
{
    ngx_queue_t         *q, *next;
    ngx_http_pw_grpc_t  *call;

    if (!ngx_http_pw_grpc_inited) {
        return;
    }

    for (q = ngx_queue_head(&ngx_http_pw_grpc_calls);
         q != ngx_queue_sentinel(&ngx_http_pw_grpc_calls);
         q = next)
    {
        next = ngx_queue_next(q);
        call = ngx_queue_data(q, ngx_http_pw_grpc_t, link);

        if (call->fctx != f || call->cancelled) {
            continue;
        }

        /* a call still delivering is freed later, after f is gone */
        ngx_http_pw_grpc_uncount(call);
        call->cancelled = 1;
        ngx_http_pw_grpc_finish(call, NGX_HTTP_PW_GRPC_CANCELLED, NULL, 1);

        if (!call->delivering) {
            ngx_http_pw_grpc_free(call);
        }
    }
}
