/*
 * proxy_wasm: the Proxy-Wasm HTTP filter chain.
 *
 * Request headers run in the rewrite phase (so they also run where a
 * location answers with `return`), the request body through a request
 * body filter while this module reads it, the response through a header
 * and a body filter. The chain runs in order on the request and in
 * reverse order on the response, as Envoy's filter chains do. A plugin
 * that pauses parks the request until proxy_continue_stream; host
 * callbacks never act on the request directly: they set flags that are
 * acted on after the call returns, or from a posted event.
 */
#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_pw.h"
#include "ngx_http_pw_headers.h"
#include "ngx_http_pw_callout.h"

/* off the per-request path: placed apart, so the hot code is denser */
#define NGX_HTTP_PW_COLD  __attribute__((cold))
/* out of line: a caller's fast path then saves no registers for it */
#define NGX_HTTP_PW_APART __attribute__((noinline))


/* r->buffered has 4 bits, all taken by nginx's own filters; the image
 * filter's bit is reused (both on one request is not supported). */
#define NGX_HTTP_PW_BUFFERED   0x08

#define NGX_HTTP_PW_REQ_INIT     0
#define NGX_HTTP_PW_REQ_HEADERS  1
#define NGX_HTTP_PW_REQ_BODY     2
#define NGX_HTTP_PW_REQ_DONE     3

/* results of running a phase over the chain */
#define NGX_HTTP_PW_OK        0    /* every filter continued */
#define NGX_HTTP_PW_PAUSED    1    /* a filter paused */
#define NGX_HTTP_PW_LOCAL     2    /* a local response is pending */
#define NGX_HTTP_PW_FAIL      3    /* a filter failed closed */
#define NGX_HTTP_PW_CLOSE     4    /* close_stream */
#define NGX_HTTP_PW_ERROR     5    /* host error (allocation) */


static char *ngx_http_pw_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static void *ngx_http_pw_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_pw_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static ngx_int_t ngx_http_pw_init(ngx_conf_t *cf);
static void ngx_http_pw_resume_handler(ngx_event_t *ev);
static void ngx_http_pw_hold_handler(ngx_event_t *ev);
static ngx_int_t ngx_http_pw_send_local(ngx_http_request_t *r,
    ngx_http_pw_ctx_t *ctx);
static ngx_uint_t ngx_http_pw_first_with_body(ngx_http_pw_ctx_t *ctx);
static ngx_int_t ngx_http_pw_body_run(ngx_http_request_t *r,
    ngx_http_pw_ctx_t *ctx, ngx_chain_t *in);
static ngx_uint_t ngx_http_pw_run_headers(ngx_http_pw_ctx_t *ctx,
    ngx_uint_t response);


static ngx_conf_enum_t  ngx_http_pw_isolation[] = {
    { ngx_string("none"), NGX_HTTP_PW_ISOLATION_NONE },
    { ngx_string("stream"), NGX_HTTP_PW_ISOLATION_STREAM },
    { ngx_null_string, 0 }
};


static ngx_command_t  ngx_http_pw_commands[] = {

    { ngx_string("proxy_wasm"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_pw_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("proxy_wasm_isolation"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_pw_loc_conf_t, isolation),
      &ngx_http_pw_isolation },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_pw_module_ctx = {
    NULL,                                  /* preconfiguration */
    ngx_http_pw_init,                      /* postconfiguration */
    NULL,                                  /* create main configuration */
    NULL,                                  /* init main configuration */
    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */
    ngx_http_pw_create_loc_conf,           /* create location configuration */
    ngx_http_pw_merge_loc_conf             /* merge location configuration */
};


ngx_module_t  ngx_http_pw_module = {
    NGX_MODULE_V1,
    &ngx_http_pw_module_ctx,               /* module context */
    ngx_http_pw_commands,                  /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    NULL,                                  /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    NULL,                                  /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;
static ngx_http_output_body_filter_pt    ngx_http_next_body_filter;
static ngx_http_request_body_filter_pt   ngx_http_next_request_body_filter;


/* ---- configuration ---- */


static void *
ngx_http_pw_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_pw_loc_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_http_pw_loc_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    conf->filters = NGX_CONF_UNSET_PTR;
    conf->isolation = NGX_CONF_UNSET_UINT;

    return conf;
}


static char *
ngx_http_pw_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_pw_loc_conf_t  *prev = parent;
    ngx_http_pw_loc_conf_t  *conf = child;

    ngx_conf_merge_ptr_value(conf->filters, prev->filters, NULL);
    ngx_conf_merge_uint_value(conf->isolation, prev->isolation,
                              NGX_HTTP_PW_ISOLATION_NONE);

    return NGX_CONF_OK;
}


static char *
ngx_http_pw_directive(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_pw_loc_conf_t  *plcf = conf;

    ngx_int_t              n;
    ngx_str_t             *value, config, root_id, v;
    ngx_uint_t             i;
    ngx_http_pw_filter_t  *f;

    value = cf->args->elts;

    if (plcf->filters == NGX_CONF_UNSET_PTR) {
        plcf->filters = ngx_array_create(cf->pool, 2,
                                         sizeof(ngx_http_pw_filter_t));
        if (plcf->filters == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    f = ngx_array_push(plcf->filters);
    if (f == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(f, sizeof(ngx_http_pw_filter_t));
    f->error_status = NGX_HTTP_INTERNAL_SERVER_ERROR;

    ngx_str_null(&config);
    ngx_str_null(&root_id);

    if (cf->args->nelts >= 3) {
        config = value[2];
    }

    for (i = 3; i < cf->args->nelts; i++) {
        v = value[i];

        if (v.len > 8 && ngx_strncmp(v.data, "root_id=", 8) == 0) {
            root_id.data = v.data + 8;
            root_id.len = v.len - 8;
            continue;
        }

        if (v.len == 15 && ngx_strncmp(v.data, "on_error=closed", 15) == 0) {
            f->fail_open = 0;
            continue;
        }

        if (v.len == 13 && ngx_strncmp(v.data, "on_error=open", 13) == 0) {
            f->fail_open = 1;
            continue;
        }

        if (v.len > 13 && ngx_strncmp(v.data, "error_status=", 13) == 0) {
            n = ngx_atoi(v.data + 13, v.len - 13);
            if (n < 400 || n > 599) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "proxy_wasm: error_status must be "
                                   "400-599 in \"%V\"", &v);
                return NGX_CONF_ERROR;
            }
            f->error_status = (ngx_uint_t) n;
            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "proxy_wasm: unknown option \"%V\" (options: "
                           "root_id=ID, on_error=closed|open, "
                           "error_status=CODE; the second argument is "
                           "always the plugin configuration)", &v);
        return NGX_CONF_ERROR;
    }

    f->plugin = ngx_pw_plugin_conf(cf, &value[1], &root_id, &config);
    if (f->plugin == NULL) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* ---- buffers ---- */


/* the shared buffer (ngx_http_pw_buf.c), held to the ABI's buffer limit */

static ngx_int_t
ngx_http_pw_buf_reserve(ngx_http_pw_buf_t *b, size_t len)
{
    if (len > PW_MAX_BUFFER_BYTES) {
        return NGX_DECLINED;
    }

    return ngx_http_pw_buf_grow(b, len);
}


static ngx_int_t
ngx_http_pw_buf_append(ngx_http_pw_buf_t *b, const u_char *data, size_t len)
{
    if (len > PW_MAX_BUFFER_BYTES - b->len) {
        return NGX_DECLINED;
    }

    return ngx_http_pw_buf_add(b, data, len);
}


ngx_int_t
ngx_http_pw_body_splice(ngx_http_pw_fctx_t *f, size_t start, size_t size,
    const u_char *value, size_t vlen)
{
    size_t              newlen;
    ngx_int_t           rc;
    ngx_http_pw_buf_t  *b;

    if (f->body != f->acc.data && f->body != f->own.data) {
        f->own.len = 0;
        rc = ngx_http_pw_buf_append(&f->own, f->body, f->body_len);
        if (rc != NGX_OK) {
            return rc;
        }
        f->body = f->own.data;
    }

    b = (f->body == f->acc.data && f->acc.data) ? &f->acc : &f->own;
    b->len = f->body_len;

    if (start > b->len) {
        start = b->len;
    }
    if (size > b->len - start) {
        size = b->len - start;
    }

    newlen = b->len - size + vlen;
    rc = ngx_http_pw_buf_reserve(b, newlen);
    if (rc != NGX_OK) {
        return rc;
    }

    ngx_memmove(b->data + start + vlen, b->data + start + size,
                b->len - start - size);
    if (vlen) {
        ngx_memcpy(b->data + start, value, vlen);
    }
    b->len = newlen;

    f->body = b->data;
    f->body_len = b->len;
    f->body_modified = 1;

    return NGX_OK;
}


/* ---- request context ---- */


NGX_PW_HOT static void
ngx_http_pw_free_streams(ngx_http_pw_ctx_t *ctx)
{
    ngx_uint_t           i;
    ngx_http_pw_fctx_t  *f;
    ngx_log_t           *log;

    if (ctx->freed) {
        return;
    }
    ctx->freed = 1;

    log = ctx->r->connection->log;

    if (ctx->resume.posted) {
        ngx_delete_posted_event(&ctx->resume);
    }

    if (ctx->hold.timer_set) {
        ngx_del_timer(&ctx->hold);
    }

    for (i = 0; i < ctx->nf; i++) {
        f = &ctx->f[i];

        if (f->stream) {
            /* on_done, on_log, on_delete (none when the VM failed) */
            ctx->in_call = 1;
            pw_stream_free(f->stream);
            ctx->in_call = 0;
            f->stream = NULL;
            (void) ngx_pw_instance_check(f->inst, log);
        }

        /* after the last callbacks: the calls they made end with the
         * request too, as Envoy cancels a context's calls with it */
        ngx_http_pw_callouts_cancel(f);

        if (f->ncallouts) {
            ngx_log_error(NGX_LOG_ALERT, log, 0,
                          "[wasm] %ui calls of a finished request left "
                          "uncancelled", f->ncallouts);
        }

        if (f->inst) {
            ngx_pw_instance_release(f->inst);
            f->inst = NULL;
        }

        ngx_http_pw_buf_release(&f->own);
        ngx_http_pw_buf_release(&f->acc);
    }

    ngx_http_pw_buf_release(&ctx->resp_body);
}


NGX_PW_HOT static void
ngx_http_pw_cleanup(void *data)
{
    ngx_http_pw_free_streams(data);
}


static ngx_http_pw_ctx_t *
ngx_http_pw_get_ctx(ngx_http_request_t *r)
{
    ngx_pool_cleanup_t  *cln;
    ngx_http_pw_ctx_t   *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_pw_module);
    if (ctx) {
        return ctx;
    }

    /* an internal redirect clears module contexts: the chain already runs
     * for this request, find it again through its cleanup */
    for (cln = r->pool->cleanup; cln; cln = cln->next) {
        if (cln->handler == ngx_http_pw_cleanup) {
            ctx = cln->data;
            ngx_http_set_ctx(r, ctx, ngx_http_pw_module);
            return ctx;
        }
    }

    return NULL;
}


/* Apply f's failure policy: the filter is out of this request. Returns
 * NGX_HTTP_PW_OK (fail open: go on) or NGX_HTTP_PW_FAIL. */
static NGX_HTTP_PW_COLD ngx_uint_t
ngx_http_pw_fail(ngx_http_pw_fctx_t *f)
{
    ngx_http_pw_ctx_t  *ctx = f->ctx;

    f->dead = 1;

    if (f->stream) {
        ctx->in_call = 1;
        pw_stream_free(f->stream);
        ctx->in_call = 0;
        f->stream = NULL;
    }

    if (f->filter->fail_open) {
        return NGX_HTTP_PW_OK;
    }

    if (ctx->fail_status == 0) {
        ctx->fail_status = f->filter->error_status;
    }

    return NGX_HTTP_PW_FAIL;
}


NGX_PW_HOT static ngx_http_pw_ctx_t *
ngx_http_pw_create_ctx(ngx_http_request_t *r, ngx_http_pw_loc_conf_t *plcf)
{
    ngx_uint_t             i, j, per_request;
    ngx_pw_module_t       *m;
    ngx_pool_cleanup_t    *cln;
    ngx_http_pw_ctx_t     *ctx;
    ngx_http_pw_fctx_t    *f;
    ngx_http_pw_filter_t  *filters;
    ngx_pw_plugin_conf_t  *pc;

    /* the context and its filters' in one allocation */
    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_pw_ctx_t)
                               + plcf->filters->nelts
                                 * sizeof(ngx_http_pw_fctx_t));
    if (ctx == NULL) {
        return NULL;
    }

    ctx->nf = plcf->filters->nelts;
    ctx->f = (ngx_http_pw_fctx_t *) (ctx + 1);

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NULL;
    }
    cln->handler = ngx_http_pw_cleanup;
    cln->data = ctx;

    ctx->r = r;
    ctx->resume.handler = ngx_http_pw_resume_handler;
    ctx->resume.data = ctx;
    ctx->resume.log = r->connection->log;
    ctx->hold.handler = ngx_http_pw_hold_handler;
    ctx->hold.data = ctx;
    ctx->hold.log = r->connection->log;
    ctx->lr_grpc_status = -1;

    ngx_http_set_ctx(r, ctx, ngx_http_pw_module);

    per_request = (plcf->isolation == NGX_HTTP_PW_ISOLATION_STREAM);
    filters = plcf->filters->elts;

    for (i = 0; i < ctx->nf; i++) {
        f = &ctx->f[i];
        f->ctx = ctx;
        f->filter = &filters[i];
        f->body_type = (ngx_uint_t) -1;
        pc = f->filter->plugin;
        m = pc->module;

        for (j = 0; per_request && j < i; j++) {
            if (ctx->f[j].inst && ctx->f[j].inst->module == m) {
                f->inst = ctx->f[j].inst;
                f->inst->refs++;
                break;
            }
        }

        if (f->inst == NULL) {
            f->inst = ngx_pw_instance_acquire(m, per_request,
                                              r->connection->log);
        }

        if (f->inst == NULL) {
            (void) ngx_http_pw_fail(f);
            continue;
        }

        f->root = &f->inst->roots[pc->index];

        if (f->inst->failed || f->root->plugin == NULL) {
            ngx_pw_failure_log(m, r->connection->log, "request refused",
                               "the plugin is not running");
            (void) ngx_http_pw_fail(f);
            continue;
        }

        if (pw_stream_new(f->root->plugin, PW_STREAM_HTTP, f, &f->stream)
            != PW_OK)
        {
            f->stream = NULL;
            (void) ngx_http_pw_fail(f);
        }
    }

    return ctx;
}


/* Whether a live filter's plugin has one of the callbacks `hooks`
 * (PW_HOOK_*): those of a body and its trailers, say. */
NGX_PW_HOT static ngx_uint_t
ngx_http_pw_any_hook(ngx_http_pw_ctx_t *ctx, unsigned hooks)
{
    ngx_uint_t           i;
    ngx_http_pw_fctx_t  *f;

    for (i = 0; i < ctx->nf; i++) {
        f = &ctx->f[i];
        if (!f->dead && f->stream != NULL
            && (pw_stream_hooks(f->stream) & hooks))
        {
            return 1;
        }
    }

    return 0;
}


NGX_PW_HOT static ngx_uint_t
ngx_http_pw_live(ngx_http_pw_ctx_t *ctx)
{
    ngx_uint_t  i;

    for (i = 0; i < ctx->nf; i++) {
        if (!ctx->f[i].dead) {
            return 1;
        }
    }

    return 0;
}


/* After a call into f's plugin: failures become the policy's result,
 * requests of the plugin (local response, close) come next. */
NGX_PW_HOT static ngx_uint_t
ngx_http_pw_after_call(ngx_http_pw_fctx_t *f, int rc)
{
    ngx_http_pw_ctx_t  *ctx = f->ctx;

    ctx->in_call = 0;

    if (rc != PW_OK || ngx_pw_instance_check(f->inst,
                                             ctx->r->connection->log))
    {
        (void) ngx_pw_instance_check(f->inst, ctx->r->connection->log);
        return ngx_http_pw_fail(f);
    }

    if (ctx->close_pending) {
        return NGX_HTTP_PW_CLOSE;
    }

    if (ctx->lr_pending && !ctx->lr_sent) {
        return NGX_HTTP_PW_LOCAL;
    }

    return NGX_HTTP_PW_OK;
}


/* A paused request has no timer of its own: during a graceful shutdown
 * nginx would take the worker for idle and close it. This one is not
 * cancelable, so the worker drains paused requests too. */
static void
ngx_http_pw_hold_handler(ngx_event_t *ev)
{
    ngx_http_pw_ctx_t  *ctx = ev->data;

    if (ctx->waiting != NGX_HTTP_PW_WAIT_NONE && !ctx->freed) {
        ngx_add_timer(ev, 60000);
    }
}


static NGX_HTTP_PW_COLD void
ngx_http_pw_wait(ngx_http_pw_ctx_t *ctx, ngx_uint_t phase)
{
    ctx->waiting = phase;

    if (!ctx->hold.timer_set) {
        ngx_add_timer(&ctx->hold, 60000);
    }
}


/* While a plugin holds the request, a client that goes away must end it.
 * With edge-triggered events a close that arrived with the request
 * itself raises no new event: look once now. */
static NGX_HTTP_PW_COLD void
ngx_http_pw_watch_client(ngx_http_request_t *r)
{
    ngx_event_t  *rev;

    r->read_event_handler = ngx_http_test_reading;

    rev = r->connection->read;
    if (rev->ready && !rev->posted) {
        ngx_post_event(rev, &ngx_posted_events);
    }
}


void
ngx_http_pw_post_resume(ngx_http_pw_ctx_t *ctx)
{
    if (ctx->in_call || ctx->freed || ctx->resume.posted) {
        return;
    }

    ngx_post_event(&ctx->resume, &ngx_posted_events);
}


NGX_PW_HOT static ngx_uint_t
ngx_http_pw_has_body(ngx_http_request_t *r)
{
    return r->headers_in.content_length_n > 0 || r->headers_in.chunked;
}


/* ---- bodies ---- */


static ngx_uint_t
ngx_http_pw_step(ngx_http_pw_ctx_t *ctx, ngx_uint_t response, ngx_uint_t k)
{
    return response ? ctx->nf - 1 - k : k;
}


/*
 * Run the body callbacks of the chain from step k on data (the request
 * chain in order, the response chain in reverse). On NGX_HTTP_PW_OK, *out
 * and *outlen are what leaves the chain (valid until the next run) and
 * *same says it is the input unchanged. On NGX_HTTP_PW_PAUSED the pausing
 * filter holds the data in its acc buffer; ctx->next is the step after it.
 */
static ngx_uint_t
ngx_http_pw_run_body(ngx_http_pw_ctx_t *ctx, ngx_uint_t response,
    ngx_uint_t k, u_char *data, size_t len, ngx_uint_t eos, u_char **out,
    size_t *outlen, ngx_uint_t *same)
{
    int                  rc;
    ngx_int_t            brc;
    ngx_uint_t           res, i;
    pw_action_t          action;
    ngx_http_pw_fctx_t  *f;

    *same = 1;

    for ( /* void */ ; k < ctx->nf; k++) {
        i = ngx_http_pw_step(ctx, response, k);
        f = &ctx->f[i];
        if (f->dead) {
            continue;
        }

        if (ctx->pre_body) {
            /* it ran on this data already, f->body is what it left
             * (ngx_http_pw_response_first) */
            ctx->pre_body = 0;
            action = ctx->pre_action;

        } else {
            if (f->acc.len) {
                /* it buffers: it sees everything since it paused */
                brc = ngx_http_pw_buf_append(&f->acc, data, len);
                if (brc != NGX_OK) {
                    goto too_big;
                }
                f->body = f->acc.data;
                f->body_len = f->acc.len;
                *same = 0;

            } else {
                f->body = data;
                f->body_len = len;
            }

            f->body_type = response ? PW_BUFFER_HTTP_RESPONSE_BODY
                                    : PW_BUFFER_HTTP_REQUEST_BODY;
            f->body_modified = 0;

            ctx->in_call = 1;
            ctx->resume_pending = 0;
            action = PW_ACTION_CONTINUE;
            rc = response
                 ? pw_http_response_body(f->stream, (uint32_t) f->body_len,
                                         eos, &action)
                 : pw_http_request_body(f->stream, (uint32_t) f->body_len,
                                        eos, &action);
            res = ngx_http_pw_after_call(f, rc);
            f->body_type = (ngx_uint_t) -1;

            if (res != NGX_HTTP_PW_OK) {
                return res;
            }
        }

        if (f->dead) {
            continue;                       /* failed open: data goes on */
        }

        if (f->body_modified) {
            *same = 0;
        }

        if (action != PW_ACTION_CONTINUE && !ctx->resume_pending) {
            if (f->body != f->acc.data || f->acc.data == NULL) {
                f->acc.len = 0;
                brc = ngx_http_pw_buf_append(&f->acc, f->body, f->body_len);
                if (brc != NGX_OK) {
                    goto too_big;
                }
            } else {
                f->acc.len = f->body_len;
            }

            if (f->acc.len == 0) {
                /* an empty buffer still marks "buffering" */
                brc = ngx_http_pw_buf_reserve(&f->acc, 1);
                if (brc != NGX_OK) {
                    goto too_big;
                }
                f->acc.data[0] = '\0';
            }

            ctx->next = k + 1;
            return NGX_HTTP_PW_PAUSED;
        }

        data = f->body;
        len = f->body_len;
    }

    *out = data;
    *outlen = len;

    return NGX_HTTP_PW_OK;

too_big:

    ngx_log_error(NGX_LOG_ERR, ctx->r->connection->log, 0,
                  "[wasm] %V: %s body buffered by the plugin exceeds %uz "
                  "bytes", &f->filter->plugin->module->name,
                  response ? "response" : "request",
                  (size_t) PW_MAX_BUFFER_BYTES);

    return ngx_http_pw_fail(f);
}


/* The paused filter's data goes on to the rest of the chain: clear the
 * buffers that the output no longer needs once it has been copied. */
static void
ngx_http_pw_reset_acc(ngx_http_pw_ctx_t *ctx)
{
    ngx_uint_t  i;

    for (i = 0; i < ctx->nf; i++) {
        ctx->f[i].acc.len = 0;
        ctx->f[i].body = NULL;
        ctx->f[i].body_len = 0;
    }
}


/* Where a body chunk is gathered when it is not one memory buffer: one
 * per worker, used within one filter call (its data is copied before the
 * call returns), kept between calls unless it grew big. */
static ngx_http_pw_buf_t  ngx_http_pw_scratch;


static void
ngx_http_pw_scratch_release(void)
{
    if (ngx_http_pw_scratch.cap > 256 * 1024) {
        ngx_http_pw_buf_release(&ngx_http_pw_scratch);
    }
    ngx_http_pw_scratch.len = 0;
}


/* Bytes of a chain: a view of a single memory buffer, else a copy into
 * scratch (files read). */
static ngx_int_t
ngx_http_pw_chain_bytes(ngx_http_request_t *r, ngx_chain_t *in,
    ngx_http_pw_buf_t *scratch, u_char **data, size_t *len,
    ngx_uint_t *eos)
{
    size_t        n, size;
    ssize_t       got;
    ngx_buf_t    *b, *one;
    ngx_chain_t  *cl;
    ngx_uint_t    count;

    *eos = 0;
    one = NULL;
    count = 0;
    size = 0;

    for (cl = in; cl; cl = cl->next) {
        b = cl->buf;
        if (b->last_buf || (b->last_in_chain && r == r->main)) {
            *eos = 1;
        }
        n = ngx_buf_size(b);
        if (n) {
            one = b;
            count++;
            size += n;
        }
    }

    if (count == 0) {
        *data = (u_char *) "";
        *len = 0;
        return NGX_OK;
    }

    if (count == 1 && ngx_buf_in_memory(one)) {
        *data = one->pos;
        *len = one->last - one->pos;
        return NGX_OK;
    }

    scratch->len = 0;
    if (ngx_http_pw_buf_reserve(scratch, size) != NGX_OK) {
        return NGX_ERROR;
    }

    for (cl = in; cl; cl = cl->next) {
        b = cl->buf;
        n = ngx_buf_size(b);
        if (n == 0) {
            continue;
        }

        if (ngx_buf_in_memory(b)) {
            ngx_memcpy(scratch->data + scratch->len, b->pos, n);

        } else {
            got = ngx_read_file(b->file, scratch->data + scratch->len, n,
                                b->file_pos);
            if (got != (ssize_t) n) {
                return NGX_ERROR;
            }
        }

        scratch->len += n;
    }

    *data = scratch->data;
    *len = scratch->len;

    return NGX_OK;
}


static void
ngx_http_pw_consume(ngx_chain_t *in)
{
    for ( /* void */ ; in; in = in->next) {
        if (ngx_buf_in_memory(in->buf)) {
            in->buf->pos = in->buf->last;
        }
        if (in->buf->in_file) {
            in->buf->file_pos = in->buf->file_last;
        }
    }
}


/* A chain link with a pool copy of data. */
static ngx_chain_t *
ngx_http_pw_chain_copy(ngx_http_request_t *r, const u_char *data,
    size_t len, ngx_uint_t eos)
{
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    cl = ngx_alloc_chain_link(r->pool);
    if (cl == NULL) {
        return NULL;
    }

    if (len) {
        b = ngx_create_temp_buf(r->pool, len);
        if (b == NULL) {
            return NULL;
        }
        b->last = ngx_cpymem(b->pos, data, len);

    } else {
        b = ngx_calloc_buf(r->pool);
        if (b == NULL) {
            return NULL;
        }
        if (!eos) {
            b->sync = 1;
        }
    }

    if (eos) {
        if (r == r->main) {
            b->last_buf = 1;
        } else {
            b->last_in_chain = 1;
        }
    }

    cl->buf = b;
    cl->next = NULL;

    return cl;
}


/* ---- request body ---- */


static ngx_int_t
ngx_http_pw_request_body_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    u_char              *data, *out;
    size_t               len, outlen;
    ngx_uint_t           eos, res, same;
    ngx_chain_t         *cl;
    ngx_http_pw_ctx_t   *ctx;

    if (r != r->main) {
        return ngx_http_next_request_body_filter(r, in);
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_pw_module);
    if (ctx == NULL || ctx->req_state != NGX_HTTP_PW_REQ_BODY) {
        return ngx_http_next_request_body_filter(r, in);
    }

    if (ngx_http_pw_chain_bytes(r, in, &ngx_http_pw_scratch, &data, &len,
                                &eos)
        != NGX_OK)
    {
        ngx_http_pw_scratch_release();
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ctx->lr_pending || ctx->fail_status || ctx->close_pending
        || ctx->req_body_eos_held || (len == 0 && !eos))
    {
        /* the answer is decided (or nothing to see): swallow the body */
        ngx_http_pw_scratch_release();
        goto swallow;
    }

    res = ngx_http_pw_run_body(ctx, 0, 0, data, len, eos, &out, &outlen,
                               &same);

    if (res == NGX_HTTP_PW_OK) {
        if (same) {
            ngx_http_pw_scratch_release();
            ngx_http_pw_reset_acc(ctx);
            return ngx_http_next_request_body_filter(r, in);
        }

        cl = ngx_http_pw_chain_copy(r, out, outlen, eos);
        ngx_http_pw_scratch_release();
        ngx_http_pw_reset_acc(ctx);
        if (cl == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        /* nginx reuses its read buffer once these are consumed */
        ngx_http_pw_consume(in);

        return ngx_http_next_request_body_filter(r, cl);
    }

    ngx_http_pw_scratch_release();

    if (res == NGX_HTTP_PW_PAUSED && eos) {
        ctx->req_body_eos_held = 1;
        ngx_http_pw_wait(ctx, NGX_HTTP_PW_WAIT_REQ_BODY);
    }

swallow:

    ngx_http_pw_consume(in);

    /* nginx's reading completes on the last buffer: pass an empty one */
    if (!eos) {
        return NGX_OK;
    }

    cl = ngx_http_pw_chain_copy(r, NULL, 0, 1);
    if (cl == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_next_request_body_filter(r, cl);
}


static void
ngx_http_pw_fix_request_length(ngx_http_request_t *r)
{
    off_t         total;
    u_char       *p;
    ngx_chain_t  *cl;

    if (r->request_body == NULL) {
        return;
    }

    total = 0;
    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        total += ngx_buf_size(cl->buf);
    }

    r->headers_in.content_length_n = total;

    if (r->headers_in.content_length) {
        p = ngx_pnalloc(r->pool, NGX_OFF_T_LEN);
        if (p == NULL) {
            return;
        }
        r->headers_in.content_length->value.data = p;
        r->headers_in.content_length->value.len =
                                           ngx_sprintf(p, "%O", total) - p;
    }
}


/* The request phases are over for the chain: answer locally, fail, or let
 * nginx go on with the next phase. */
static void
ngx_http_pw_request_done(ngx_http_request_t *r, ngx_http_pw_ctx_t *ctx)
{
    ctx->req_state = NGX_HTTP_PW_REQ_DONE;

    if (ctx->close_pending) {
        ngx_http_finalize_request(r, NGX_ERROR);
        return;
    }

    if (ctx->lr_pending && !ctx->lr_sent) {
        ngx_http_finalize_request(r, ngx_http_pw_send_local(r, ctx));
        return;
    }

    if (ctx->fail_status) {
        ngx_http_finalize_request(r, ctx->fail_status);
        return;
    }

    ngx_http_pw_fix_request_length(r);

    r->write_event_handler = ngx_http_core_run_phases;
    ngx_http_core_run_phases(r);
}


static void
ngx_http_pw_request_body_read(ngx_http_request_t *r)
{
    ngx_http_pw_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_pw_module);
    if (ctx == NULL) {
        return;
    }

    ctx->body_read = 1;
    ngx_http_pw_watch_client(r);

    if (ctx->waiting == NGX_HTTP_PW_WAIT_REQ_BODY) {
        /* paused at the end of the body: proxy_continue_stream resumes */
        r->write_event_handler = ngx_http_request_empty_handler;
        return;
    }

    ngx_http_pw_request_done(r, ctx);
}


/* Resume the request body after a pause at its end. */
static void
ngx_http_pw_resume_request_body(ngx_http_request_t *r,
    ngx_http_pw_ctx_t *ctx)
{
    u_char              *out;
    size_t               outlen;
    ngx_uint_t           res, same, k, i;
    ngx_chain_t         *cl, **ll;
    ngx_http_pw_fctx_t  *f;

    k = ctx->next;
    i = k - 1;
    f = &ctx->f[i];

    if (ctx->lr_pending || ctx->close_pending || f->dead) {
        ctx->waiting = NGX_HTTP_PW_WAIT_NONE;
        ngx_http_pw_request_done(r, ctx);
        return;
    }

    ctx->waiting = NGX_HTTP_PW_WAIT_NONE;

    res = ngx_http_pw_run_body(ctx, 0, k, f->acc.data, f->acc.len, 1, &out,
                               &outlen, &same);

    if (res == NGX_HTTP_PW_PAUSED) {
        ngx_http_pw_wait(ctx, NGX_HTTP_PW_WAIT_REQ_BODY);
        return;
    }

    if (res == NGX_HTTP_PW_OK && outlen) {
        cl = ngx_http_pw_chain_copy(r, out, outlen, 0);
        if (cl == NULL) {
            ngx_http_pw_reset_acc(ctx);
            ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            return;
        }

        if (r->request_body == NULL) {
            r->request_body = ngx_pcalloc(r->pool,
                                          sizeof(ngx_http_request_body_t));
            if (r->request_body == NULL) {
                ngx_http_finalize_request(r,
                                          NGX_HTTP_INTERNAL_SERVER_ERROR);
                return;
            }
        }

        /* the body nginx saved lacks the held part: append it, dropping
         * the empty last buffer that ended nginx's reading */
        ll = &r->request_body->bufs;
        while (*ll) {
            if (ngx_buf_size((*ll)->buf) == 0) {
                *ll = (*ll)->next;
                continue;
            }
            (*ll)->buf->last_buf = 0;
            ll = &(*ll)->next;
        }
        cl->buf->last_buf = 1;
        *ll = cl;
    }

    ngx_http_pw_reset_acc(ctx);
    ngx_http_pw_request_done(r, ctx);
}


/* ---- the rewrite phase ---- */


NGX_PW_HOT static ngx_int_t
ngx_http_pw_rewrite_handler(ngx_http_request_t *r)
{
    ngx_int_t                rc;
    ngx_uint_t               res;
    ngx_http_pw_ctx_t       *ctx;
    ngx_http_pw_loc_conf_t  *plcf;

    if (r != r->main) {
        return NGX_DECLINED;
    }

    ctx = ngx_http_pw_get_ctx(r);

    if (ctx == NULL) {
        plcf = ngx_http_get_module_loc_conf(r, ngx_http_pw_module);
        if (plcf->filters == NULL || plcf->filters->nelts == 0) {
            return NGX_DECLINED;
        }

        ctx = ngx_http_pw_create_ctx(r, plcf);
        if (ctx == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    if (ctx->req_state == NGX_HTTP_PW_REQ_DONE) {
        return NGX_DECLINED;
    }

    if (ctx->req_state == NGX_HTTP_PW_REQ_BODY) {
        return NGX_DONE;
    }

    if (ctx->waiting == NGX_HTTP_PW_WAIT_REQ_HEADERS) {
        ctx->waiting = NGX_HTTP_PW_WAIT_NONE;
        r->read_event_handler = ngx_http_block_reading;
    }

    ctx->req_state = NGX_HTTP_PW_REQ_HEADERS;

    if (ctx->fail_status) {
        /* a filter could not even start */
        ctx->req_state = NGX_HTTP_PW_REQ_DONE;
        return ctx->fail_status;
    }

    res = (ctx->lr_pending && !ctx->lr_sent) ? NGX_HTTP_PW_LOCAL
          : ctx->close_pending ? NGX_HTTP_PW_CLOSE
          : ngx_http_pw_run_headers(ctx, 0);

    switch (res) {

    case NGX_HTTP_PW_PAUSED:
        ngx_http_pw_wait(ctx, NGX_HTTP_PW_WAIT_REQ_HEADERS);
        /* notice a client that goes away while the plugin holds it */
        ngx_http_pw_watch_client(r);
        r->write_event_handler = ngx_http_request_empty_handler;
        return NGX_DONE;

    case NGX_HTTP_PW_LOCAL:
        ctx->req_state = NGX_HTTP_PW_REQ_DONE;
        return ngx_http_pw_send_local(r, ctx);

    case NGX_HTTP_PW_FAIL:
        ctx->req_state = NGX_HTTP_PW_REQ_DONE;
        return ctx->fail_status;

    case NGX_HTTP_PW_CLOSE:
    case NGX_HTTP_PW_ERROR:
        ctx->req_state = NGX_HTTP_PW_REQ_DONE;
        return NGX_ERROR;
    }

    /* no live filter reads the body: nginx reads it as configured (and
     * streams it upstream with proxy_request_buffering off) */
    if (!ngx_http_pw_has_body(r)
        || !ngx_http_pw_any_hook(ctx, PW_HOOK_REQUEST_BODY
                                      | PW_HOOK_REQUEST_TRAILERS))
    {
        ctx->req_state = NGX_HTTP_PW_REQ_DONE;
        return NGX_DECLINED;
    }

    ctx->req_state = NGX_HTTP_PW_REQ_BODY;

    rc = ngx_http_read_client_request_body(r, ngx_http_pw_request_body_read);
    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    ngx_http_finalize_request(r, NGX_DONE);

    return NGX_DONE;
}


/* ---- local responses ---- */


/* Make r's response the local one; headers not sent yet. */
static ngx_int_t
ngx_http_pw_local_headers(ngx_http_request_t *r, ngx_http_pw_ctx_t *ctx)
{
    u_char        *p;
    ngx_uint_t     i, n, has_ct;
    pw_pair_t     *pairs;
    pw_pairs_t     set;
    ngx_keyval_t  *kv;

    n = ctx->lr_headers ? ctx->lr_headers->nelts : 0;

    pairs = ngx_pnalloc(r->pool, (n + 4) * sizeof(pw_pair_t));
    p = ngx_pnalloc(r->pool, NGX_INT_T_LEN * 2);
    if (pairs == NULL || p == NULL) {
        return NGX_ERROR;
    }

    set.pairs = pairs;
    set.n = 0;

    pairs[set.n].key = PW_STR(":status");
    pairs[set.n].value.data = (const char *) p;
    pairs[set.n].value.len = ngx_sprintf(p, "%ui", ctx->lr_status) - p;
    p += pairs[set.n].value.len;
    set.n++;

    has_ct = 0;
    kv = ctx->lr_headers ? ctx->lr_headers->elts : NULL;
    for (i = 0; i < n; i++) {
        if (kv[i].key.len == 12
            && ngx_strncasecmp(kv[i].key.data, (u_char *) "content-type",
                               12) == 0)
        {
            has_ct = 1;
        }
        if (kv[i].key.len == 14
            && ngx_strncasecmp(kv[i].key.data, (u_char *) "content-length",
                               14) == 0)
        {
            continue;                       /* the body decides */
        }
        pairs[set.n].key.data = (const char *) kv[i].key.data;
        pairs[set.n].key.len = kv[i].key.len;
        pairs[set.n].value.data = (const char *) kv[i].value.data;
        pairs[set.n].value.len = kv[i].value.len;
        set.n++;
    }

    if (!has_ct && ctx->lr_body.len) {
        pairs[set.n].key = PW_STR("content-type");
        pairs[set.n].value = PW_STR("text/plain");
        set.n++;
    }

    if (ctx->lr_grpc_status >= 0) {
        pairs[set.n].key = PW_STR("grpc-status");
        pairs[set.n].value.data = (const char *) p;
        pairs[set.n].value.len = ngx_sprintf(p, "%i", ctx->lr_grpc_status)
                                 - p;
        set.n++;
    }

    if (ngx_http_pw_headers_set_pairs(r, 1, &set) != NGX_OK) {
        return NGX_ERROR;
    }

    r->headers_out.status = ctx->lr_status;
    r->headers_out.status_line.len = 0;
    r->headers_out.content_length_n = ctx->lr_body.len;
    ctx->code_details = ctx->lr_details;

    return NGX_OK;
}


static ngx_chain_t *
ngx_http_pw_local_body(ngx_http_request_t *r, ngx_http_pw_ctx_t *ctx)
{
    return ngx_http_pw_chain_copy(r, ctx->lr_body.data, ctx->lr_body.len, 1);
}


/* A local response from the request side: a content handler's work. */
static NGX_HTTP_PW_COLD ngx_int_t
ngx_http_pw_send_local(ngx_http_request_t *r, ngx_http_pw_ctx_t *ctx)
{
    ngx_int_t     rc;
    ngx_chain_t  *cl;

    ctx->lr_pending = 0;
    ctx->lr_sent = 1;
    ctx->req_state = NGX_HTTP_PW_REQ_DONE;

    if (r->request_body == NULL) {
        if (ngx_http_discard_request_body(r) != NGX_OK) {
            r->keepalive = 0;
        }
    }

    if (ngx_http_pw_local_headers(r, ctx) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (r->method == NGX_HTTP_HEAD || ctx->lr_body.len == 0) {
        r->header_only = (r->method == NGX_HTTP_HEAD);
    }

    rc = ngx_http_send_header(r);
    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    cl = ngx_http_pw_local_body(r, ctx);
    if (cl == NULL) {
        return NGX_ERROR;
    }

    return ngx_http_output_filter(r, cl);
}


/* ---- response headers ---- */


/* Run the headers callbacks of the chain from step ctx->next: the request
 * chain in order, the response chain in reverse. */
NGX_PW_HOT static ngx_uint_t
ngx_http_pw_run_headers(ngx_http_pw_ctx_t *ctx, ngx_uint_t response)
{
    int                  rc;
    unsigned             hook;
    ngx_uint_t           k, i, res, n, eos;
    pw_action_t          action;
    ngx_http_pw_fctx_t  *f;
    ngx_http_request_t  *r = ctx->r;

    eos = response ? (r->header_only || r->headers_out.content_length_n == 0)
                   : !ngx_http_pw_has_body(r);

    for (k = ctx->next; k < ctx->nf; k++) {
        i = ngx_http_pw_step(ctx, response, k);
        f = &ctx->f[i];
        if (f->dead) {
            continue;
        }

        hook = response ? PW_HOOK_RESPONSE_HEADERS : PW_HOOK_REQUEST_HEADERS;
        if (pw_stream_skips(f->stream, hook)) {
            continue;                       /* it would reach nothing */
        }

        /* the count walks the headers: not for a callback that is not
         * there (the call still starts the stream) */
        n = (pw_stream_hooks(f->stream) & hook)
            ? ngx_http_pw_headers_count(r, response) : 0;

        ctx->in_call = 1;
        ctx->resume_pending = 0;
        action = PW_ACTION_CONTINUE;
        rc = response
             ? pw_http_response_headers(f->stream, n, eos, &action)
             : pw_http_request_headers(f->stream, n, eos, &action);
        res = ngx_http_pw_after_call(f, rc);
        if (res != NGX_HTTP_PW_OK) {
            return res;
        }

        if (f->dead) {
            continue;                       /* failed open */
        }

        if (action != PW_ACTION_CONTINUE && !ctx->resume_pending) {
            ctx->next = k + 1;
            return NGX_HTTP_PW_PAUSED;
        }
    }

    ctx->next = 0;

    return NGX_HTTP_PW_OK;
}


/* Send the (local or error) response from the response side, headers not
 * sent yet; the upstream's body is then discarded. */
static NGX_HTTP_PW_COLD ngx_int_t
ngx_http_pw_replace_response(ngx_http_request_t *r, ngx_http_pw_ctx_t *ctx)
{
    ngx_int_t     rc;
    ngx_chain_t  *cl;

    ctx->lr_pending = 0;
    ctx->lr_sent = 1;
    ctx->resp_discard = 1;
    ctx->resp_headers_done = 1;

    if (ngx_http_pw_local_headers(r, ctx) != NGX_OK) {
        return NGX_ERROR;
    }

    rc = ngx_http_next_header_filter(r);
    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    cl = ngx_http_pw_local_body(r, ctx);
    if (cl == NULL) {
        return NGX_ERROR;
    }

    rc = ngx_http_next_body_filter(r, cl);

    return rc == NGX_ERROR ? NGX_ERROR : NGX_OK;
}


static NGX_HTTP_PW_COLD ngx_int_t
ngx_http_pw_fail_response(ngx_http_request_t *r, ngx_http_pw_ctx_t *ctx)
{
    ctx->lr_status = ctx->fail_status;
    ctx->lr_headers = NULL;
    ngx_str_null(&ctx->lr_body);
    ngx_str_set(&ctx->lr_details, "wasm_fail_closed");
    ctx->lr_grpc_status = -1;

    return ngx_http_pw_replace_response(r, ctx);
}


/* The response headers went through the chain: send them on. */
NGX_PW_HOT static ngx_int_t
ngx_http_pw_response_headers_out(ngx_http_request_t *r,
    ngx_http_pw_ctx_t *ctx)
{
    ctx->resp_headers_done = 1;

    if (r->header_only || !ngx_http_pw_live(ctx)) {
        return ngx_http_next_header_filter(r);
    }

    if (!ctx->resp_body_hooks) {
        /* no callback reads the body: it goes by as nginx made it */
        ctx->resp_done = 1;
        return ngx_http_next_header_filter(r);
    }

    /* byte ranges of a body that plugins change would be cut wrongly */
    ngx_http_clear_accept_ranges(r);

    ctx->resp_headers_deferred = 1;

    return NGX_OK;
}


/* A plugin paused at the response headers: hold them, and the body that
 * comes meanwhile, until it resumes. */
static NGX_HTTP_PW_COLD void
ngx_http_pw_hold_response_headers(ngx_http_pw_ctx_t *ctx)
{
    ctx->resp_headers_held = 1;
    ngx_http_pw_wait(ctx, NGX_HTTP_PW_WAIT_RESP_HEADERS);
    ctx->r->buffered |= NGX_HTTP_PW_BUFFERED;
}


NGX_PW_HOT static ngx_int_t
ngx_http_pw_header_filter(ngx_http_request_t *r)
{
    ngx_uint_t               res;
    ngx_http_pw_ctx_t       *ctx;
    ngx_http_pw_loc_conf_t  *plcf;

    if (r != r->main) {
        return ngx_http_next_header_filter(r);
    }

    ctx = ngx_http_pw_get_ctx(r);

    if (ctx == NULL) {
        plcf = ngx_http_get_module_loc_conf(r, ngx_http_pw_module);
        if (plcf->filters == NULL || plcf->filters->nelts == 0) {
            return ngx_http_next_header_filter(r);
        }

        ctx = ngx_http_pw_create_ctx(r, plcf);
        if (ctx == NULL) {
            return NGX_ERROR;
        }
        ctx->req_state = NGX_HTTP_PW_REQ_DONE;
    }

    if (ctx->resp_started || ctx->freed) {
        return ngx_http_next_header_filter(r);
    }

    ctx->resp_started = 1;
    ctx->next = 0;

    if (!ngx_http_pw_live(ctx)) {
        if (ctx->fail_status && !ctx->lr_sent
            && r->headers_out.status != ctx->fail_status)
        {
            return ngx_http_pw_fail_response(r, ctx);
        }
        return ngx_http_next_header_filter(r);
    }

    ctx->resp_body_hooks = ngx_http_pw_any_hook(ctx,
                                                PW_HOOK_RESPONSE_BODY
                                                | PW_HOOK_RESPONSE_TRAILERS);

    /* plugins see bytes: a small body is read here (and still goes out
     * with sendfile when unchanged), a big or unknown one is read in
     * pieces by nginx's copy filter */
    if (ctx->resp_body_hooks
        && (r->headers_out.content_length_n < 0
            || r->headers_out.content_length_n > 64 * 1024))
    {
        r->filter_need_in_memory = 1;
    }

    if (ctx->resp_body_hooks && ngx_http_pw_first_with_body(ctx)) {
        /*
         * on_response_headers runs with the first body data, in one entry
         * into the engine with on_response_body
         * (ngx_http_pw_response_first); should nginx go on waiting before
         * any comes, the resume event runs it alone, as after a pause.
         */
        ctx->resp_hdr_pending = 1;
        ctx->resp_headers_held = 1;
        ctx->waiting = NGX_HTTP_PW_WAIT_RESP_HEADERS;
        r->buffered |= NGX_HTTP_PW_BUFFERED;
        if (!ctx->resume.posted) {
            ngx_post_event(&ctx->resume, &ngx_posted_events);
        }
        return NGX_OK;
    }

    res = ngx_http_pw_run_headers(ctx, 1);

    switch (res) {

    case NGX_HTTP_PW_PAUSED:
        ngx_http_pw_hold_response_headers(ctx);
        return NGX_OK;

    case NGX_HTTP_PW_LOCAL:
        return ngx_http_pw_replace_response(r, ctx);

    case NGX_HTTP_PW_FAIL:
        return ngx_http_pw_fail_response(r, ctx);

    case NGX_HTTP_PW_CLOSE:
    case NGX_HTTP_PW_ERROR:
        return NGX_ERROR;
    }

    return ngx_http_pw_response_headers_out(r, ctx);
}


/* ---- response body ---- */


/*
 * The response headers wait for the first body data: when the whole body
 * came through the plugins at once its length is known and goes out as
 * Content-Length; otherwise the plugins may still change it and the body
 * goes out chunked.
 */
static ngx_int_t
ngx_http_pw_send_deferred_headers(ngx_http_request_t *r,
    ngx_http_pw_ctx_t *ctx, size_t len, ngx_uint_t eos)
{
    ctx->resp_headers_deferred = 0;

    ngx_http_clear_content_length(r);
    if (eos) {
        r->headers_out.content_length_n = len;
    }

    return ngx_http_next_header_filter(r);
}


/* proxy_on_response_trailers, when the response has trailers (added by
 * add_trailer, or from a gRPC upstream), before the end of the body goes
 * on. A pause there is not supported: the end of the body is sent. */
static ngx_uint_t
ngx_http_pw_run_trailers(ngx_http_pw_ctx_t *ctx)
{
    int                  rc;
    ngx_uint_t           k, i, res;
    pw_action_t          action;
    ngx_http_pw_fctx_t  *f;
    ngx_http_request_t  *r = ctx->r;

    for (k = 0; k < ctx->nf; k++) {
        i = ngx_http_pw_step(ctx, 1, k);
        f = &ctx->f[i];
        if (f->dead) {
            continue;
        }

        ctx->in_call = 1;
        action = PW_ACTION_CONTINUE;
        rc = pw_http_response_trailers(f->stream,
                                       ngx_http_pw_trailers_count(r),
                                       &action);
        res = ngx_http_pw_after_call(f, rc);
        if (res == NGX_HTTP_PW_FAIL || res == NGX_HTTP_PW_CLOSE) {
            return res;
        }
    }

    return NGX_HTTP_PW_OK;
}


/*
 * The response chain let a body chunk through (out, outlen; same: it is
 * `in` unchanged): trailers, the deferred headers, then the data go on.
 */
static ngx_int_t
ngx_http_pw_response_pass(ngx_http_request_t *r, ngx_http_pw_ctx_t *ctx,
    u_char *out, size_t outlen, ngx_uint_t same, ngx_uint_t eos,
    ngx_chain_t *in, ngx_uint_t flush)
{
    ngx_int_t     rc;
    ngx_uint_t    res;
    ngx_chain_t  *cl;

    if (eos && ngx_http_pw_trailers_count(r)) {
        res = ngx_http_pw_run_trailers(ctx);
        if (res == NGX_HTTP_PW_FAIL || res == NGX_HTTP_PW_CLOSE) {
            ngx_http_pw_consume(in);
            if (ctx->resp_headers_deferred) {
                ctx->resp_headers_deferred = 0;
                ngx_http_pw_reset_acc(ctx);
                return ngx_http_pw_fail_response(r, ctx);
            }
            return NGX_ERROR;
        }
    }

    if (ctx->resp_headers_deferred) {
        rc = ngx_http_pw_send_deferred_headers(r, ctx, outlen, eos);
        if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
            ngx_http_pw_reset_acc(ctx);
            ngx_http_pw_consume(in);
            return rc == NGX_ERROR ? NGX_ERROR : NGX_OK;
        }
    }

    if (same && in) {
        ngx_http_pw_reset_acc(ctx);
        return ngx_http_next_body_filter(r, in);
    }

    cl = ngx_http_pw_chain_copy(r, out, outlen, eos);
    ngx_http_pw_reset_acc(ctx);
    if (cl == NULL) {
        return NGX_ERROR;
    }
    if (flush) {
        cl->buf->flush = 1;
    }
    ngx_http_pw_consume(in);
    if (eos) {
        ctx->resp_done = 1;
        r->buffered &= ~NGX_HTTP_PW_BUFFERED;
    }

    return ngx_http_next_body_filter(r, cl);
}


static ngx_int_t
ngx_http_pw_response_run(ngx_http_request_t *r, ngx_http_pw_ctx_t *ctx,
    ngx_uint_t k, u_char *data, size_t len, ngx_uint_t eos, ngx_chain_t *in,
    ngx_uint_t flush)
{
    u_char      *out;
    size_t       outlen;
    ngx_uint_t   res, same;

    res = ngx_http_pw_run_body(ctx, 1, k, data, len, eos, &out, &outlen,
                               &same);

    switch (res) {

    case NGX_HTTP_PW_OK:
        return ngx_http_pw_response_pass(r, ctx, out, outlen, same, eos, in,
                                         flush);

    case NGX_HTTP_PW_PAUSED:
        ngx_http_pw_consume(in);
        if (eos) {
            ngx_http_pw_wait(ctx, NGX_HTTP_PW_WAIT_RESP_BODY);
            ctx->resp_next = ctx->next;
            r->buffered |= NGX_HTTP_PW_BUFFERED;
        }
        return NGX_OK;

    case NGX_HTTP_PW_LOCAL:
        if (ctx->resp_headers_deferred) {
            ctx->resp_headers_deferred = 0;
            ngx_http_pw_reset_acc(ctx);
            ngx_http_pw_consume(in);
            return ngx_http_pw_replace_response(r, ctx);
        }

        /* too late to answer locally: the headers are out */
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "[wasm] local response asked after the response "
                      "headers were sent: ignored");
        ctx->lr_pending = 0;
        ctx->lr_sent = 1;
        ngx_http_pw_reset_acc(ctx);
        return ngx_http_next_body_filter(r, in);

    default:
        ngx_http_pw_consume(in);

        if (res == NGX_HTTP_PW_FAIL && ctx->resp_headers_deferred) {
            ctx->resp_headers_deferred = 0;
            ngx_http_pw_reset_acc(ctx);
            return ngx_http_pw_fail_response(r, ctx);
        }

        /* failed closed, or close_stream, mid-body: the response cannot
         * be fixed, cut it */
        return NGX_ERROR;
    }
}


/*
 * Whether on_response_headers can wait for the first body data and run
 * with on_response_body in one entry into the engine: one live filter
 * (in a chain, every filter's headers callback comes before any body
 * callback), a body to come, and the plugin's batch for the pair.
 */
static ngx_uint_t
ngx_http_pw_first_with_body(ngx_http_pw_ctx_t *ctx)
{
    ngx_http_pw_fctx_t  *f = &ctx->f[0];
    ngx_http_request_t  *r = ctx->r;

    return ctx->nf == 1 && !f->dead && f->stream != NULL
           && !r->header_only && r->headers_out.content_length_n != 0
           && !ctx->lr_pending && !ctx->close_pending
           && pw_stream_batches_response(f->stream);
}


/*
 * Between on_response_headers and on_response_body of one entry (inside
 * the engine call: host state only): go on if the plugin asked for no
 * local response or close and did not fail; do what the module does
 * between the two calls otherwise (the headers go on, deferred to the
 * body; the body becomes readable).
 */
static int
ngx_http_pw_first_go(void *data)
{
    ngx_http_pw_fctx_t  *f = data;
    ngx_http_pw_ctx_t   *ctx = f->ctx;

    if (ctx->close_pending || (ctx->lr_pending && !ctx->lr_sent)
        || f->dead || f->inst->failed)
    {
        return 0;
    }

    ngx_http_clear_accept_ranges(ctx->r);
    f->body_type = PW_BUFFER_HTTP_RESPONSE_BODY;
    ctx->resume_pending = 0;

    return 1;
}


/*
 * The first response body data with on_response_headers pending: run it
 * and on_response_body in one entry, then go on as the header filter and
 * the body filter would have. NGX_DECLINED: the headers callback paused,
 * the caller holds the data.
 */
static ngx_int_t
ngx_http_pw_response_first(ngx_http_request_t *r, ngx_http_pw_ctx_t *ctx,
    u_char *data, size_t len, ngx_uint_t eos, ngx_chain_t *in,
    ngx_uint_t flush)
{
    int                  rc, ran;
    ngx_int_t            nrc;
    ngx_uint_t           res;
    pw_action_t          ha, ba;
    ngx_http_pw_fctx_t  *f = &ctx->f[0];

    ctx->resp_hdr_pending = 0;
    ctx->resp_headers_held = 0;
    ctx->waiting = NGX_HTTP_PW_WAIT_NONE;
    r->buffered &= ~NGX_HTTP_PW_BUFFERED;
    if (ctx->resume.posted) {
        ngx_delete_posted_event(&ctx->resume);
    }

    f->body = data;
    f->body_len = len;
    f->body_type = (ngx_uint_t) -1;     /* not before on_response_body */
    f->body_modified = 0;

    ctx->in_call = 1;
    ctx->resume_pending = 0;
    ha = PW_ACTION_CONTINUE;
    ba = PW_ACTION_CONTINUE;
    ran = 0;
    rc = pw_http_response_headers_body(f->stream,
                                       ngx_http_pw_headers_count(r, 1), 0,
                                       (uint32_t) len, eos,
                                       ngx_http_pw_first_go, f, &ha, &ba,
                                       &ran);
    f->body_type = (ngx_uint_t) -1;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "wasm: response headers with %uz body bytes in one "
                   "entry, body callback %s", len, ran ? "ran" : "not run");

    if (rc == PW_ENOTFOUND) {
        ctx->in_call = 0;
        res = ngx_http_pw_run_headers(ctx, 1);

    } else {
        res = ngx_http_pw_after_call(f, rc);

        if (res == NGX_HTTP_PW_OK && !ran && !f->dead
            && ha != PW_ACTION_CONTINUE && !ctx->resume_pending)
        {
            ctx->next = 1;
            res = NGX_HTTP_PW_PAUSED;
        }
    }

    switch (res) {

    case NGX_HTTP_PW_PAUSED:
        ngx_http_pw_hold_response_headers(ctx);
        return NGX_DECLINED;

    case NGX_HTTP_PW_LOCAL:
        ngx_http_pw_reset_acc(ctx);
        ngx_http_pw_consume(in);
        return ngx_http_pw_replace_response(r, ctx);

    case NGX_HTTP_PW_FAIL:
        ngx_http_pw_reset_acc(ctx);
        ngx_http_pw_consume(in);
        return ngx_http_pw_fail_response(r, ctx);

    case NGX_HTTP_PW_OK:
        break;

    default:
        ngx_http_pw_consume(in);
        return NGX_ERROR;
    }

    ctx->next = 0;

    nrc = ngx_http_pw_response_headers_out(r, ctx);
    if (nrc == NGX_ERROR || nrc > NGX_OK || r->header_only) {
        ngx_http_pw_reset_acc(ctx);
        ngx_http_pw_consume(in);
        return nrc == NGX_ERROR ? NGX_ERROR : NGX_OK;
    }

    if (!ctx->resp_headers_deferred) {
        /* failed open: the headers went out, the body follows as is */
        ngx_http_pw_reset_acc(ctx);
        return ngx_http_next_body_filter(r, in);
    }

    if (ran && !f->dead) {
        if (ba == PW_ACTION_CONTINUE && !f->body_modified) {
            /* what ngx_http_pw_run_body would find for the one filter */
            return ngx_http_pw_response_pass(r, ctx, data, len, 1, eos, in,
                                             flush);
        }
        ctx->pre_body = 1;
        ctx->pre_action = ba;
    }

    return ngx_http_pw_response_run(r, ctx, 0, data, len, eos, in, flush);
}


/*
 * The body filter. Most responses pass through it untouched (no plugin
 * of the chain reads bodies: resp_done from the header filter), so that
 * test comes first, in a frame of its own, before the rest's.
 */
NGX_PW_HOT static ngx_int_t
ngx_http_pw_body_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    ngx_http_pw_ctx_t  *ctx;

    if (r != r->main) {
        return ngx_http_next_body_filter(r, in);
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_pw_module);
    if (ctx == NULL || !ctx->resp_started
        || (ctx->resp_done && !ctx->resp_discard))
    {
        return ngx_http_next_body_filter(r, in);
    }

    return ngx_http_pw_body_run(r, ctx, in);
}


static NGX_HTTP_PW_APART ngx_int_t
ngx_http_pw_body_run(ngx_http_request_t *r, ngx_http_pw_ctx_t *ctx,
    ngx_chain_t *in)
{
    u_char             *data;
    size_t              len;
    ngx_int_t           rc;
    ngx_uint_t          eos, flush;
    ngx_chain_t        *cl;

    if (ctx->resp_discard) {
        ngx_http_pw_consume(in);
        return NGX_OK;
    }

    /* (resp_done went through in ngx_http_pw_body_filter) */
    if (!ctx->resp_headers_held && !ngx_http_pw_live(ctx)
        && ctx->waiting == NGX_HTTP_PW_WAIT_NONE
        && !ctx->resp_headers_deferred)
    {
        return ngx_http_next_body_filter(r, in);
    }

    if (in == NULL) {
        if (ctx->waiting != NGX_HTTP_PW_WAIT_NONE
            || ctx->resp_headers_deferred)
        {
            return NGX_OK;
        }
        return ngx_http_next_body_filter(r, in);
    }

    if (ngx_http_pw_chain_bytes(r, in, &ngx_http_pw_scratch, &data, &len,
                                &eos)
        != NGX_OK)
    {
        ngx_http_pw_scratch_release();
        return NGX_ERROR;
    }

    flush = 0;
    for (cl = in; cl; cl = cl->next) {
        if (cl->buf->flush) {
            flush = 1;
        }
    }

    if (ctx->resp_headers_held || ctx->waiting == NGX_HTTP_PW_WAIT_RESP_BODY)
    {
        if (ctx->resp_hdr_pending && (len || eos)) {
            rc = ngx_http_pw_response_first(r, ctx, data, len, eos, in,
                                            flush);
            if (rc != NGX_DECLINED) {
                ngx_http_pw_scratch_release();
                return rc;
            }
            /* paused in on_response_headers: held below */
        }

        /* held: keep the raw body until the plugin lets it go */
        if (ngx_http_pw_buf_append(&ctx->resp_body, data, len) != NGX_OK) {
            ngx_http_pw_scratch_release();
            return NGX_ERROR;
        }
        if (eos) {
            ctx->resp_eos_seen = 1;
        }
        ngx_http_pw_scratch_release();
        ngx_http_pw_consume(in);
        r->buffered |= NGX_HTTP_PW_BUFFERED;
        return NGX_OK;
    }

    if (len == 0 && !eos) {
        ngx_http_pw_scratch_release();
        if (ctx->resp_headers_deferred) {
            return NGX_OK;              /* nothing goes before the headers */
        }
        return ngx_http_next_body_filter(r, in);
    }

    rc = ngx_http_pw_response_run(r, ctx, 0, data, len, eos, in, flush);

    ngx_http_pw_scratch_release();

    return rc;
}


/* The response was held (headers or end of body paused): let it go. */
static void
ngx_http_pw_resume_response(ngx_http_request_t *r, ngx_http_pw_ctx_t *ctx)
{
    ngx_int_t           rc;
    ngx_uint_t          res, i, eos;
    ngx_http_pw_fctx_t *f;
    ngx_connection_t   *c;
    ngx_http_pw_buf_t   held;

    c = r->connection;
    rc = NGX_OK;

    if (ctx->waiting == NGX_HTTP_PW_WAIT_RESP_HEADERS) {
        ctx->waiting = NGX_HTTP_PW_WAIT_NONE;
        ctx->resp_hdr_pending = 0;

        res = (ctx->lr_pending && !ctx->lr_sent) ? NGX_HTTP_PW_LOCAL
              : ctx->close_pending ? NGX_HTTP_PW_CLOSE
              : ngx_http_pw_run_headers(ctx, 1);

        switch (res) {
        case NGX_HTTP_PW_PAUSED:
            ngx_http_pw_wait(ctx, NGX_HTTP_PW_WAIT_RESP_HEADERS);
            return;

        case NGX_HTTP_PW_LOCAL:
            ctx->resp_headers_held = 0;
            rc = ngx_http_pw_replace_response(r, ctx);
            goto done;

        case NGX_HTTP_PW_FAIL:
            ctx->resp_headers_held = 0;
            rc = ngx_http_pw_fail_response(r, ctx);
            goto done;

        case NGX_HTTP_PW_OK:
            break;

        default:
            rc = NGX_ERROR;
            goto done;
        }

        ctx->resp_headers_held = 0;
        rc = ngx_http_pw_response_headers_out(r, ctx);
        if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
            goto done;
        }

        /* the body that arrived meanwhile goes through the chain now */
        held = ctx->resp_body;
        ngx_memzero(&ctx->resp_body, sizeof(ngx_http_pw_buf_t));
        eos = ctx->resp_eos_seen;
        ctx->resp_eos_seen = 0;

        if (held.len || eos) {
            rc = ngx_http_pw_response_run(r, ctx, 0,
                                          held.data ? held.data
                                                    : (u_char *) "",
                                          held.len, eos, NULL, 1);
        }
        ngx_http_pw_buf_release(&held);

        if (!eos && ctx->waiting == NGX_HTTP_PW_WAIT_NONE) {
            r->buffered &= ~NGX_HTTP_PW_BUFFERED;
        }

        goto done;
    }

    if (ctx->waiting == NGX_HTTP_PW_WAIT_RESP_BODY) {
        ctx->waiting = NGX_HTTP_PW_WAIT_NONE;

        if (ctx->close_pending) {
            rc = NGX_ERROR;
            goto done;
        }

        i = ngx_http_pw_step(ctx, 1, ctx->resp_next - 1);
        f = &ctx->f[i];

        rc = ngx_http_pw_response_run(r, ctx, ctx->resp_next,
                                      f->acc.data ? f->acc.data
                                                  : (u_char *) "",
                                      f->acc.len, 1, NULL, 1);
        goto done;
    }

    return;

done:

    if (rc == NGX_ERROR) {
        ngx_http_finalize_request(r, NGX_ERROR);
        return;
    }

    /* a finalized request waits in nginx's writer: wake it */
    if (!c->write->posted) {
        ngx_post_event(c->write, &ngx_posted_events);
    }
}


/* ---- resume ---- */


static void
ngx_http_pw_resume_handler(ngx_event_t *ev)
{
    ngx_http_pw_ctx_t   *ctx = ev->data;
    ngx_http_request_t  *r;
    ngx_connection_t    *c;

    r = ctx->r;
    c = r->connection;

    if (ctx->freed) {
        return;
    }

    switch (ctx->waiting) {

    case NGX_HTTP_PW_WAIT_REQ_HEADERS:
        r->write_event_handler = ngx_http_core_run_phases;
        ngx_http_core_run_phases(r);
        break;

    case NGX_HTTP_PW_WAIT_REQ_BODY:
        if (!ctx->body_read) {
            /* still reading: the body filter goes on when it can */
            ctx->waiting = NGX_HTTP_PW_WAIT_NONE;
            break;
        }
        ngx_http_pw_resume_request_body(r, ctx);
        break;

    case NGX_HTTP_PW_WAIT_RESP_HEADERS:
    case NGX_HTTP_PW_WAIT_RESP_BODY:
        ngx_http_pw_resume_response(r, ctx);
        break;

    default:
        if (ctx->close_pending && !ctx->freed) {
            ngx_http_finalize_request(r, NGX_ERROR);
        }
        break;
    }

    ngx_http_run_posted_requests(c);
}


/* ---- log phase ---- */


NGX_PW_HOT static ngx_int_t
ngx_http_pw_log_handler(ngx_http_request_t *r)
{
    ngx_http_pw_ctx_t  *ctx;

    if (r != r->main) {
        return NGX_DECLINED;
    }

    ctx = ngx_http_pw_get_ctx(r);
    if (ctx) {
        ngx_http_pw_free_streams(ctx);
    }

    return NGX_DECLINED;
}


static ngx_int_t
ngx_http_pw_init(ngx_conf_t *cf)
{
    ngx_http_handler_pt        *h;
    ngx_http_core_main_conf_t  *cmcf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_REWRITE_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }
    *h = ngx_http_pw_rewrite_handler;

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_LOG_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }
    *h = ngx_http_pw_log_handler;

    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_pw_header_filter;

    ngx_http_next_body_filter = ngx_http_top_body_filter;
    ngx_http_top_body_filter = ngx_http_pw_body_filter;

    ngx_http_next_request_body_filter = ngx_http_top_request_body_filter;
    ngx_http_top_request_body_filter = ngx_http_pw_request_body_filter;

    return NGX_OK;
}
