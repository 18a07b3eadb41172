/*
 * HTTP calls from plugins (proxy_http_call): HTTP/1.1 over TCP on nginx's
 * event loop. docs/CALLOUTS.md describes the behaviour.
 *
 * A call is allocated when the plugin asks, started from a posted event
 * (so that an answer known at once, or a call made in on_configure before
 * the event loop runs, is never delivered inside the plugin call that
 * made it), and answered from an event handler. Connections are kept
 * alive per worker, keyed by address, TLS or not and server name, and
 * reused by later calls. TLS (ngx_pw_tls.c) runs between the connect and
 * the request.
 */
#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_pw_callout.h"
#include "ngx_http_pw_callout_target.h"
#include "ngx_pw_tls.h"


#define NGX_HTTP_PW_CALL_TIMEOUT        60000    /* timeout_ms 0 */
#define NGX_HTTP_PW_CALL_MAX_BODY       (16 * 1024 * 1024)
#define NGX_HTTP_PW_CALL_MAX_HEAD       (64 * 1024)
#define NGX_HTTP_PW_CALL_MAX_FIELDS     PW_MAX_MAP_PAIRS
#define NGX_HTTP_PW_CALL_READ_SIZE      16384
#define NGX_HTTP_PW_KEEPALIVE_MAX       32       /* idle, per worker */
#define NGX_HTTP_PW_KEEPALIVE_TIMEOUT   60000
#define NGX_HTTP_PW_NAME_MAX            256      /* kept server names */

/* failure causes (and the metric each one counts) */
#define NGX_HTTP_PW_CALL_OK             0
#define NGX_HTTP_PW_CALL_REFUSED        1
#define NGX_HTTP_PW_CALL_RESET          2
#define NGX_HTTP_PW_CALL_TIMEOUT_CAUSE  3
#define NGX_HTTP_PW_CALL_MALFORMED      4
#define NGX_HTTP_PW_CALL_OTHER          5
#define NGX_HTTP_PW_CALL_TLS            6

/* response parser states */
#define NGX_HTTP_PW_ST_STATUS           0
#define NGX_HTTP_PW_ST_HEADER           1
#define NGX_HTTP_PW_ST_LENGTH           2
#define NGX_HTTP_PW_ST_UNTIL_CLOSE      3
#define NGX_HTTP_PW_ST_CHUNK_SIZE       4
#define NGX_HTTP_PW_ST_CHUNK_DATA       5
#define NGX_HTTP_PW_ST_CHUNK_END        6
#define NGX_HTTP_PW_ST_TRAILER          7
#define NGX_HTTP_PW_ST_DONE             8


/* A header or trailer of the answer: offsets into call->fields_buf. */
typedef struct {
    size_t                      key;
    size_t                      key_len;
    size_t                      value;
    size_t                      value_len;
    unsigned                    trailer:1;
} ngx_http_pw_call_field_t;

typedef struct {
    ngx_queue_t                 queue;       /* all calls of the worker */
    ngx_pw_root_t              *root;
    ngx_pw_instance_t          *inst;
    ngx_http_pw_fctx_t         *fctx;        /* NULL: made by a root */
    uint32_t                    token;
    ngx_msec_t                  started;
    ngx_msec_t                  timeout;
    ngx_log_t                  *log;

    ngx_event_t                 start;       /* posted */
    ngx_event_t                 timer;

    /* target */
    ngx_str_t                   target;      /* as the plugin named it */
    ngx_addr_t                  addr;        /* sockaddr, name: own copy */
    ngx_str_t                   host;        /* to resolve, else empty */
    in_port_t                   port;
    ngx_resolver_t             *resolver;
    ngx_msec_t                  resolver_timeout;
    ngx_resolver_ctx_t         *rctx;
    ngx_str_t                   server_name; /* TLS: own copy */

    ngx_peer_connection_t       peer;

    /* request */
    u_char                     *req;
    size_t                      req_len;
    size_t                      req_sent;

    /* answer */
    u_char                     *in;          /* read buffer */
    u_char                     *pos;
    u_char                     *last;
    size_t                      received;
    ngx_uint_t                  state;
    ngx_uint_t                  status;
    off_t                       rest;        /* of the body or a chunk */
    off_t                       content_length;
    ngx_http_pw_buf_t           fields_buf;
    ngx_http_pw_call_field_t   *fields;
    ngx_uint_t                  nfields;
    ngx_uint_t                  fields_cap;
    ngx_uint_t                  interim_mark;
    size_t                      interim_buf_mark;
    ngx_http_pw_buf_t           body;

    unsigned                    head_only:1;   /* HEAD request */
    unsigned                    chunked:1;
    unsigned                    close:1;       /* no keep-alive after */
    unsigned                    interim:1;     /* a 1xx answer */
    unsigned                    reused:1;      /* a kept-alive connection */
    unsigned                    retried:1;
    unsigned                    connecting:1;
    unsigned                    ref_pending:1; /* made while inst started */
    unsigned                    tls:1;
} ngx_http_pw_call_t;

/* An idle kept-alive connection. */
typedef struct {
    ngx_queue_t                 queue;
    ngx_connection_t           *connection;
    u_char                      sockaddr[NGX_SOCKADDRLEN];
    socklen_t                   socklen;
    ngx_uint_t                  tls;
    size_t                      server_name_len;
    u_char                      server_name[NGX_HTTP_PW_NAME_MAX];
} ngx_http_pw_idle_t;


static void ngx_http_pw_call_start(ngx_event_t *ev);
static void ngx_http_pw_call_resolved(ngx_resolver_ctx_t *ctx);
static void ngx_http_pw_call_connect(ngx_http_pw_call_t *call);
static void ngx_http_pw_call_timeout(ngx_event_t *ev);
static void ngx_http_pw_call_write(ngx_event_t *wev);
static void ngx_http_pw_call_handshake(ngx_http_pw_call_t *call,
    ngx_connection_t *c);
static void ngx_http_pw_call_read(ngx_event_t *rev);
static void ngx_http_pw_call_dummy(ngx_event_t *ev);
static void ngx_http_pw_call_fail(ngx_http_pw_call_t *call, ngx_uint_t cause,
    ngx_err_t err, const char *reason);
static void ngx_http_pw_call_finish(ngx_http_pw_call_t *call,
    ngx_uint_t cause);
static void ngx_http_pw_call_free(ngx_http_pw_call_t *call);
static void ngx_http_pw_call_drop(ngx_http_pw_call_t *call);
static ngx_int_t ngx_http_pw_call_parse(ngx_http_pw_call_t *call,
    const char **reason);
static ngx_connection_t *ngx_http_pw_idle_get(ngx_http_pw_call_t *call);
static void ngx_http_pw_idle_put(ngx_http_pw_call_t *call);
static void ngx_http_pw_idle_handler(ngx_event_t *ev);


static ngx_queue_t  ngx_http_pw_calls;
static ngx_queue_t  ngx_http_pw_idle;
static ngx_uint_t   ngx_http_pw_nidle;
static ngx_uint_t   ngx_http_pw_calls_ready;

static const char  *ngx_http_pw_cause_metric[] = {
    NULL,
    "callout_failures_refused",
    "callout_failures_reset",
    "callout_failures_timeout",
    "callout_failures_malformed",
    "callout_failures_other",
    "callout_failures_tls",
};

static const char  *ngx_http_pw_cause_name[] = {
    "ok", "refused", "reset", "timeout", "malformed", "other", "tls",
};


static void
ngx_http_pw_calls_init(void)
{
    if (!ngx_http_pw_calls_ready) {
        ngx_queue_init(&ngx_http_pw_calls);
        ngx_queue_init(&ngx_http_pw_idle);
        ngx_http_pw_calls_ready = 1;
    }
}


/* ---- growable buffers ---- */


/* NGX_DECLINED when the buffer would pass max */
static ngx_int_t
ngx_http_pw_call_buf_add(ngx_http_pw_buf_t *b, const u_char *data, size_t len,
    size_t max)
{
    if (len > max || b->len > max - len) {
        return NGX_DECLINED;
    }

    return ngx_http_pw_buf_add(b, data, len);
}


/* ---- arguments ---- */


static ngx_uint_t
ngx_http_pw_is_pseudo(pw_str_t key)
{
    return key.len > 0 && key.data[0] == ':';
}


static ngx_uint_t
ngx_http_pw_key_is(pw_str_t key, const char *name)
{
    size_t  n = ngx_strlen(name);

    return key.len == n
           && ngx_strncasecmp((u_char *) key.data, (u_char *) name, n) == 0;
}


static pw_str_t
ngx_http_pw_pair(const pw_pairs_t *p, const char *name)
{
    size_t  i;

    for (i = 0; p && i < p->n; i++) {
        if (ngx_http_pw_key_is(p->pairs[i].key, name)) {
            return p->pairs[i].value;
        }
    }

    return (pw_str_t) { NULL, 0 };
}


static ngx_uint_t
ngx_http_pw_token_ok(pw_str_t s)
{
    size_t  i;
    u_char  ch;

    if (s.len == 0) {
        return 0;
    }

    for (i = 0; i < s.len; i++) {
        ch = (u_char) s.data[i];
        if (ch <= 0x20 || ch >= 0x7f
            || ngx_strchr("\"(),/:;<=>?@[\\]{}", ch) != NULL)
        {
            return 0;
        }
    }

    return 1;
}


/* No CR, LF or NUL (and no blank where blanks would split the line). */
static ngx_uint_t
ngx_http_pw_value_ok(pw_str_t s, ngx_uint_t blanks)
{
    size_t  i;
    u_char  ch;

    for (i = 0; i < s.len; i++) {
        ch = (u_char) s.data[i];
        if (ch == '\r' || ch == '\n' || ch == '\0'
            || (!blanks && (ch == ' ' || ch == '\t')))
        {
            return 0;
        }
    }

    return 1;
}


/* Headers the connection owns: the plugin's are dropped. */
static ngx_uint_t
ngx_http_pw_hop_header(pw_str_t key)
{
    static const char  *hop[] = {
        "host", "content-length", "transfer-encoding", "connection",
        "keep-alive", "proxy-connection", "upgrade", "te", NULL
    };
    ngx_uint_t  i;

    for (i = 0; hop[i]; i++) {
        if (ngx_http_pw_key_is(key, hop[i])) {
            return 1;
        }
    }

    return 0;
}


static u_char *
ngx_http_pw_put(u_char *p, pw_str_t s)
{
    return ngx_cpymem(p, s.data, s.len);
}


/*
 * The request bytes: "METHOD PATH HTTP/1.1", Host from :authority, the
 * plugin's other headers, then the body (with Content-Length), or the
 * body as one chunk and the trailers when there are trailers.
 */
static ngx_int_t
ngx_http_pw_call_request(ngx_http_pw_call_t *call, const pw_pairs_t *headers,
    pw_str_t body, const pw_pairs_t *trailers, ngx_log_t *log)
{
    size_t      len, i;
    u_char     *p;
    pw_str_t    method, path, authority;
    ngx_uint_t  chunked, clen;

    method = ngx_http_pw_pair(headers, ":method");
    path = ngx_http_pw_pair(headers, ":path");
    authority = ngx_http_pw_pair(headers, ":authority");

    if (!ngx_http_pw_token_ok(method)) {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "[wasm] http call: bad :method");
        return NGX_DECLINED;
    }

    if (path.len == 0 || !ngx_http_pw_value_ok(path, 0)
        || (path.data[0] != '/' && !(path.len == 1 && path.data[0] == '*')))
    {
        ngx_log_error(NGX_LOG_ERR, log, 0, "[wasm] http call: bad :path");
        return NGX_DECLINED;
    }

    if (authority.len == 0 || !ngx_http_pw_value_ok(authority, 0)) {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "[wasm] http call: bad :authority");
        return NGX_DECLINED;
    }

    call->head_only = method.len == 4
                      && ngx_strncmp(method.data, "HEAD", 4) == 0;

    chunked = trailers && trailers->n > 0;
    clen = !chunked
           && (body.len > 0
               || (method.len == 4 && ngx_strncmp(method.data, "POST", 4) == 0)
               || (method.len == 3 && ngx_strncmp(method.data, "PUT", 3) == 0)
               || (method.len == 5
                   && ngx_strncmp(method.data, "PATCH", 5) == 0));

    len = method.len + 1 + path.len + sizeof(" HTTP/1.1\r\nHost: ") - 1
          + authority.len + 2;

    for (i = 0; i < headers->n; i++) {
        if (ngx_http_pw_is_pseudo(headers->pairs[i].key)
            || ngx_http_pw_hop_header(headers->pairs[i].key))
        {
            continue;
        }
        if (!ngx_http_pw_token_ok(headers->pairs[i].key)
            || !ngx_http_pw_value_ok(headers->pairs[i].value, 1))
        {
            ngx_log_error(NGX_LOG_ERR, log, 0,
                          "[wasm] http call: bad header name or value");
            return NGX_DECLINED;
        }
        len += headers->pairs[i].key.len + 2
               + headers->pairs[i].value.len + 2;
    }

    if (chunked) {
        for (i = 0; i < trailers->n; i++) {
            if (ngx_http_pw_is_pseudo(trailers->pairs[i].key)
                || !ngx_http_pw_token_ok(trailers->pairs[i].key)
                || !ngx_http_pw_value_ok(trailers->pairs[i].value, 1))
            {
                ngx_log_error(NGX_LOG_ERR, log, 0,
                              "[wasm] http call: bad trailer name or value");
                return NGX_DECLINED;
            }
            len += trailers->pairs[i].key.len + 2
                   + trailers->pairs[i].value.len + 2;
        }
        len += sizeof("Transfer-Encoding: chunked\r\n") - 1
               + NGX_OFF_T_LEN + 2 + body.len + 2 + sizeof("0\r\n") - 1;

    } else if (clen) {
        len += sizeof("Content-Length: \r\n") - 1 + NGX_SIZE_T_LEN;
    }

    len += 2 + body.len;

    call->req = ngx_alloc(len, log);
    if (call->req == NULL) {
        return NGX_ERROR;
    }

    p = call->req;
    p = ngx_http_pw_put(p, method);
    *p++ = ' ';
    p = ngx_http_pw_put(p, path);
    p = ngx_cpymem(p, " HTTP/1.1\r\nHost: ",
                   sizeof(" HTTP/1.1\r\nHost: ") - 1);
    p = ngx_http_pw_put(p, authority);
    *p++ = '\r'; *p++ = '\n';

    for (i = 0; i < headers->n; i++) {
        if (ngx_http_pw_is_pseudo(headers->pairs[i].key)
            || ngx_http_pw_hop_header(headers->pairs[i].key))
        {
            continue;
        }
        p = ngx_http_pw_put(p, headers->pairs[i].key);
        *p++ = ':'; *p++ = ' ';
        p = ngx_http_pw_put(p, headers->pairs[i].value);
        *p++ = '\r'; *p++ = '\n';
    }

    if (chunked) {
        p = ngx_cpymem(p, "Transfer-Encoding: chunked\r\n\r\n",
                       sizeof("Transfer-Encoding: chunked\r\n\r\n") - 1);
        if (body.len) {
            p = ngx_sprintf(p, "%xz\r\n", body.len);
            p = ngx_http_pw_put(p, body);
            *p++ = '\r'; *p++ = '\n';
        }
        p = ngx_cpymem(p, "0\r\n", 3);
        for (i = 0; i < trailers->n; i++) {
            p = ngx_http_pw_put(p, trailers->pairs[i].key);
            *p++ = ':'; *p++ = ' ';
            p = ngx_http_pw_put(p, trailers->pairs[i].value);
            *p++ = '\r'; *p++ = '\n';
        }
        *p++ = '\r'; *p++ = '\n';

    } else {
        if (clen) {
            p = ngx_sprintf(p, "Content-Length: %uz\r\n", body.len);
        }
        *p++ = '\r'; *p++ = '\n';
        p = ngx_http_pw_put(p, body);
    }

    call->req_len = p - call->req;

    return NGX_OK;
}


/* Own copies of the target's address and its text. */
static ngx_int_t
ngx_http_pw_call_set_addr(ngx_http_pw_call_t *call, ngx_http_pw_target_t *t,
    ngx_log_t *log)
{
    u_char  text[NGX_SOCKADDR_STRLEN];
    size_t  n;

    call->addr.sockaddr = ngx_alloc(t->socklen, log);
    if (call->addr.sockaddr == NULL) {
        return NGX_ERROR;
    }
    ngx_memcpy(call->addr.sockaddr, t->sockaddr, t->socklen);
    call->addr.socklen = t->socklen;

    n = ngx_sock_ntop(call->addr.sockaddr, t->socklen, text, sizeof(text),
                      1);
    call->addr.name.data = ngx_alloc(n, log);
    if (call->addr.name.data == NULL) {
        return NGX_ERROR;
    }
    ngx_memcpy(call->addr.name.data, text, n);
    call->addr.name.len = n;

    return NGX_OK;
}


/* Strip an http:// or https:// prefix from name: 1 for https. */
static ngx_uint_t
ngx_http_pw_call_scheme(ngx_str_t *name)
{
    if (name->len > 8
        && ngx_strncasecmp(name->data, (u_char *) "https://", 8) == 0)
    {
        name->data += 8;
        name->len -= 8;
        return 1;
    }

    if (name->len > 7
        && ngx_strncasecmp(name->data, (u_char *) "http://", 7) == 0)
    {
        name->data += 7;
        name->len -= 7;
    }

    return 0;
}


/*
 * The target, without its scheme (ngx_http_pw_callout_target.h; the
 * default port is 80, 443 for https://): a host name needs a `resolver`.
 * NGX_DECLINED for an unknown or unusable target (the reason logged).
 */
static ngx_int_t
ngx_http_pw_call_target(ngx_http_pw_call_t *call, ngx_str_t *name,
    ngx_uint_t https, ngx_log_t *log)
{
    ngx_int_t              rc;
    const char            *err;
    ngx_http_pw_target_t   t;

    rc = ngx_http_pw_target_parse(name, https ? 443 : 80, &t, &err);

    if (rc == NGX_DECLINED) {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "[wasm] http call: unknown upstream \"%V\" (no such "
                      "upstream block; host names need a port)", name);
        return NGX_DECLINED;
    }

    if (rc == NGX_ABORT) {
        if (t.upstream) {
            ngx_log_error(NGX_LOG_ERR, log, 0,
                          "[wasm] http call: upstream \"%V\": %s", name, err);

        } else {
            ngx_log_error(NGX_LOG_ERR, log, 0,
                          "[wasm] http call: unknown upstream \"%V\" (%s)",
                          name, err);
        }

        return NGX_DECLINED;
    }

    if (rc != NGX_OK) {
        return NGX_ERROR;
    }

    if (t.socklen) {
        return ngx_http_pw_call_set_addr(call, &t, log);
    }

    call->resolver = ngx_http_pw_target_resolver(call->fctx
                                                 ? call->fctx->ctx->r : NULL,
                                                 &call->resolver_timeout);
    if (call->resolver == NULL) {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "[wasm] http call to \"%V\": no resolver defined to "
                      "resolve %V", name, &t.host);
        return NGX_DECLINED;
    }

    call->port = t.port;

    /* t.host points into the plugin's memory */
    call->host.data = ngx_alloc(t.host.len, log);
    if (call->host.data == NULL) {
        return NGX_ERROR;
    }
    ngx_memcpy(call->host.data, t.host.data, t.host.len);
    call->host.len = t.host.len;

    call->addr.name = call->host;      /* until resolved */

    return NGX_OK;
}


/*
 * TLS or not: an https:// target, `:scheme: https`, or a target (name,
 * without its scheme) listed in tls_upstream. NGX_ABORT when TLS is asked
 * but not available.
 */
static ngx_int_t
ngx_http_pw_call_tls(ngx_http_pw_call_t *call, ngx_str_t *name,
    ngx_uint_t https, const pw_pairs_t *headers, ngx_log_t *log)
{
    pw_str_t   scheme, auth;
    ngx_int_t  rc;
    ngx_str_t  authority, host, sn;

    scheme = ngx_http_pw_pair(headers, ":scheme");
    auth = ngx_http_pw_pair(headers, ":authority");
    authority.data = (u_char *) auth.data;
    authority.len = auth.len;
    host = call->host.len ? call->host : *name;

    rc = ngx_pw_tls_target(name,
                           https
                           || (scheme.len == 5
                               && ngx_strncasecmp((u_char *) scheme.data,
                                                  (u_char *) "https", 5)
                                  == 0),
                           &authority, &host, &sn, log);
    if (rc == NGX_ERROR) {
        return NGX_ABORT;
    }

    if (rc == 0) {
        return NGX_OK;
    }

    call->tls = 1;
    call->server_name.data = ngx_alloc(sn.len ? sn.len : 1, log);
    if (call->server_name.data == NULL) {
        return NGX_ERROR;
    }
    ngx_memcpy(call->server_name.data, sn.data, sn.len);
    call->server_name.len = sn.len;

    return NGX_OK;
}


/* ---- the host function ---- */


int
ngx_http_pw_http_call(const pw_hctx_t *c, uint32_t token, pw_str_t upstream,
    const pw_pairs_t *headers, pw_str_t body, const pw_pairs_t *trailers,
    uint32_t timeout_ms)
{
    ngx_int_t            rc;
    ngx_str_t            name;
    ngx_log_t           *log;
    ngx_uint_t           https;
    ngx_pw_root_t       *root = c->plugin_data;
    ngx_http_pw_call_t  *call;
    ngx_http_pw_fctx_t  *f = ngx_http_pw_hctx_fctx(c);

    ngx_http_pw_calls_init();

    log = f ? f->ctx->r->connection->log : root->inst->log;

    call = ngx_calloc(sizeof(ngx_http_pw_call_t), log);
    if (call == NULL) {
        return PW_ENOMEM;
    }

    call->root = root;
    call->inst = root->inst;
    call->fctx = f;
    call->token = token;
    call->log = ngx_cycle->log;
    call->content_length = -1;

    /* an unknown target answers NOT_FOUND (BAD_ARGUMENT to the plugin),
     * bad request parts INVAL (also BAD_ARGUMENT) */
    name.data = (u_char *) upstream.data;
    name.len = upstream.len;
    https = ngx_http_pw_call_scheme(&name);

    rc = ngx_http_pw_call_target(call, &name, https, log);
    if (rc == NGX_DECLINED) {
        rc = PW_ENOTFOUND;

    } else if (rc == NGX_OK) {
        rc = ngx_http_pw_call_request(call, headers, body, trailers, log);
        if (rc == NGX_OK) {
            rc = ngx_http_pw_call_tls(call, &name, https, headers, log);
        }
        rc = rc == NGX_OK ? PW_OK : rc == NGX_DECLINED ? PW_EINVAL
                                  : rc == NGX_ABORT ? PW_EUNIMPLEMENTED
                                                    : PW_ENOMEM;

    } else {
        rc = PW_ENOMEM;
    }

    if (rc != PW_OK) {
        ngx_http_pw_call_free(call);
        return (int) rc;
    }

    call->target.len = upstream.len;
    call->target.data = ngx_alloc(upstream.len ? upstream.len : 1, log);
    if (call->target.data == NULL) {
        ngx_http_pw_call_free(call);
        return PW_ENOMEM;
    }
    ngx_memcpy(call->target.data, upstream.data, upstream.len);

    call->start.handler = ngx_http_pw_call_start;
    call->start.data = call;
    call->start.log = call->log;

    call->timer.handler = ngx_http_pw_call_timeout;
    call->timer.data = call;
    call->timer.log = call->log;

    /*
     * An instance still starting (a call from on_vm_start/on_configure)
     * has no count yet: ngx_pw_instance_acquire() sets it when the start
     * returns, so the reference is taken when the call starts, once the
     * instance is known to have started.
     */
    if (call->inst->refs == 0) {
        call->ref_pending = 1;

    } else {
        call->inst->refs++;
    }

    call->started = ngx_current_msec;
    ngx_queue_insert_tail(&ngx_http_pw_calls, &call->queue);
    if (f) {
        f->ncallouts++;
    }

    call->timeout = timeout_ms ? (ngx_msec_t) timeout_ms
                               : NGX_HTTP_PW_CALL_TIMEOUT;
    ngx_post_event(&call->start, &ngx_posted_events);

    ngx_pw_host_metric((ngx_cycle_t *) ngx_cycle, "callouts_in_flight", NULL,
                       1);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, log, 0,
                   "[wasm] http call %uD to \"%V\"", token, &call->target);

    return PW_OK;
}


/* ---- the network side ---- */


/*
 * Take the reference a call made while its instance started could not:
 * NGX_DECLINED when that instance did not become its module's running
 * one (its start failed and freed it).
 */
static ngx_int_t
ngx_http_pw_call_ref(ngx_http_pw_call_t *call)
{
    if (!call->ref_pending) {
        return NGX_OK;
    }

    if (ngx_pw_instance_take_ref(call->inst) != NGX_OK) {
        return NGX_DECLINED;
    }

    call->ref_pending = 0;

    return NGX_OK;
}


/* Take a call out of the worker's list of calls. */
static void
ngx_http_pw_call_unqueue(ngx_http_pw_call_t *call)
{
    ngx_queue_remove(&call->queue);

    if (call->fctx) {
        call->fctx->ncallouts--;
    }
}


/* Drop a call whose instance is gone, without a word to the plugin. */
static void
ngx_http_pw_call_drop(ngx_http_pw_call_t *call)
{
    ngx_log_error(NGX_LOG_INFO, call->log, 0,
                  "[wasm] http call %uD to \"%V\" dropped: its instance "
                  "did not start", call->token, &call->target);

    ngx_http_pw_call_unqueue(call);
    ngx_pw_host_metric((ngx_cycle_t *) ngx_cycle, "callouts_in_flight", NULL,
                       -1);
    ngx_http_pw_call_free(call);
}


static void
ngx_http_pw_call_start(ngx_event_t *ev)
{
    ngx_http_pw_call_t  *call = ev->data;

    if (ngx_http_pw_call_ref(call) != NGX_OK) {
        ngx_http_pw_call_drop(call);
        return;
    }

    /* armed here, on the event loop's clock: a call from on_configure
     * waits for the loop without losing its time */
    ngx_add_timer(&call->timer, call->timeout);

    if (call->host.len == 0) {
        ngx_http_pw_call_connect(call);
        return;
    }

    /* may answer at once (cached): nothing may touch call afterwards */
    if (ngx_http_pw_target_resolve(call->resolver, call->resolver_timeout,
                                   &call->host, ngx_http_pw_call_resolved,
                                   call, &call->rctx)
        != NGX_OK)
    {
        ngx_http_pw_call_fail(call, NGX_HTTP_PW_CALL_OTHER, 0,
                              "cannot start resolving");
    }
}


static void
ngx_http_pw_call_resolved(ngx_resolver_ctx_t *ctx)
{
    ngx_int_t              rc;
    ngx_http_pw_call_t    *call = ctx->data;
    ngx_http_pw_target_t   t;

    call->rctx = NULL;

    ngx_memzero(&t, sizeof(ngx_http_pw_target_t));
    t.port = call->port;

    if (ngx_http_pw_target_resolved(ctx, &t) != NGX_OK) {
        ngx_log_error(NGX_LOG_WARN, call->log, 0,
                      "[wasm] http call %uD: %V could not be resolved "
                      "(%i: %s)", call->token, &call->host, ctx->state,
                      ngx_resolver_strerror(ctx->state));
        ngx_resolve_name_done(ctx);
        ngx_http_pw_call_fail(call, NGX_HTTP_PW_CALL_OTHER, 0,
                              "name not resolved");
        return;
    }

    ngx_resolve_name_done(ctx);

    call->addr.name.data = NULL;        /* was host */
    call->addr.name.len = 0;

    rc = ngx_http_pw_call_set_addr(call, &t, call->log);

    if (rc != NGX_OK) {
        if (call->addr.name.data == NULL) {
            call->addr.name = call->host;
        }
        ngx_http_pw_call_fail(call, NGX_HTTP_PW_CALL_OTHER, 0,
                              "out of memory");
        return;
    }

    ngx_http_pw_call_connect(call);
}


static void
ngx_http_pw_call_attach(ngx_http_pw_call_t *call, ngx_connection_t *c)
{
    c->data = call;
    c->log = call->log;
    c->read->log = call->log;
    c->write->log = call->log;
    c->read->handler = ngx_http_pw_call_read;
    c->write->handler = ngx_http_pw_call_write;
}


static void
ngx_http_pw_call_connect(ngx_http_pw_call_t *call)
{
    ngx_int_t          rc;
    ngx_connection_t  *c;

    if (call->in == NULL) {
        call->in = ngx_alloc(NGX_HTTP_PW_CALL_READ_SIZE, call->log);
        if (call->in == NULL) {
            ngx_http_pw_call_fail(call, NGX_HTTP_PW_CALL_OTHER, 0,
                                  "out of memory");
            return;
        }
    }
    call->pos = call->in;
    call->last = call->in;

    if (!call->retried) {
        c = ngx_http_pw_idle_get(call);
        if (c) {
            call->reused = 1;
            call->peer.connection = c;
            ngx_http_pw_call_attach(call, c);
            ngx_http_pw_call_write(c->write);
            return;
        }
    }

    call->reused = 0;

    ngx_memzero(&call->peer, sizeof(ngx_peer_connection_t));
    call->peer.sockaddr = call->addr.sockaddr;
    call->peer.socklen = call->addr.socklen;
    call->peer.name = &call->addr.name;
    call->peer.get = ngx_event_get_peer;
    call->peer.log = call->log;
    call->peer.log_error = NGX_ERROR_ERR;
    call->peer.tries = 1;

    rc = ngx_event_connect_peer(&call->peer);

    if (rc == NGX_ERROR || rc == NGX_BUSY || rc == NGX_DECLINED) {
        call->peer.connection = NULL;
        ngx_http_pw_call_fail(call, NGX_HTTP_PW_CALL_REFUSED, 0,
                              "cannot connect");
        return;
    }

    c = call->peer.connection;
    ngx_http_pw_call_attach(call, c);

    if (rc == NGX_AGAIN) {
        call->connecting = 1;
        return;
    }

    ngx_http_pw_call_write(c->write);
}


static void
ngx_http_pw_call_timeout(ngx_event_t *ev)
{
    ngx_http_pw_call_t  *call = ev->data;

    ngx_http_pw_call_fail(call, NGX_HTTP_PW_CALL_TIMEOUT_CAUSE, 0,
                          "timed out");
}


/* A kept-alive connection the peer closed before our request: try once
 * more on a new one. */
static ngx_uint_t
ngx_http_pw_call_retry(ngx_http_pw_call_t *call)
{
    if (!call->reused || call->retried || call->received) {
        return 0;
    }

    call->retried = 1;
    call->req_sent = 0;
    ngx_pw_tls_close(call->peer.connection);
    call->peer.connection = NULL;
    ngx_http_pw_call_connect(call);

    return 1;
}


static void
ngx_http_pw_call_tls_done(ngx_connection_t *c, const char *err)
{
    ngx_http_pw_call_t  *call = c->data;

    if (err) {
        ngx_http_pw_call_fail(call, NGX_HTTP_PW_CALL_TLS, 0, err);
        return;
    }

    ngx_http_pw_call_attach(call, c);
    ngx_http_pw_call_write(c->write);
}


static void
ngx_http_pw_call_handshake(ngx_http_pw_call_t *call, ngx_connection_t *c)
{
    ngx_int_t            rc;
    const char          *err;
    ngx_pw_tls_params_t  params;

    params.server_name = call->server_name;
    ngx_str_null(&params.alpn);
    params.peer = call->addr.name;

    err = NULL;
    rc = ngx_pw_tls_handshake(c, &params, ngx_http_pw_call_tls_done, &err);

    if (rc == NGX_AGAIN) {
        return;
    }

    ngx_http_pw_call_tls_done(c, rc == NGX_OK ? NULL
                                 : err ? err : "handshake failed");
}


static void
ngx_http_pw_call_write(ngx_event_t *wev)
{
    int                  err;
    socklen_t            len;
    ssize_t              n;
    ngx_connection_t    *c = wev->data;
    ngx_http_pw_call_t  *call = c->data;

    if (call->connecting) {
        call->connecting = 0;
        err = 0;
        len = sizeof(int);
        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, (void *) &err, &len)
            == -1)
        {
            err = ngx_socket_errno;
        }
        if (err) {
            ngx_http_pw_call_fail(call, NGX_HTTP_PW_CALL_REFUSED, err,
                                  "cannot connect");
            return;
        }
    }

    if (call->tls && c->ssl == NULL) {
        ngx_http_pw_call_handshake(call, c);
        return;
    }

    while (call->req_sent < call->req_len) {
        n = c->send(c, call->req + call->req_sent,
                    call->req_len - call->req_sent);

        if (n == NGX_AGAIN) {
            if (ngx_handle_write_event(wev, 0) != NGX_OK) {
                ngx_http_pw_call_fail(call, NGX_HTTP_PW_CALL_OTHER, 0,
                                      "cannot wait to write");
            }
            return;
        }

        if (n == NGX_ERROR) {
            if (!ngx_http_pw_call_retry(call)) {
                ngx_http_pw_call_fail(call, NGX_HTTP_PW_CALL_RESET, 0,
                                      "connection lost while sending");
            }
            return;
        }

        call->req_sent += n;
    }

    wev->handler = ngx_http_pw_call_dummy;

    /* the answer may already be there */
    if (c->read->ready) {
        ngx_http_pw_call_read(c->read);
    }
}


static void
ngx_http_pw_call_dummy(ngx_event_t *ev)
{
}


static void
ngx_http_pw_call_read(ngx_event_t *rev)
{
    ssize_t              n;
    ngx_int_t            rc;
    const char          *reason;
    ngx_connection_t    *c = rev->data;
    ngx_http_pw_call_t  *call = c->data;

    if (call->connecting) {
        /* the connect result shows on the write side */
        ngx_http_pw_call_write(c->write);
        return;
    }

    for ( ;; ) {
        if (call->last == call->in + NGX_HTTP_PW_CALL_READ_SIZE) {
            if (call->pos == call->in) {
                ngx_http_pw_call_fail(call, NGX_HTTP_PW_CALL_MALFORMED, 0,
                                      "line too long in the answer");
                return;
            }
            call->last = ngx_movemem(call->in, call->pos,
                                     call->last - call->pos);
            call->pos = call->in;
        }

        n = c->recv(c, call->last, call->in + NGX_HTTP_PW_CALL_READ_SIZE
                                   - call->last);

        if (n == NGX_AGAIN) {
            if (ngx_handle_read_event(rev, 0) != NGX_OK) {
                ngx_http_pw_call_fail(call, NGX_HTTP_PW_CALL_OTHER, 0,
                                      "cannot wait to read");
            }
            return;
        }

        if (n == NGX_ERROR || n == 0) {
            if (ngx_http_pw_call_retry(call)) {
                return;
            }

            if (n == 0 && call->state == NGX_HTTP_PW_ST_UNTIL_CLOSE) {
                call->close = 1;
                ngx_http_pw_call_finish(call, NGX_HTTP_PW_CALL_OK);
                return;
            }

            ngx_http_pw_call_fail(call, NGX_HTTP_PW_CALL_RESET, 0,
                                  n == 0 ? "connection closed before the "
                                           "whole answer"
                                         : "connection lost while reading");
            return;
        }

        call->received += n;
        call->last += n;

        reason = NULL;
        rc = ngx_http_pw_call_parse(call, &reason);

        if (rc == NGX_OK) {
            ngx_http_pw_call_finish(call, NGX_HTTP_PW_CALL_OK);
            return;
        }

        if (rc == NGX_ERROR) {
            ngx_http_pw_call_fail(call, NGX_HTTP_PW_CALL_MALFORMED, 0,
                                  reason ? reason : "malformed answer");
            return;
        }
    }
}


/* ---- parsing the answer ---- */


/* The next line of [pos, last) without its CRLF (or LF); NULL if none. */
static u_char *
ngx_http_pw_call_line(ngx_http_pw_call_t *call, u_char **end)
{
    u_char  *start, *nl;

    start = call->pos;
    nl = ngx_strlchr(start, call->last, '\n');
    if (nl == NULL) {
        return NULL;
    }

    call->pos = nl + 1;
    if (nl > start && nl[-1] == '\r') {
        nl--;
    }
    *end = nl;

    return start;
}


static ngx_int_t
ngx_http_pw_call_field(ngx_http_pw_call_t *call, u_char *start, u_char *end,
    ngx_uint_t trailer, const char **reason)
{
    u_char                    *colon, *v, *ve, *p;
    size_t                     klen;
    ngx_int_t                  rc;
    ngx_http_pw_call_field_t  *fld;

    if (*start == ' ' || *start == '\t') {
        *reason = "folded header line in the answer";
        return NGX_ERROR;
    }

    colon = ngx_strlchr(start, end, ':');
    if (colon == NULL || colon == start) {
        *reason = "bad header line in the answer";
        return NGX_ERROR;
    }

    for (p = start; p < colon; p++) {
        if (*p <= 0x20 || *p >= 0x7f) {
            *reason = "bad header name in the answer";
            return NGX_ERROR;
        }
        *p = ngx_tolower(*p);
    }
    klen = colon - start;

    v = colon + 1;
    ve = end;
    while (v < ve && (*v == ' ' || *v == '\t')) {
        v++;
    }
    while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t')) {
        ve--;
    }
    for (p = v; p < ve; p++) {
        if (*p == '\0' || *p == '\r') {
            *reason = "bad header value in the answer";
            return NGX_ERROR;
        }
    }

    if (!trailer) {
        if (klen == 14 && ngx_strncmp(start, "content-length", 14) == 0) {
            off_t  n = ngx_atoof(v, ve - v);

            if (n < 0 || (call->content_length >= 0
                          && call->content_length != n))
            {
                *reason = "bad Content-Length in the answer";
                return NGX_ERROR;
            }
            call->content_length = n;

        } else if (klen == 17
                   && ngx_strncmp(start, "transfer-encoding", 17) == 0)
        {
            /* chunked when it is the last coding */
            call->chunked = ve - v >= 7
                            && ngx_strncasecmp(ve - 7, (u_char *) "chunked",
                                               7) == 0;
            if (!call->chunked) {
                call->close = 1;
            }
            return NGX_OK;              /* hop-by-hop: not shown */

        } else if (klen == 10 && ngx_strncmp(start, "connection", 10) == 0) {
            if (ngx_strlcasestrn(v, ve, (u_char *) "close", 5 - 1)) {
                call->close = 1;
            }
            return NGX_OK;

        } else if (klen == 10 && ngx_strncmp(start, "keep-alive", 10) == 0) {
            return NGX_OK;
        }
    }

    if (call->nfields == NGX_HTTP_PW_CALL_MAX_FIELDS) {
        *reason = "too many headers in the answer";
        return NGX_ERROR;
    }

    if (call->nfields == call->fields_cap) {
        ngx_http_pw_call_field_t  *nf;
        ngx_uint_t                 cap;

        cap = call->fields_cap ? call->fields_cap * 2 : 16;
        nf = ngx_alloc(cap * sizeof(ngx_http_pw_call_field_t), call->log);
        if (nf == NULL) {
            *reason = "out of memory";
            return NGX_ERROR;
        }
        if (call->nfields) {
            ngx_memcpy(nf, call->fields,
                       call->nfields * sizeof(ngx_http_pw_call_field_t));
        }
        ngx_free(call->fields);
        call->fields = nf;
        call->fields_cap = cap;
    }

    fld = &call->fields[call->nfields];
    fld->key = call->fields_buf.len;
    fld->key_len = klen;
    fld->value = fld->key + klen;
    fld->value_len = ve - v;
    fld->trailer = trailer;

    rc = ngx_http_pw_call_buf_add(&call->fields_buf, start, klen,
                                  NGX_HTTP_PW_CALL_MAX_HEAD);
    if (rc == NGX_OK) {
        rc = ngx_http_pw_call_buf_add(&call->fields_buf, v, ve - v,
                                      NGX_HTTP_PW_CALL_MAX_HEAD);
    }
    if (rc != NGX_OK) {
        *reason = rc == NGX_DECLINED ? "headers of the answer too large"
                                     : "out of memory";
        return NGX_ERROR;
    }

    call->nfields++;

    return NGX_OK;
}


static ngx_int_t
ngx_http_pw_call_status_line(ngx_http_pw_call_t *call, u_char *p, u_char *end,
    const char **reason)
{
    ngx_http_pw_call_field_t  *fld;

    /* HTTP/1.x SP 3DIGIT [SP reason] */
    if (end - p < 12 || ngx_strncmp(p, "HTTP/1.", 7) != 0
        || (p[7] != '0' && p[7] != '1') || p[8] != ' '
        || p[9] < '1' || p[9] > '5' || p[10] < '0' || p[10] > '9'
        || p[11] < '0' || p[11] > '9' || (end - p > 12 && p[12] != ' '))
    {
        *reason = "bad status line in the answer";
        return NGX_ERROR;
    }

    call->status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');

    if (p[7] == '0') {
        call->close = 1;
    }

    if (call->status == 101) {
        *reason = "the answer switches protocols";
        return NGX_ERROR;
    }

    call->interim = call->status < 200;
    call->interim_mark = call->nfields;
    call->interim_buf_mark = call->fields_buf.len;

    if (call->interim) {
        return NGX_OK;
    }

    /* :status is the first pair */
    call->nfields = 0;
    call->fields_buf.len = 0;
    call->content_length = -1;
    call->chunked = 0;

    if (ngx_http_pw_call_buf_add(&call->fields_buf, p + 9, 3,
                                 NGX_HTTP_PW_CALL_MAX_HEAD) != NGX_OK)
    {
        *reason = "out of memory";
        return NGX_ERROR;
    }

    if (call->fields_cap == 0) {
        call->fields = ngx_alloc(16 * sizeof(ngx_http_pw_call_field_t),
                                 call->log);
        if (call->fields == NULL) {
            *reason = "out of memory";
            return NGX_ERROR;
        }
        call->fields_cap = 16;
    }

    fld = &call->fields[0];
    fld->key = 0;
    fld->key_len = 0;                   /* ":status" */
    fld->value = 0;
    fld->value_len = 3;
    fld->trailer = 0;
    call->nfields = 1;

    return NGX_OK;
}


static ngx_int_t
ngx_http_pw_call_parse(ngx_http_pw_call_t *call, const char **reason)
{
    u_char  *line, *end, *p;
    off_t    size;
    size_t   n;

    for ( ;; ) {
        switch (call->state) {

        case NGX_HTTP_PW_ST_STATUS:
            line = ngx_http_pw_call_line(call, &end);
            if (line == NULL) {
                return NGX_AGAIN;
            }
            if (ngx_http_pw_call_status_line(call, line, end, reason)
                != NGX_OK)
            {
                return NGX_ERROR;
            }
            call->state = NGX_HTTP_PW_ST_HEADER;
            break;

        case NGX_HTTP_PW_ST_HEADER:
        case NGX_HTTP_PW_ST_TRAILER:
            line = ngx_http_pw_call_line(call, &end);
            if (line == NULL) {
                return NGX_AGAIN;
            }

            if (line != end) {
                if (ngx_http_pw_call_field(call, line, end,
                                           call->state
                                           == NGX_HTTP_PW_ST_TRAILER,
                                           reason)
                    != NGX_OK)
                {
                    return NGX_ERROR;
                }
                break;
            }

            if (call->state == NGX_HTTP_PW_ST_TRAILER) {
                call->state = NGX_HTTP_PW_ST_DONE;
                break;
            }

            if (call->interim) {
                call->nfields = call->interim_mark;
                call->fields_buf.len = call->interim_buf_mark;
                call->state = NGX_HTTP_PW_ST_STATUS;
                break;
            }

            if (call->head_only || call->status == 204
                || call->status == 304)
            {
                call->state = NGX_HTTP_PW_ST_DONE;

            } else if (call->chunked) {
                call->state = NGX_HTTP_PW_ST_CHUNK_SIZE;

            } else if (call->content_length >= 0) {
                if (call->content_length > NGX_HTTP_PW_CALL_MAX_BODY) {
                    *reason = "answer too large";
                    return NGX_ERROR;
                }
                call->rest = call->content_length;
                call->state = call->rest ? NGX_HTTP_PW_ST_LENGTH
                                         : NGX_HTTP_PW_ST_DONE;

            } else {
                call->close = 1;
                call->state = NGX_HTTP_PW_ST_UNTIL_CLOSE;
            }
            break;

        case NGX_HTTP_PW_ST_LENGTH:
        case NGX_HTTP_PW_ST_UNTIL_CLOSE:
        case NGX_HTTP_PW_ST_CHUNK_DATA:
            n = call->last - call->pos;
            if (call->state != NGX_HTTP_PW_ST_UNTIL_CLOSE
                && (off_t) n > call->rest)
            {
                n = (size_t) call->rest;
            }
            if (n == 0) {
                return NGX_AGAIN;
            }

            switch (ngx_http_pw_call_buf_add(&call->body, call->pos, n,
                                             NGX_HTTP_PW_CALL_MAX_BODY))
            {
            case NGX_OK:
                break;
            case NGX_DECLINED:
                *reason = "answer too large";
                return NGX_ERROR;
            default:
                *reason = "out of memory";
                return NGX_ERROR;
            }

            call->pos += n;

            if (call->state == NGX_HTTP_PW_ST_UNTIL_CLOSE) {
                break;
            }

            call->rest -= n;
            if (call->rest == 0) {
                call->state = call->state == NGX_HTTP_PW_ST_LENGTH
                              ? NGX_HTTP_PW_ST_DONE
                              : NGX_HTTP_PW_ST_CHUNK_END;
            }
            break;

        case NGX_HTTP_PW_ST_CHUNK_SIZE:
            line = ngx_http_pw_call_line(call, &end);
            if (line == NULL) {
                return NGX_AGAIN;
            }

            size = 0;
            for (p = line; p < end; p++) {
                if (*p >= '0' && *p <= '9') {
                    size = size * 16 + (*p - '0');
                } else if ((*p | 0x20) >= 'a' && (*p | 0x20) <= 'f') {
                    size = size * 16 + ((*p | 0x20) - 'a' + 10);
                } else {
                    break;
                }
                if (size > NGX_HTTP_PW_CALL_MAX_BODY) {
                    *reason = "answer too large";
                    return NGX_ERROR;
                }
            }
            if (p == line || (p < end && *p != ';' && *p != ' '
                              && *p != '\t'))
            {
                *reason = "bad chunk size in the answer";
                return NGX_ERROR;
            }

            call->rest = size;
            call->state = size ? NGX_HTTP_PW_ST_CHUNK_DATA
                               : NGX_HTTP_PW_ST_TRAILER;
            break;

        case NGX_HTTP_PW_ST_CHUNK_END:
            line = ngx_http_pw_call_line(call, &end);
            if (line == NULL) {
                return NGX_AGAIN;
            }
            if (line != end) {
                *reason = "bad chunk end in the answer";
                return NGX_ERROR;
            }
            call->state = NGX_HTTP_PW_ST_CHUNK_SIZE;
            break;

        default: /* NGX_HTTP_PW_ST_DONE */
            if (call->pos != call->last) {
                call->close = 1;        /* more than one answer */
            }
            return NGX_OK;
        }
    }
}


/* ---- ending a call ---- */


static void
ngx_http_pw_call_close(ngx_http_pw_call_t *call)
{
    if (call->rctx) {
        ngx_resolve_name_done(call->rctx);
        call->rctx = NULL;
    }

    if (call->peer.connection) {
        ngx_pw_tls_close(call->peer.connection);
        call->peer.connection = NULL;
    }
}


static void
ngx_http_pw_call_free(ngx_http_pw_call_t *call)
{
    ngx_http_pw_call_close(call);

    if (call->timer.timer_set) {
        ngx_del_timer(&call->timer);
    }
    if (call->start.posted) {
        ngx_delete_posted_event(&call->start);
    }

    ngx_free(call->target.data);
    if (call->addr.name.data != call->host.data) {
        ngx_free(call->addr.name.data);
    }
    ngx_free(call->host.data);
    ngx_free(call->server_name.data);
    ngx_free(call->addr.sockaddr);
    ngx_free(call->req);
    ngx_free(call->in);
    ngx_free(call->fields);
    ngx_http_pw_buf_release(&call->fields_buf);
    ngx_http_pw_buf_release(&call->body);
    ngx_free(call);
}


static void
ngx_http_pw_call_fail(ngx_http_pw_call_t *call, ngx_uint_t cause,
    ngx_err_t err, const char *reason)
{
    ngx_log_error(NGX_LOG_WARN, call->log, err,
                  "[wasm] http call %uD to \"%V\" (%V) failed: %s: %s",
                  call->token, &call->target, &call->addr.name,
                  ngx_http_pw_cause_name[cause], reason);

    ngx_http_pw_call_finish(call, cause);
}


static void
ngx_http_pw_call_finish(ngx_http_pw_call_t *call, ngx_uint_t cause)
{
    size_t                     i, nh, nt;
    pw_pair_t                 *pairs, *pr;
    pw_str_t                   body;
    pw_pairs_t                 headers, trailers;
    ngx_pw_root_t             *root;
    ngx_pw_instance_t         *inst;
    ngx_http_pw_call_field_t  *fld;

    if (ngx_http_pw_call_ref(call) != NGX_OK) {
        ngx_http_pw_call_drop(call);
        return;
    }

    ngx_http_pw_call_unqueue(call);

    if (call->timer.timer_set) {
        ngx_del_timer(&call->timer);
    }

    if (cause == NGX_HTTP_PW_CALL_OK && !call->close
        && call->req_sent == call->req_len)
    {
        ngx_http_pw_idle_put(call);
    }

    ngx_http_pw_call_close(call);

    ngx_pw_host_metric((ngx_cycle_t *) ngx_cycle, "callouts_in_flight", NULL,
                       -1);
    ngx_pw_host_metric((ngx_cycle_t *) ngx_cycle, "callouts", NULL, 1);
    ngx_pw_host_metric((ngx_cycle_t *) ngx_cycle, "callout_duration_ms",
                       NULL, (int64_t) (ngx_current_msec - call->started));
    if (cause != NGX_HTTP_PW_CALL_OK) {
        ngx_pw_host_metric((ngx_cycle_t *) ngx_cycle,
                           ngx_http_pw_cause_metric[cause], NULL, 1);
    }

    root = call->root;
    inst = call->inst;

    if (inst->failed || root->plugin == NULL) {
        goto done;
    }

    headers.pairs = NULL;
    headers.n = 0;
    trailers = headers;
    body.data = NULL;
    body.len = 0;
    pairs = NULL;

    if (cause == NGX_HTTP_PW_CALL_OK) {
        pairs = ngx_alloc((call->nfields ? call->nfields : 1)
                          * sizeof(pw_pair_t), call->log);
        if (pairs == NULL) {
            goto done;
        }

        nh = 0;
        for (i = 0; i < call->nfields; i++) {
            nh += !call->fields[i].trailer;
        }

        nt = nh;
        nh = 0;
        for (i = 0; i < call->nfields; i++) {
            fld = &call->fields[i];
            pr = &pairs[fld->trailer ? nt++ : nh++];

            if (i == 0) {
                pr->key = PW_STR(":status");
            } else {
                pr->key.data = (const char *) call->fields_buf.data
                               + fld->key;
                pr->key.len = fld->key_len;
            }
            pr->value.data = (const char *) call->fields_buf.data
                             + fld->value;
            pr->value.len = fld->value_len;
        }

        headers.pairs = pairs;
        headers.n = nh;
        trailers.pairs = pairs + nh;
        trailers.n = nt - nh;
        body.data = (const char *) call->body.data;
        body.len = call->body.len;
    }

    (void) pw_plugin_http_response(root->plugin, call->token, &headers, body,
                                   &trailers);
    (void) ngx_pw_instance_check(inst, call->log);

    ngx_free(pairs);

done:

    ngx_http_pw_call_free(call);
    ngx_pw_instance_release(inst);
}


NGX_PW_HOT void
ngx_http_pw_callouts_cancel(ngx_http_pw_fctx_t *f)
{
    ngx_queue_t         *q, *next;
    ngx_pw_instance_t   *inst;
    ngx_http_pw_call_t  *call;

    if (f->ncallouts == 0) {
        return;
    }

    ngx_http_pw_grpc_cancel_all(f);

    if (!ngx_http_pw_calls_ready) {
        return;
    }

    for (q = ngx_queue_head(&ngx_http_pw_calls);
         q != ngx_queue_sentinel(&ngx_http_pw_calls);
         q = next)
    {
        next = ngx_queue_next(q);
        call = ngx_queue_data(q, ngx_http_pw_call_t, queue);

        if (call->fctx != f) {
            continue;
        }

        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, call->log, 0,
                       "[wasm] http call %uD cancelled", call->token);

        ngx_http_pw_call_unqueue(call);
        ngx_pw_host_metric((ngx_cycle_t *) ngx_cycle, "callouts_in_flight",
                           NULL, -1);
        ngx_pw_host_metric((ngx_cycle_t *) ngx_cycle, "callouts_cancelled",
                           NULL, 1);

        inst = call->ref_pending ? NULL : call->inst;
        ngx_http_pw_call_free(call);
        if (inst) {
            ngx_pw_instance_release(inst);
        }
    }
}


/* ---- kept-alive connections ---- */


static ngx_uint_t
ngx_http_pw_conn_alive(ngx_connection_t *c)
{
    u_char     buf[1];
    ssize_t    n;
    ngx_err_t  err;

    if (c->close || c->read->eof || c->read->error || c->write->error) {
        return 0;
    }

    n = recv(c->fd, buf, 1, MSG_PEEK);
    err = ngx_socket_errno;

    /* nothing to read and no end: still open; anything else ends it */
    return n == -1 && err == NGX_EAGAIN;
}


static ngx_connection_t *
ngx_http_pw_idle_get(ngx_http_pw_call_t *call)
{
    ngx_queue_t         *q, *next;
    ngx_connection_t    *c;
    ngx_http_pw_idle_t  *item;

    for (q = ngx_queue_head(&ngx_http_pw_idle);
         q != ngx_queue_sentinel(&ngx_http_pw_idle);
         q = next)
    {
        next = ngx_queue_next(q);
        item = ngx_queue_data(q, ngx_http_pw_idle_t, queue);

        if (ngx_cmp_sockaddr((struct sockaddr *) item->sockaddr,
                             item->socklen, call->addr.sockaddr,
                             call->addr.socklen, 1)
            != NGX_OK
            || item->tls != call->tls
            || item->server_name_len != call->server_name.len
            || ngx_strncasecmp(item->server_name, call->server_name.data,
                               call->server_name.len) != 0)
        {
            continue;
        }

        c = item->connection;
        ngx_queue_remove(q);
        ngx_http_pw_nidle--;
        ngx_free(item);

        if (c->read->timer_set) {
            ngx_del_timer(c->read);
        }
        c->read->cancelable = 0;
        c->idle = 0;

        if (!ngx_http_pw_conn_alive(c)) {
            ngx_pw_tls_close(c);
            continue;
        }

        return c;
    }

    return NULL;
}


static void
ngx_http_pw_idle_put(ngx_http_pw_call_t *call)
{
    ngx_connection_t    *c = call->peer.connection;
    ngx_http_pw_idle_t  *item;

    if (c == NULL || ngx_exiting || ngx_terminate || ngx_quit
        || ngx_http_pw_nidle >= NGX_HTTP_PW_KEEPALIVE_MAX
        || call->addr.socklen > NGX_SOCKADDRLEN
        || call->server_name.len > NGX_HTTP_PW_NAME_MAX
        || c->read->eof || c->read->error || c->write->error)
    {
        return;
    }

    item = ngx_alloc(sizeof(ngx_http_pw_idle_t), call->log);
    if (item == NULL) {
        return;
    }

    if (c->read->timer_set) {
        ngx_del_timer(c->read);
    }
    if (c->write->timer_set) {
        ngx_del_timer(c->write);
    }

    if (ngx_handle_read_event(c->read, 0) != NGX_OK) {
        ngx_free(item);
        return;
    }

    item->connection = c;
    ngx_memcpy(item->sockaddr, call->addr.sockaddr, call->addr.socklen);
    item->socklen = call->addr.socklen;
    item->tls = call->tls;
    item->server_name_len = call->server_name.len;
    ngx_memcpy(item->server_name, call->server_name.data,
               call->server_name.len);
    ngx_queue_insert_head(&ngx_http_pw_idle, &item->queue);
    ngx_http_pw_nidle++;

    c->data = item;
    c->log = ngx_cycle->log;
    c->read->log = ngx_cycle->log;
    c->write->log = ngx_cycle->log;
    c->read->handler = ngx_http_pw_idle_handler;
    c->write->handler = ngx_http_pw_call_dummy;
    c->idle = 1;                       /* closed when the worker exits */

    c->read->cancelable = 1;
    ngx_add_timer(c->read, NGX_HTTP_PW_KEEPALIVE_TIMEOUT);

    call->peer.connection = NULL;
}


/* The peer closed an idle connection, sent something unasked, the idle
 * time ran out or the worker exits: drop it. */
static void
ngx_http_pw_idle_handler(ngx_event_t *ev)
{
    ngx_connection_t    *c = ev->data;
    ngx_http_pw_idle_t  *item = c->data;

    if (!ev->timedout && ngx_http_pw_conn_alive(c)) {
        if (ngx_handle_read_event(c->read, 0) == NGX_OK) {
            return;
        }
    }

    ngx_queue_remove(&item->queue);
    ngx_http_pw_nidle--;
    ngx_free(item);

    c->read->cancelable = 0;
    ngx_pw_tls_close(c);
}
