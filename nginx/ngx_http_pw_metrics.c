/*
 * proxy_wasm_metrics: every metric of the shared metrics zone (one value
 * across all workers) and the host's own metrics, in the Prometheus text
 * exposition format 0.0.4. docs/METRICS.md describes the page.
 */
#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_pw.h"


#define NGX_HTTP_PW_HOST_PREFIX      "pw_host:"
#define NGX_HTTP_PW_OUT_CHUNK        4096
#define NGX_HTTP_PW_HIST_BUCKETS     64


/* A host metric kept in the metrics zone as "pw_host:WHAT[:MODULE]". */
typedef struct {
    ngx_str_t                   what;
    ngx_str_t                   family;      /* Prometheus name */
    pw_metric_type_t            type;
    ngx_uint_t                  per_module;
    const char                 *help;
} ngx_http_pw_host_family_t;

/* One metric copied out of the zone. */
typedef struct {
    pw_metric_type_t            type;
    ngx_str_t                   name;
    int64_t                     value;
    int64_t                     sum;
    uint64_t                   *buckets;     /* histograms */
    ngx_http_pw_host_family_t  *host;        /* a host metric's family */
    ngx_str_t                   module;      /* its module label */
} ngx_http_pw_metric_t;

typedef struct {
    ngx_pool_t                 *pool;
    ngx_array_t                 plugin;      /* ngx_http_pw_metric_t */
    ngx_array_t                 host;        /* ngx_http_pw_metric_t */
    ngx_uint_t                  error;
} ngx_http_pw_collect_t;

/* The response body, built in buffers of the request pool. */
typedef struct {
    ngx_pool_t                 *pool;
    ngx_chain_t                *first;
    ngx_chain_t               **last;
    ngx_buf_t                  *b;
    off_t                       len;
    ngx_uint_t                  error;
    ngx_rbtree_t                names;       /* Prometheus names emitted */
    ngx_rbtree_node_t           sentinel;
} ngx_http_pw_out_t;

/* A worker's cached host metric id. */
typedef struct ngx_http_pw_host_id_s  ngx_http_pw_host_id_t;

struct ngx_http_pw_host_id_s {
    ngx_http_pw_host_id_t      *next;
    ngx_http_pw_host_family_t  *family;
    ngx_str_t                   name;        /* in the zone */
    ngx_str_t                   module;      /* within name */
    uint32_t                    id;
    unsigned                    defined:1;
    unsigned                    logged:1;
};


static char *ngx_http_pw_metrics(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_http_pw_metrics_handler(ngx_http_request_t *r);


static ngx_http_pw_host_family_t  ngx_http_pw_host_families[] = {

    { ngx_string("plugin_failures"),
      ngx_string("pw_host_plugin_failures_total"),
      PW_METRIC_COUNTER, 1,
      "Plugin failures (trap, time limit, failed start) by module." },

    { ngx_string("instance_restarts"),
      ngx_string("pw_host_instance_restarts_total"),
      PW_METRIC_COUNTER, 1,
      "Instances started to replace a failed one, by module." },

    { ngx_string("instances"),
      ngx_string("pw_host_instances"),
      PW_METRIC_GAUGE, 1,
      "Running instances (VMs) of each module, all workers." },

    { ngx_string("hostcall_errors"),
      ngx_string("pw_host_hostcall_errors_total"),
      PW_METRIC_COUNTER, 1,
      "Host calls refused with an error status (bad argument, bad memory "
      "access, internal failure, unimplemented), by module." },

    { ngx_string("callouts_in_flight"),
      ngx_string("pw_host_callouts_in_flight"),
      PW_METRIC_GAUGE, 0,
      "HTTP and gRPC callouts waiting for an answer, all workers." },

    { ngx_string("callouts"),
      ngx_string("pw_host_callouts_total"),
      PW_METRIC_COUNTER, 0,
      "HTTP callouts answered or failed (not cancelled)." },

    { ngx_string("callout_duration_ms"),
      ngx_string("pw_host_callout_duration_milliseconds_total"),
      PW_METRIC_COUNTER, 0,
      "Time from HTTP callout to answer or failure, summed." },

    { ngx_string("callouts_cancelled"),
      ngx_string("pw_host_callouts_cancelled_total"),
      PW_METRIC_COUNTER, 0,
      "HTTP callouts dropped because their request ended." },

    { ngx_string("callout_failures_refused"),
      ngx_string("pw_host_callout_failures_refused_total"),
      PW_METRIC_COUNTER, 0,
      "HTTP callouts that could not connect." },

    { ngx_string("callout_failures_reset"),
      ngx_string("pw_host_callout_failures_reset_total"),
      PW_METRIC_COUNTER, 0,
      "HTTP callouts whose connection broke before the whole answer." },

    { ngx_string("callout_failures_timeout"),
      ngx_string("pw_host_callout_failures_timeout_total"),
      PW_METRIC_COUNTER, 0,
      "HTTP callouts not answered within their timeout." },

    { ngx_string("callout_failures_malformed"),
      ngx_string("pw_host_callout_failures_malformed_total"),
      PW_METRIC_COUNTER, 0,
      "HTTP callouts with an unparsable or too large answer." },

    { ngx_string("callout_failures_tls"),
      ngx_string("pw_host_callout_failures_tls_total"),
      PW_METRIC_COUNTER, 0,
      "HTTP and gRPC callouts whose TLS handshake or checks failed." },

    { ngx_string("callout_failures_other"),
      ngx_string("pw_host_callout_failures_other_total"),
      PW_METRIC_COUNTER, 0,
      "HTTP callouts that failed otherwise (name resolution, memory)." },

    { ngx_null_string, ngx_null_string, 0, 0, NULL }
};


/* Per zone, from pw_store_stats(). */
typedef struct {
    ngx_str_t                   family;
    const char                 *type;
    size_t                      offset;      /* in pw_store_stats_t */
    const char                 *help;
} ngx_http_pw_shm_family_t;

static ngx_http_pw_shm_family_t  ngx_http_pw_shm_families[] = {

    { ngx_string("pw_host_shm_size_bytes"), "gauge",
      offsetof(pw_store_stats_t, region_size),
      "Size of each shared memory zone." },

    { ngx_string("pw_host_shm_used_bytes"), "gauge",
      offsetof(pw_store_stats_t, used_bytes),
      "Bytes in use in each shared memory zone." },

    { ngx_string("pw_host_shm_kv_entries"), "gauge",
      offsetof(pw_store_stats_t, kv_entries),
      "Shared data keys in each zone." },

    { ngx_string("pw_host_shm_kv_evictions_total"), "counter",
      offsetof(pw_store_stats_t, kv_evictions),
      "Shared data keys evicted to make room." },

    { ngx_string("pw_host_shm_queue_items"), "gauge",
      offsetof(pw_store_stats_t, queue_items),
      "Items waiting in the shared queues of each zone." },

    { ngx_string("pw_host_shm_queue_bytes"), "gauge",
      offsetof(pw_store_stats_t, queue_bytes),
      "Payload bytes waiting in the shared queues of each zone." },

    { ngx_string("pw_host_shm_queue_dropped_total"), "counter",
      offsetof(pw_store_stats_t, queue_dropped),
      "Queue items dropped to make room." },

    { ngx_string("pw_host_shm_metrics"), "gauge",
      offsetof(pw_store_stats_t, metrics),
      "Metrics defined in each zone." },

    { ngx_null_string, NULL, 0, NULL }
};

static const char  *ngx_http_pw_zone_kinds[] = { "kv", "queue", "metrics" };


static ngx_command_t  ngx_http_pw_metrics_commands[] = {

    { ngx_string("proxy_wasm_metrics"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_pw_metrics,
      0,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_pw_metrics_module_ctx = {
    NULL,                                  /* preconfiguration */
    NULL,                                  /* postconfiguration */
    NULL,                                  /* create main configuration */
    NULL,                                  /* init main configuration */
    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */
    NULL,                                  /* create location configuration */
    NULL                                   /* merge location configuration */
};


ngx_module_t  ngx_http_pw_metrics_module = {
    NGX_MODULE_V1,
    &ngx_http_pw_metrics_module_ctx,       /* module context */
    ngx_http_pw_metrics_commands,          /* module directives */
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


static char *
ngx_http_pw_metrics(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (clcf->handler == ngx_http_pw_metrics_handler) {
        return "is duplicate";
    }

    clcf->handler = ngx_http_pw_metrics_handler;

    return NGX_CONF_OK;
}


/* ---- host metrics, counted by the core ---- */


static ngx_http_pw_host_family_t *
ngx_http_pw_host_family(u_char *what, size_t len)
{
    ngx_http_pw_host_family_t  *f;

    for (f = ngx_http_pw_host_families; f->what.len; f++) {
        if (f->what.len == len && ngx_strncmp(f->what.data, what, len) == 0)
        {
            return f;
        }
    }

    return NULL;
}


void
ngx_pw_host_metric(ngx_cycle_t *cycle, const char *what, ngx_str_t *module,
    int64_t delta)
{
    int                         rc;
    u_char                     *p;
    pw_str_t                    pname;
    pw_store_t                 *store;
    ngx_http_pw_host_id_t      *h;
    ngx_http_pw_host_family_t  *f;

    /* ids stay valid as long as the zone the worker attached to */
    static ngx_cycle_t            *cached_cycle;
    static pw_store_t             *cached_store;
    static ngx_http_pw_host_id_t  *cached;

    store = ngx_pw_metrics_store(cycle);
    if (store == NULL) {
        return;
    }

    f = ngx_http_pw_host_family((u_char *) what, ngx_strlen(what));
    if (f == NULL || (f->per_module && module == NULL)) {
        ngx_log_error(NGX_LOG_ALERT, cycle->log, 0,
                      "[wasm] unknown host metric \"%s\"", what);
        return;
    }

    if (!f->per_module) {
        module = NULL;
    }

    if (cached_cycle != cycle || cached_store != store) {
        cached_cycle = cycle;
        cached_store = store;
        cached = NULL;          /* the entries went with the old pool */
    }

    for (h = cached; h; h = h->next) {
        if (h->family == f
            && (module == NULL
                || (h->module.len == module->len
                    && ngx_strncmp(h->module.data, module->data,
                                   module->len) == 0)))
        {
            break;
        }
    }

    if (h == NULL) {
        h = ngx_pcalloc(cycle->pool, sizeof(ngx_http_pw_host_id_t));
        if (h == NULL) {
            return;
        }

        h->family = f;
        h->name.len = sizeof(NGX_HTTP_PW_HOST_PREFIX) - 1 + f->what.len
                      + (module ? 1 + module->len : 0);
        h->name.data = ngx_pnalloc(cycle->pool, h->name.len);
        if (h->name.data == NULL) {
            return;
        }

        p = ngx_cpymem(h->name.data, NGX_HTTP_PW_HOST_PREFIX,
                       sizeof(NGX_HTTP_PW_HOST_PREFIX) - 1);
        p = ngx_cpymem(p, f->what.data, f->what.len);
        if (module) {
            *p++ = ':';
            h->module.data = p;
            h->module.len = module->len;
            ngx_memcpy(p, module->data, module->len);
        }

        h->next = cached;
        cached = h;
    }

    if (!h->defined) {
        pname.data = (const char *) h->name.data;
        pname.len = h->name.len;

        rc = pw_metric_define(store, f->type, pname, &h->id);
        if (rc != PW_OK) {
            /* retried on the next event; said once */
            if (!h->logged) {
                h->logged = 1;
                ngx_log_error(NGX_LOG_WARN, cycle->log, 0,
                              "[wasm] cannot define host metric \"%V\": "
                              "%s", &h->name, pw_strerror(rc));
            }
            return;
        }

        h->defined = 1;
    }

    if (f->type == PW_METRIC_COUNTER && delta < 0) {
        return;
    }

    (void) pw_metric_increment(store, h->id, delta);
}


/* ---- collecting ---- */


/* Under the zone's lock: copy only, never call the store. */
static void
ngx_http_pw_collect_one(void *arg, uint32_t id, const pw_metric_info_t *mi)
{
    ngx_http_pw_collect_t  *col = arg;

    u_char                     *what, *colon, *end;
    ngx_array_t                *list;
    ngx_http_pw_metric_t       *m;
    ngx_http_pw_host_family_t  *f;

    if (col->error) {
        return;
    }

    f = NULL;
    colon = NULL;
    list = &col->plugin;

    what = (u_char *) mi->name.data;
    end = what + mi->name.len;

    if (mi->name.len > sizeof(NGX_HTTP_PW_HOST_PREFIX) - 1
        && ngx_strncmp(what, NGX_HTTP_PW_HOST_PREFIX,
                       sizeof(NGX_HTTP_PW_HOST_PREFIX) - 1) == 0)
    {
        what += sizeof(NGX_HTTP_PW_HOST_PREFIX) - 1;
        colon = ngx_strlchr(what, end, ':');

        f = ngx_http_pw_host_family(what, (colon ? colon : end) - what);

        /* a plugin's metric that merely looks like ours stays a plugin
         * metric */
        if (f && (f->type != mi->type || f->per_module != (colon != NULL))) {
            f = NULL;
        }

        if (f) {
            list = &col->host;
        }
    }

    m = ngx_array_push(list);
    if (m == NULL) {
        col->error = 1;
        return;
    }

    ngx_memzero(m, sizeof(ngx_http_pw_metric_t));
    m->type = mi->type;
    m->value = mi->value;
    m->sum = mi->sum;
    m->host = f;

    m->name.len = mi->name.len;
    m->name.data = ngx_pnalloc(col->pool, mi->name.len + 1);
    if (m->name.data == NULL) {
        col->error = 1;
        return;
    }
    ngx_memcpy(m->name.data, mi->name.data, mi->name.len);

    if (f && f->per_module) {
        m->module.data = m->name.data + (colon + 1 - (u_char *) mi->name.data);
        m->module.len = end - (colon + 1);
    }

    if (mi->type == PW_METRIC_HISTOGRAM && mi->buckets) {
        m->buckets = ngx_palloc(col->pool,
                                NGX_HTTP_PW_HIST_BUCKETS * sizeof(uint64_t));
        if (m->buckets == NULL) {
            col->error = 1;
            return;
        }
        ngx_memcpy(m->buckets, mi->buckets,
                   NGX_HTTP_PW_HIST_BUCKETS * sizeof(uint64_t));
    }
}


/* ---- output ---- */


static void
ngx_http_pw_out_add(ngx_http_pw_out_t *out, const u_char *data, size_t len)
{
    size_t        n, size;
    ngx_chain_t  *cl;

    if (out->error) {
        return;
    }

    while (len) {
        if (out->b == NULL || out->b->last == out->b->end) {
            size = ngx_max(len, NGX_HTTP_PW_OUT_CHUNK);
            out->b = ngx_create_temp_buf(out->pool, size);
            cl = ngx_alloc_chain_link(out->pool);
            if (out->b == NULL || cl == NULL) {
                out->error = 1;
                return;
            }
            cl->buf = out->b;
            cl->next = NULL;
            *out->last = cl;
            out->last = &cl->next;
        }

        n = ngx_min(len, (size_t) (out->b->end - out->b->last));
        out->b->last = ngx_cpymem(out->b->last, data, n);
        out->len += n;
        data += n;
        len -= n;
    }
}


static void
ngx_http_pw_out_cstr(ngx_http_pw_out_t *out, const char *s)
{
    ngx_http_pw_out_add(out, (const u_char *) s, ngx_strlen(s));
}


static void
ngx_http_pw_out_str(ngx_http_pw_out_t *out, ngx_str_t *s)
{
    ngx_http_pw_out_add(out, s->data, s->len);
}


static void
ngx_http_pw_out_i64(ngx_http_pw_out_t *out, int64_t v)
{
    u_char  buf[NGX_INT64_LEN + 2], *p;

    p = ngx_sprintf(buf, "%L", v);
    ngx_http_pw_out_add(out, buf, p - buf);
}


static void
ngx_http_pw_out_u64(ngx_http_pw_out_t *out, uint64_t v)
{
    u_char  buf[NGX_INT64_LEN + 2], *p;

    p = ngx_sprintf(buf, "%uL", v);
    ngx_http_pw_out_add(out, buf, p - buf);
}


/* Text for HELP and comment lines: the 0.0.4 format knows only the
 * escapes \\ and \n there; other unprintable bytes become '?'. */
static void
ngx_http_pw_out_text(ngx_http_pw_out_t *out, ngx_str_t *s)
{
    u_char  c;
    size_t  i;

    for (i = 0; i < s->len; i++) {
        c = s->data[i];

        if (c == '\\') {
            ngx_http_pw_out_cstr(out, "\\\\");

        } else if (c == '\n') {
            ngx_http_pw_out_cstr(out, "\\n");

        } else if (c < 0x20 || c >= 0x7f) {
            ngx_http_pw_out_cstr(out, "?");

        } else {
            ngx_http_pw_out_add(out, &c, 1);
        }
    }
}


/* A label value: \\, \" and \n escaped; bytes are kept as they are. */
static void
ngx_http_pw_out_label(ngx_http_pw_out_t *out, ngx_str_t *s)
{
    u_char  c;
    size_t  i;

    for (i = 0; i < s->len; i++) {
        c = s->data[i];

        if (c == '\\') {
            ngx_http_pw_out_cstr(out, "\\\\");

        } else if (c == '"') {
            ngx_http_pw_out_cstr(out, "\\\"");

        } else if (c == '\n') {
            ngx_http_pw_out_cstr(out, "\\n");

        } else {
            ngx_http_pw_out_add(out, &c, 1);
        }
    }
}


static void
ngx_http_pw_out_family(ngx_http_pw_out_t *out, ngx_str_t *family,
    const char *type, const char *help, ngx_str_t *help_name)
{
    ngx_http_pw_out_cstr(out, "# HELP ");
    ngx_http_pw_out_str(out, family);
    ngx_http_pw_out_cstr(out, " ");
    if (help) {
        ngx_http_pw_out_cstr(out, help);
    } else {
        ngx_http_pw_out_cstr(out, "proxy-wasm metric \"");
        ngx_http_pw_out_text(out, help_name);
        ngx_http_pw_out_cstr(out, "\"");
    }
    ngx_http_pw_out_cstr(out, "\n# TYPE ");
    ngx_http_pw_out_str(out, family);
    ngx_http_pw_out_cstr(out, " ");
    ngx_http_pw_out_cstr(out, type);
    ngx_http_pw_out_cstr(out, "\n");
}


/* ---- Prometheus names ---- */


static ngx_int_t
ngx_http_pw_prom_name(ngx_pool_t *pool, ngx_str_t *in, ngx_str_t *name)
{
    u_char  c, *p;
    size_t  i;

    name->data = ngx_pnalloc(pool, in->len + 1);
    if (name->data == NULL) {
        return NGX_ERROR;
    }

    p = name->data;

    if (in->len == 0 || (in->data[0] >= '0' && in->data[0] <= '9')) {
        *p++ = '_';
    }

    for (i = 0; i < in->len; i++) {
        c = in->data[i];
        *p++ = ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
                || (c >= '0' && c <= '9') || c == '_' || c == ':')
               ? c : '_';
    }

    name->len = p - name->data;

    return NGX_OK;
}


static ngx_str_node_t *
ngx_http_pw_name_lookup(ngx_http_pw_out_t *out, ngx_str_t *name)
{
    return ngx_str_rbtree_lookup(&out->names, name,
                                 ngx_crc32_short(name->data, name->len));
}


static ngx_int_t
ngx_http_pw_name_take(ngx_http_pw_out_t *out, ngx_str_t *name)
{
    ngx_str_node_t  *sn;

    sn = ngx_pcalloc(out->pool, sizeof(ngx_str_node_t));
    if (sn == NULL) {
        return NGX_ERROR;
    }

    sn->str = *name;
    sn->node.key = ngx_crc32_short(name->data, name->len);
    ngx_rbtree_insert(&out->names, &sn->node);

    return NGX_OK;
}


static const char  *ngx_http_pw_hist_suffixes[] = {
    "", "_bucket", "_sum", "_count", NULL
};


/*
 * Claim the names a family's samples use (a histogram's _bucket, _sum and
 * _count too): NGX_DECLINED when an earlier family has one of them.
 */
static ngx_int_t
ngx_http_pw_family_take(ngx_http_pw_out_t *out, ngx_str_t *family,
    pw_metric_type_t type)
{
    size_t        n;
    ngx_str_t     names[4];
    ngx_uint_t    i, k;
    const char  **s;

    k = 0;
    for (s = ngx_http_pw_hist_suffixes; *s; s++) {
        if (type != PW_METRIC_HISTOGRAM && k == 1) {
            break;
        }

        n = ngx_strlen(*s);
        names[k].len = family->len + n;
        names[k].data = ngx_pnalloc(out->pool, names[k].len);
        if (names[k].data == NULL) {
            return NGX_ERROR;
        }
        ngx_memcpy(ngx_cpymem(names[k].data, family->data, family->len),
                   *s, n);
        k++;
    }

    for (i = 0; i < k; i++) {
        if (ngx_http_pw_name_lookup(out, &names[i])) {
            return NGX_DECLINED;
        }
    }

    for (i = 0; i < k; i++) {
        if (ngx_http_pw_name_take(out, &names[i]) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/* ---- rendering ---- */


static const char *
ngx_http_pw_type_name(pw_metric_type_t type)
{
    switch (type) {
    case PW_METRIC_COUNTER:
        return "counter";
    case PW_METRIC_GAUGE:
        return "gauge";
    default:
        return "histogram";
    }
}


static void
ngx_http_pw_render_plugin(ngx_http_pw_out_t *out, ngx_http_pw_metric_t *m)
{
    int         i, top;
    uint64_t    cum;
    ngx_int_t   rc;
    ngx_str_t   family;

    if (ngx_http_pw_prom_name(out->pool, &m->name, &family) != NGX_OK) {
        out->error = 1;
        return;
    }

    rc = ngx_http_pw_family_take(out, &family, m->type);
    if (rc == NGX_ERROR) {
        out->error = 1;
        return;
    }

    if (rc == NGX_DECLINED) {
        ngx_http_pw_out_cstr(out, "# proxy-wasm: ");
        ngx_http_pw_out_cstr(out, ngx_http_pw_type_name(m->type));
        ngx_http_pw_out_cstr(out, " \"");
        ngx_http_pw_out_text(out, &m->name);
        ngx_http_pw_out_cstr(out, "\" not shown: its name ");
        ngx_http_pw_out_str(out, &family);
        ngx_http_pw_out_cstr(out, " is taken by an earlier metric\n");
        return;
    }

    ngx_http_pw_out_family(out, &family, ngx_http_pw_type_name(m->type),
                           NULL, &m->name);

    if (m->type != PW_METRIC_HISTOGRAM) {
        ngx_http_pw_out_str(out, &family);
        ngx_http_pw_out_cstr(out, " ");
        ngx_http_pw_out_i64(out, m->value);
        ngx_http_pw_out_cstr(out, "\n");
        return;
    }

    top = -1;
    if (m->buckets) {
        for (i = NGX_HTTP_PW_HIST_BUCKETS - 1; i >= 0; i--) {
            if (m->buckets[i]) {
                top = i;
                break;
            }
        }
    }

    cum = 0;
    for (i = 0; i <= top; i++) {
        cum += m->buckets[i];
        ngx_http_pw_out_str(out, &family);
        ngx_http_pw_out_cstr(out, "_bucket{le=\"");
        ngx_http_pw_out_u64(out, (uint64_t) 1 << i);
        ngx_http_pw_out_cstr(out, "\"} ");
        ngx_http_pw_out_u64(out, cum);
        ngx_http_pw_out_cstr(out, "\n");
    }

    ngx_http_pw_out_str(out, &family);
    ngx_http_pw_out_cstr(out, "_bucket{le=\"+Inf\"} ");
    ngx_http_pw_out_i64(out, m->value);
    ngx_http_pw_out_cstr(out, "\n");

    ngx_http_pw_out_str(out, &family);
    ngx_http_pw_out_cstr(out, "_sum ");
    ngx_http_pw_out_i64(out, m->sum);
    ngx_http_pw_out_cstr(out, "\n");

    ngx_http_pw_out_str(out, &family);
    ngx_http_pw_out_cstr(out, "_count ");
    ngx_http_pw_out_i64(out, m->value);
    ngx_http_pw_out_cstr(out, "\n");
}


static void
ngx_http_pw_render_host_sample(ngx_http_pw_out_t *out,
    ngx_http_pw_host_family_t *f, ngx_str_t *module, int64_t value)
{
    ngx_http_pw_out_str(out, &f->family);
    if (f->per_module) {
        ngx_http_pw_out_cstr(out, "{module=\"");
        ngx_http_pw_out_label(out, module);
        ngx_http_pw_out_cstr(out, "\"}");
    }
    ngx_http_pw_out_cstr(out, " ");
    ngx_http_pw_out_i64(out, value);
    ngx_http_pw_out_cstr(out, "\n");
}


/*
 * Each host family once: a sample for every module of the configuration
 * (0 until counted), then for modules only the zone still remembers (an
 * earlier configuration: zones outlive reloads).
 */
static void
ngx_http_pw_render_host(ngx_http_pw_out_t *out, ngx_http_pw_collect_t *col,
    ngx_pw_core_conf_t *pcf)
{
    ngx_uint_t                  i, j, found;
    ngx_pw_module_t            *mod;
    ngx_http_pw_metric_t       *m;
    ngx_http_pw_host_family_t  *f;

    m = col->host.elts;
    mod = pcf ? pcf->modules.elts : NULL;

    for (f = ngx_http_pw_host_families; f->what.len; f++) {
        if (ngx_http_pw_family_take(out, &f->family, f->type) != NGX_OK) {
            out->error = 1;
            return;
        }

        ngx_http_pw_out_family(out, &f->family,
                               ngx_http_pw_type_name(f->type), f->help,
                               NULL);

        if (!f->per_module) {
            found = 0;
            for (j = 0; j < col->host.nelts; j++) {
                if (m[j].host == f) {
                    ngx_http_pw_render_host_sample(out, f, NULL, m[j].value);
                    found = 1;
                    break;
                }
            }
            if (!found) {
                ngx_http_pw_render_host_sample(out, f, NULL, 0);
            }
            continue;
        }

        for (i = 0; pcf && i < pcf->modules.nelts; i++) {
            found = 0;
            for (j = 0; j < col->host.nelts; j++) {
                if (m[j].host == f && m[j].module.len == mod[i].name.len
                    && ngx_strncmp(m[j].module.data, mod[i].name.data,
                                   mod[i].name.len) == 0)
                {
                    ngx_http_pw_render_host_sample(out, f, &mod[i].name,
                                                   m[j].value);
                    found = 1;
                    break;
                }
            }
            if (!found) {
                ngx_http_pw_render_host_sample(out, f, &mod[i].name, 0);
            }
        }

        for (j = 0; j < col->host.nelts; j++) {
            if (m[j].host != f) {
                continue;
            }

            found = 0;
            for (i = 0; pcf && i < pcf->modules.nelts; i++) {
                if (m[j].module.len == mod[i].name.len
                    && ngx_strncmp(m[j].module.data, mod[i].name.data,
                                   mod[i].name.len) == 0)
                {
                    found = 1;
                    break;
                }
            }
            if (!found) {
                ngx_http_pw_render_host_sample(out, f, &m[j].module,
                                               m[j].value);
            }
        }
    }
}


static void
ngx_http_pw_render_shm(ngx_http_pw_out_t *out, ngx_pw_core_conf_t *pcf)
{
    ngx_str_t                  kind;
    ngx_uint_t                 i, n;
    ngx_pw_zone_t             *z;
    pw_store_stats_t          *stats;
    ngx_http_pw_shm_family_t  *f;

    n = (pcf && pcf->stores) ? pcf->zones.nelts : 0;
    z = n ? pcf->zones.elts : NULL;

    stats = ngx_pcalloc(out->pool, (n + 1) * sizeof(pw_store_stats_t));
    if (stats == NULL) {
        out->error = 1;
        return;
    }

    for (i = 0; i < n; i++) {
        if (z[i].store == NULL
            || pw_store_stats(z[i].store, &stats[i]) != PW_OK)
        {
            stats[i].region_size = 0;      /* marks it left out */
        }
    }

    for (f = ngx_http_pw_shm_families; f->family.len; f++) {
        if (ngx_http_pw_family_take(out, &f->family, PW_METRIC_GAUGE)
            != NGX_OK)
        {
            out->error = 1;
            return;
        }

        ngx_http_pw_out_family(out, &f->family, f->type, f->help, NULL);

        for (i = 0; i < n; i++) {
            if (stats[i].region_size == 0) {
                continue;
            }

            kind.data = (u_char *) ngx_http_pw_zone_kinds[z[i].kind];
            kind.len = ngx_strlen(kind.data);

            ngx_http_pw_out_str(out, &f->family);
            ngx_http_pw_out_cstr(out, "{zone=\"");
            ngx_http_pw_out_label(out, &z[i].name);
            ngx_http_pw_out_cstr(out, "\",kind=\"");
            ngx_http_pw_out_str(out, &kind);
            ngx_http_pw_out_cstr(out, "\"} ");
            ngx_http_pw_out_u64(out,
                                *(uint64_t *) ((u_char *) &stats[i]
                                               + f->offset));
            ngx_http_pw_out_cstr(out, "\n");
        }
    }
}


static ngx_int_t
ngx_http_pw_metrics_render(ngx_http_request_t *r, ngx_http_pw_out_t *out)
{
    ngx_uint_t              i;
    pw_store_t             *store;
    ngx_pw_core_conf_t     *pcf;
    ngx_http_pw_metric_t   *m;
    ngx_http_pw_collect_t   col;

    ngx_memzero(&col, sizeof(col));
    col.pool = r->pool;

    if (ngx_array_init(&col.plugin, r->pool, 16,
                       sizeof(ngx_http_pw_metric_t))
        != NGX_OK
        || ngx_array_init(&col.host, r->pool, 8,
                          sizeof(ngx_http_pw_metric_t))
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    pcf = ngx_pw_core_conf(ngx_cycle);
    store = ngx_pw_metrics_store((ngx_cycle_t *) ngx_cycle);

    if (store) {
        if (pw_metric_foreach(store, ngx_http_pw_collect_one, &col) != PW_OK
            || col.error)
        {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "[wasm] cannot read the metrics zone");
            return NGX_ERROR;
        }
    }

    /* the host's names first: a plugin cannot shadow them */
    ngx_http_pw_render_host(out, &col, pcf);
    ngx_http_pw_render_shm(out, pcf);

    m = col.plugin.elts;
    for (i = 0; i < col.plugin.nelts; i++) {
        ngx_http_pw_render_plugin(out, &m[i]);
    }

    return out->error ? NGX_ERROR : NGX_OK;
}


static ngx_int_t
ngx_http_pw_metrics_handler(ngx_http_request_t *r)
{
    ngx_int_t           rc;
    ngx_buf_t          *b;
    ngx_table_elt_t    *allow;
    ngx_http_pw_out_t   out;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        allow = ngx_list_push(&r->headers_out.headers);
        if (allow == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
        allow->hash = 1;
        ngx_str_set(&allow->key, "Allow");
        ngx_str_set(&allow->value, "GET, HEAD");
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    ngx_memzero(&out, sizeof(out));
    out.pool = r->pool;
    out.last = &out.first;
    ngx_rbtree_init(&out.names, &out.sentinel, ngx_str_rbtree_insert_value);

    if (ngx_http_pw_metrics_render(r, &out) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (out.b == NULL) {
        b = ngx_calloc_buf(r->pool);
        out.first = ngx_alloc_chain_link(r->pool);
        if (b == NULL || out.first == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
        out.first->buf = b;
        out.first->next = NULL;
        out.b = b;
    }

    out.b->last_buf = (r == r->main) ? 1 : 0;
    out.b->last_in_chain = 1;

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = out.len;
    ngx_str_set(&r->headers_out.content_type, "text/plain; version=0.0.4");
    r->headers_out.content_type_len = sizeof("text/plain") - 1;
    r->headers_out.content_type_lowcase = NULL;

    rc = ngx_http_send_header(r);
    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    return ngx_http_output_filter(r, out.first);
}
