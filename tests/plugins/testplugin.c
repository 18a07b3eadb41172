/*
 * testplugin: one configurable plugin for the host's tests. Its plugin
 * configuration (and VM configuration) is a small script saying, per
 * callback, which host calls to make and what to return; every host call
 * logs "status <import> = <n>" at info level. The language is documented
 * in tests/plugins/README.md; keep the two in step.
 *
 * Built three times: ABI 0.2.1 (testplugin.wasm), 0.2.0 and 0.1.0
 * (testplugin_v020.wasm, testplugin_v010.wasm) from this one source.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wasi/api.h>

#include "proxy_wasm.h"

/* ---- events -------------------------------------------------------------- */

enum {
    EV_VM_START, EV_CONFIGURE, EV_TICK, EV_CONTEXT_CREATE,
    EV_REQUEST_HEADERS, EV_REQUEST_BODY, EV_REQUEST_TRAILERS,
    EV_RESPONSE_HEADERS, EV_RESPONSE_BODY, EV_RESPONSE_TRAILERS,
    EV_NEW_CONNECTION, EV_DOWNSTREAM_DATA, EV_UPSTREAM_DATA,
    EV_DOWNSTREAM_CLOSE, EV_UPSTREAM_CLOSE,
    EV_HTTP_CALL_RESPONSE, EV_GRPC_INITIAL_METADATA, EV_GRPC_RECEIVE,
    EV_GRPC_TRAILING_METADATA, EV_GRPC_CLOSE,
    EV_QUEUE_READY, EV_FOREIGN_FUNCTION,
    EV_DONE, EV_LOG, EV_DELETE,
    EV_COUNT
};

static const char *const ev_names[EV_COUNT] = {
    "vm_start", "configure", "tick", "context_create",
    "request_headers", "request_body", "request_trailers",
    "response_headers", "response_body", "response_trailers",
    "new_connection", "downstream_data", "upstream_data",
    "downstream_close", "upstream_close",
    "http_call_response", "grpc_initial_metadata", "grpc_receive",
    "grpc_trailing_metadata", "grpc_close",
    "queue_ready", "foreign_function",
    "done", "log", "delete"
};

/* ---- scripts ------------------------------------------------------------- */

typedef struct {
    char *s;               /* NUL-terminated; may contain NULs */
    size_t len;
} tok_t;

typedef struct cmd_s {
    struct cmd_s *next;
    int line;
    int argc;
    tok_t *argv;
} cmd_t;

typedef struct {
    cmd_t *head[EV_COUNT];
    bool trace;
} script_t;

/* What a running command knows about the callback it runs in. */
typedef struct {
    int ev;
    uint32_t ctx;          /* context the callback is about */
    uint32_t root;
    uint32_t id;           /* callout token, queue id or function id */
    bool stop;
    uint32_t ret;
} env_t;

typedef void (*cmd_fn_t)(env_t *e, int argc, tok_t *argv);

typedef struct {
    const char *name;
    cmd_fn_t fn;
    int min_args;          /* after the command name */
} cmd_def_t;

static script_t vm_script;
static bool vm_trace;

/* Ids remembered for the token "last" and by name. */
static uint32_t last_http, last_grpc, last_queue, last_metric, last_cas;

#define NAMED_MAX  64

typedef struct {
    char name[64];
    uint32_t id;
} named_t;

static named_t queues[NAMED_MAX], metrics[NAMED_MAX];
static int nqueues, nmetrics;

static const cmd_def_t *find_cmd(const char *name);


/* ---- output -------------------------------------------------------------- */

static void
status(const char *call, uint32_t rc)
{
    px_logf(PX_LOG_INFO, "status %s = %u", call, rc);
}


static void
cmd_error(const char *cmd, const char *msg)
{
    px_logf(PX_LOG_ERROR, "error %s: %s", cmd, msg);
}


/* Printable ASCII as is, backslash doubled, the rest as \xHH. */
static char *
escape(const char *s, size_t len)
{
    size_t i, o;
    char *out;
    unsigned char c;

    out = malloc(len * 4 + 1);
    if (out == NULL) {
        return NULL;
    }

    for (i = 0, o = 0; i < len; i++) {
        c = (unsigned char) s[i];
        if (c == '\\') {
            out[o++] = '\\';
            out[o++] = '\\';
        } else if (c >= 0x20 && c < 0x7f) {
            out[o++] = (char) c;
        } else {
            o += (size_t) snprintf(out + o, 5, "\\x%02x", c);
        }
    }
    out[o] = '\0';

    return out;
}


static void
value(const char *label, const char *s, size_t len)
{
    char *esc;

    esc = escape(s, len);
    if (esc == NULL) {
        return;
    }
    px_logf(PX_LOG_INFO, "value %s = %s", label, esc);
    free(esc);
}


static void
value_num(const char *label, uint64_t n)
{
    px_logf(PX_LOG_INFO, "value %s = %llu", label, (unsigned long long) n);
}


/* ---- tokens -------------------------------------------------------------- */

static bool
tok_is(const tok_t *t, const char *s)
{
    return t->len == strlen(s) && memcmp(t->s, s, t->len) == 0;
}


/* Decimal, 0x hex, optionally negative (two's complement). */
static bool
parse_num(const tok_t *t, uint64_t *out)
{
    const char *p;
    bool neg = false;
    uint64_t v = 0;
    unsigned d;

    p = t->s;
    if (*p == '-') {
        neg = true;
        p++;
    }
    if (*p == '\0') {
        return false;
    }

    if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
        p += 2;
        if (*p == '\0') {
            return false;
        }
        for (; *p; p++) {
            if (*p >= '0' && *p <= '9') {
                d = (unsigned) (*p - '0');
            } else if (*p >= 'a' && *p <= 'f') {
                d = (unsigned) (*p - 'a' + 10);
            } else if (*p >= 'A' && *p <= 'F') {
                d = (unsigned) (*p - 'A' + 10);
            } else {
                return false;
            }
            v = v * 16 + d;
        }
    } else {
        for (; *p; p++) {
            if (*p < '0' || *p > '9') {
                return false;
            }
            v = v * 10 + (uint64_t) (*p - '0');
        }
    }

    if ((size_t) (p - t->s) != t->len) {
        return false;      /* an embedded NUL */
    }

    *out = neg ? (uint64_t) 0 - v : v;
    return true;
}


typedef struct {
    const char *name;
    uint32_t value;
} sym_t;

/* A symbolic name from `syms` or a number (any u32, to test bad values). */
static bool
parse_sym(const tok_t *t, const sym_t *syms, uint32_t *out)
{
    uint64_t v;

    for (; syms->name != NULL; syms++) {
        if (tok_is(t, syms->name)) {
            *out = syms->value;
            return true;
        }
    }

    if (parse_num(t, &v)) {
        *out = (uint32_t) v;
        return true;
    }

    return false;
}


static const sym_t map_syms[] = {
    { "request", 0 }, { "request_headers", 0 }, { "request_trailers", 1 },
    { "response", 2 }, { "response_headers", 2 },
    { "response_trailers", 3 }, { "grpc_initial_metadata", 4 },
    { "grpc_trailing_metadata", 5 }, { "call_headers", 6 },
    { "http_call_response_headers", 6 }, { "call_trailers", 7 },
    { "http_call_response_trailers", 7 }, { NULL, 0 }
};

static const sym_t buffer_syms[] = {
    { "request_body", 0 }, { "response_body", 1 },
    { "downstream_data", 2 }, { "downstream", 2 },
    { "upstream_data", 3 }, { "upstream", 3 },
    { "call_body", 4 }, { "http_call_response_body", 4 },
    { "grpc_message", 5 }, { "vm_config", 6 }, { "vm_configuration", 6 },
    { "config", 7 }, { "plugin_configuration", 7 },
    { "foreign_args", 8 }, { "foreign_function_arguments", 8 },
    { NULL, 0 }
};

static const sym_t stream_syms[] = {
    { "request", 0 }, { "response", 1 }, { "downstream", 2 },
    { "upstream", 3 }, { NULL, 0 }
};

static const sym_t level_syms[] = {
    { "trace", 0 }, { "debug", 1 }, { "info", 2 }, { "warn", 3 },
    { "error", 4 }, { "critical", 5 }, { NULL, 0 }
};

static const sym_t metric_syms[] = {
    { "counter", 0 }, { "gauge", 1 }, { "histogram", 2 }, { NULL, 0 }
};

static const sym_t return_syms[] = {
    { "continue", 0 }, { "pause", 1 }, { "false", 0 }, { "true", 1 },
    { NULL, 0 }
};


static uint32_t
default_map(const env_t *e)
{
    switch (e->ev) {
    case EV_REQUEST_TRAILERS:
        return PX_MAP_HTTP_REQUEST_TRAILERS;
    case EV_RESPONSE_HEADERS:
    case EV_RESPONSE_BODY:
        return PX_MAP_HTTP_RESPONSE_HEADERS;
    case EV_RESPONSE_TRAILERS:
        return PX_MAP_HTTP_RESPONSE_TRAILERS;
    case EV_HTTP_CALL_RESPONSE:
        return PX_MAP_HTTP_CALL_RESPONSE_HEADERS;
    case EV_GRPC_INITIAL_METADATA:
        return PX_MAP_GRPC_CALL_INITIAL_METADATA;
    case EV_GRPC_TRAILING_METADATA:
        return PX_MAP_GRPC_CALL_TRAILING_METADATA;
    default:
        return PX_MAP_HTTP_REQUEST_HEADERS;
    }
}


static uint32_t
default_buffer(const env_t *e)
{
    switch (e->ev) {
    case EV_RESPONSE_HEADERS:
    case EV_RESPONSE_BODY:
    case EV_RESPONSE_TRAILERS:
        return PX_BUFFER_HTTP_RESPONSE_BODY;
    case EV_DOWNSTREAM_DATA:
        return PX_BUFFER_DOWNSTREAM_DATA;
    case EV_UPSTREAM_DATA:
        return PX_BUFFER_UPSTREAM_DATA;
    case EV_HTTP_CALL_RESPONSE:
        return PX_BUFFER_HTTP_CALL_RESPONSE_BODY;
    case EV_GRPC_RECEIVE:
        return PX_BUFFER_GRPC_CALL_MESSAGE;
    case EV_VM_START:
        return PX_BUFFER_VM_CONFIGURATION;
    case EV_CONFIGURE:
        return PX_BUFFER_PLUGIN_CONFIGURATION;
    case EV_FOREIGN_FUNCTION:
        return PX_BUFFER_FOREIGN_FUNCTION_ARGUMENTS;
    default:
        return PX_BUFFER_HTTP_REQUEST_BODY;
    }
}


static uint32_t
default_stream(const env_t *e)
{
    switch (e->ev) {
    case EV_RESPONSE_HEADERS:
    case EV_RESPONSE_BODY:
    case EV_RESPONSE_TRAILERS:
        return PX_STREAM_HTTP_RESPONSE;
    case EV_NEW_CONNECTION:
    case EV_DOWNSTREAM_DATA:
    case EV_DOWNSTREAM_CLOSE:
        return PX_STREAM_DOWNSTREAM;
    case EV_UPSTREAM_DATA:
    case EV_UPSTREAM_CLOSE:
        return PX_STREAM_UPSTREAM;
    default:
        return PX_STREAM_HTTP_REQUEST;
    }
}


/*
 * Optional leading map argument: with `argc` one more than `needed` the
 * first argument is the map. Returns the index of the first other argument.
 */
static int
map_arg(const env_t *e, int argc, tok_t *argv, int needed, uint32_t *map,
    bool *ok)
{
    *ok = true;
    *map = default_map(e);

    if (argc - 1 > needed) {
        if (!parse_sym(&argv[1], map_syms, map)) {
            cmd_error(argv[0].s, "unknown map");
            *ok = false;
        }
        return 2;
    }

    return 1;
}


static bool
ctx_arg(const env_t *e, const tok_t *t, uint32_t *ctx)
{
    uint64_t v;

    if (tok_is(t, "self") || tok_is(t, "caller")) {
        *ctx = e->ctx;
    } else if (tok_is(t, "root")) {
        *ctx = e->root;
    } else if (parse_num(t, &v)) {
        *ctx = (uint32_t) v;
    } else {
        return false;
    }
    return true;
}


/* A number, "last" (given), or a name from `tab`. */
static bool
id_arg(const tok_t *t, uint32_t last, const named_t *tab, int n,
    uint32_t *id)
{
    uint64_t v;
    int i;

    if (tok_is(t, "last")) {
        *id = last;
        return true;
    }
    if (parse_num(t, &v)) {
        *id = (uint32_t) v;
        return true;
    }
    for (i = 0; i < n; i++) {
        if (strcmp(tab[i].name, t->s) == 0) {
            *id = tab[i].id;
            return true;
        }
    }
    return false;
}


static void
remember(named_t *tab, int *n, const char *name, uint32_t id)
{
    int i;

    for (i = 0; i < *n; i++) {
        if (strcmp(tab[i].name, name) == 0) {
            tab[i].id = id;
            return;
        }
    }
    if (*n < NAMED_MAX && strlen(name) < sizeof(tab[0].name)) {
        strcpy(tab[*n].name, name);
        tab[*n].id = id;
        (*n)++;
    }
}


/*
 * Headers given as name=value tokens (split at the first '='). The array
 * points into the tokens, whose '=' is temporarily a NUL: call
 * headers_restore() after use.
 */
static px_header_t *
headers_from(int argc, tok_t *argv, size_t *n)
{
    px_header_t *h;
    char *eq;
    int i;

    *n = 0;
    h = calloc((size_t) (argc > 0 ? argc : 1), sizeof(px_header_t));
    if (h == NULL) {
        return NULL;
    }

    for (i = 0; i < argc; i++) {
        eq = strchr(argv[i].s, '=');
        if (eq == NULL) {
            h[*n].name = argv[i].s;
            h[*n].value = "";
        } else {
            *eq = '\0';
            h[*n].name = argv[i].s;
            h[*n].value = eq + 1;
        }
        (*n)++;
    }

    return h;
}


static void
headers_restore(int argc, tok_t *argv)
{
    int i;
    size_t l;

    for (i = 0; i < argc; i++) {
        l = strlen(argv[i].s);
        if (l < argv[i].len) {
            argv[i].s[l] = '=';
        }
    }
}


/* ---- commands: control --------------------------------------------------- */

static void
cmd_return(env_t *e, int argc, tok_t *argv)
{
    uint32_t v;

    if (!parse_sym(&argv[1], return_syms, &v)) {
        cmd_error("return", "bad value");
        return;
    }
    e->ret = v;
    e->stop = true;
}


static void
cmd_trace(env_t *e, int argc, tok_t *argv)
{
    script_t *s;

    s = (e->ev == EV_VM_START) ? &vm_script : px_get_context_data(e->root);
    if (s != NULL) {
        s->trace = true;
    }
    if (e->ev == EV_VM_START) {
        vm_trace = true;
    }
}


static void
cmd_unreachable(env_t *e, int argc, tok_t *argv)
{
    __builtin_trap();
}


static void
cmd_loop(env_t *e, int argc, tok_t *argv)
{
    volatile uint32_t n = 0;

    for ( ;; ) {
        n++;
    }
}


static void
cmd_loop_hostcall(env_t *e, int argc, tok_t *argv)
{
    uint64_t t;

    for ( ;; ) {
        proxy_get_current_time_nanoseconds(&t);
    }
}


static void
cmd_exit(env_t *e, int argc, tok_t *argv)
{
    uint64_t code;

    if (!parse_num(&argv[1], &code)) {
        cmd_error("exit", "bad code");
        return;
    }
    __wasi_proc_exit((__wasi_exitcode_t) code);
}


static void
cmd_memory_grow(env_t *e, int argc, tok_t *argv)
{
    uint64_t pages;
    long old;

    if (!parse_num(&argv[1], &pages)) {
        cmd_error("memory_grow", "bad page count");
        return;
    }
    old = (long) __builtin_wasm_memory_grow(0, (size_t) pages);
    px_logf(PX_LOG_INFO, "value memory_grow = %ld", old);
}


static void
cmd_log(env_t *e, int argc, tok_t *argv)
{
    uint32_t level;
    size_t len, off;
    char *msg;
    int i;

    if (!parse_sym(&argv[1], level_syms, &level)) {
        cmd_error("log", "bad level");
        return;
    }

    len = 0;
    for (i = 2; i < argc; i++) {
        len += argv[i].len + 1;
    }
    msg = malloc(len + 1);
    if (msg == NULL) {
        return;
    }
    off = 0;
    for (i = 2; i < argc; i++) {
        memcpy(msg + off, argv[i].s, argv[i].len);
        off += argv[i].len;
        if (i + 1 < argc) {
            msg[off++] = ' ';
        }
    }

    status("proxy_log", proxy_log(level, msg, off));
    free(msg);
}


static void
cmd_fd_write(env_t *e, int argc, tok_t *argv)
{
    uint64_t fd;
    __wasi_ciovec_t iov;
    __wasi_size_t n = 0;

    if (!parse_num(&argv[1], &fd)) {
        cmd_error("fd_write", "bad fd");
        return;
    }
    iov.buf = (const uint8_t *) argv[2].s;
    iov.buf_len = argv[2].len;
    status("fd_write", __wasi_fd_write((__wasi_fd_t) fd, &iov, 1, &n));
    value_num("fd_write", n);
}


static void
cmd_clock(env_t *e, int argc, tok_t *argv)
{
    uint64_t id;
    __wasi_timestamp_t t = 0;

    if (!parse_num(&argv[1], &id)) {
        cmd_error("clock", "bad clock id");
        return;
    }
    status("clock_time_get",
           __wasi_clock_time_get((__wasi_clockid_t) id, 1, &t));
    value_num("clock", t);
}


static void
cmd_random(env_t *e, int argc, tok_t *argv)
{
    uint64_t len;
    uint8_t *buf;

    if (!parse_num(&argv[1], &len) || len > 16 * 1024 * 1024) {
        cmd_error("random", "bad length");
        return;
    }
    buf = malloc(len ? len : 1);
    if (buf == NULL) {
        return;
    }
    status("random_get", __wasi_random_get(buf, (__wasi_size_t) len));
    free(buf);
}


static void
cmd_environ(env_t *e, int argc, tok_t *argv)
{
    __wasi_size_t count = 0, size = 0, i;
    uint8_t **vars, *buf;
    __wasi_errno_t rc;

    rc = __wasi_environ_sizes_get(&count, &size);
    status("environ_sizes_get", rc);
    if (rc != 0) {
        return;
    }

    vars = calloc(count + 1, sizeof(uint8_t *));
    buf = malloc(size + 1);
    if (vars != NULL && buf != NULL) {
        rc = __wasi_environ_get(vars, buf);
        status("environ_get", rc);
        for (i = 0; rc == 0 && i < count; i++) {
            value("environ", (const char *) vars[i],
                  strnlen((const char *) vars[i],
                          size - (size_t) (vars[i] - buf)));
        }
    }
    free(vars);
    free(buf);
}


static void
cmd_args(env_t *e, int argc, tok_t *argv)
{
    __wasi_size_t count = 0, size = 0;

    status("args_sizes_get", __wasi_args_sizes_get(&count, &size));
    value_num("argc", count);
    value_num("argv_size", size);
}


/* ---- commands: plain host calls ------------------------------------------ */

static void
cmd_log_level(env_t *e, int argc, tok_t *argv)
{
#if PX_ABI_VERSION >= PX_ABI_0_2_1
    uint32_t level = 0, rc;

    rc = proxy_get_log_level(&level);
    status("proxy_get_log_level", rc);
    if (rc == PX_OK) {
        value_num("log_level", level);
    }
#else
    cmd_error("log_level", "not in this ABI version");
#endif
}


static void
cmd_time(env_t *e, int argc, tok_t *argv)
{
    uint64_t t = 0;
    uint32_t rc;

    rc = proxy_get_current_time_nanoseconds(&t);
    status("proxy_get_current_time_nanoseconds", rc);
    value_num("time", t);
}


static void
cmd_set_tick(env_t *e, int argc, tok_t *argv)
{
    uint64_t ms;

    if (!parse_num(&argv[1], &ms)) {
        cmd_error("set_tick", "bad period");
        return;
    }
    status("proxy_set_tick_period_milliseconds",
           proxy_set_tick_period_milliseconds((uint32_t) ms));
}


static void
cmd_done(env_t *e, int argc, tok_t *argv)
{
    status("proxy_done", proxy_done());
}


static void
cmd_set_effective_context(env_t *e, int argc, tok_t *argv)
{
    uint32_t ctx;

    if (!ctx_arg(e, &argv[1], &ctx)) {
        cmd_error("set_effective_context", "bad context");
        return;
    }
    status("proxy_set_effective_context", px_set_effective_context(ctx));
}


static void
stream_call(env_t *e, int argc, tok_t *argv, bool close)
{
    uint32_t stream;

    stream = default_stream(e);
    if (argc > 1 && !parse_sym(&argv[1], stream_syms, &stream)) {
        cmd_error(argv[0].s, "bad stream");
        return;
    }

#if PX_ABI_VERSION == PX_ABI_0_1_0
    if (close) {
        cmd_error(argv[0].s, "not in this ABI version");
    } else if (stream == PX_STREAM_HTTP_REQUEST) {
        status("proxy_continue_request", proxy_continue_request());
    } else if (stream == PX_STREAM_HTTP_RESPONSE) {
        status("proxy_continue_response", proxy_continue_response());
    } else {
        cmd_error(argv[0].s, "only request/response in this ABI version");
    }
#else
    if (close) {
        status("proxy_close_stream", proxy_close_stream(stream));
    } else {
        status("proxy_continue_stream", proxy_continue_stream(stream));
    }
#endif
}


static void
cmd_continue_stream(env_t *e, int argc, tok_t *argv)
{
    stream_call(e, argc, argv, false);
}


static void
cmd_close_stream(env_t *e, int argc, tok_t *argv)
{
    stream_call(e, argc, argv, true);
}


static void
cmd_continue_request(env_t *e, int argc, tok_t *argv)
{
    tok_t t[2] = { argv[0], { "request", 7 } };

    stream_call(e, 2, t, false);
}


static void
cmd_continue_response(env_t *e, int argc, tok_t *argv)
{
    tok_t t[2] = { argv[0], { "response", 8 } };

    stream_call(e, 2, t, false);
}


static void
cmd_clear_route_cache(env_t *e, int argc, tok_t *argv)
{
#if PX_ABI_VERSION == PX_ABI_0_1_0
    status("proxy_clear_route_cache", proxy_clear_route_cache());
#else
    cmd_error("clear_route_cache", "not in this ABI version");
#endif
}


static void
cmd_get_status(env_t *e, int argc, tok_t *argv)
{
    uint32_t code = 0;
    char *msg;
    size_t len;
    px_status_t rc;

    rc = px_get_status(&code, &msg, &len);
    status("proxy_get_status", rc);
    if (rc == PX_OK) {
        value_num("status_code", code);
        value("status_message", msg, len);
        free(msg);
    }
}


static void
local_response(int argc, tok_t *argv, uint32_t code, const tok_t *details,
    const tok_t *body, int32_t grpc)
{
    px_header_t *h;
    char *ser;
    size_t n, slen;
    px_status_t rc;

    h = headers_from(argc, argv, &n);
    if (h == NULL) {
        return;
    }
    rc = px_serialize_headers(h, n, &ser, &slen);
    headers_restore(argc, argv);
    free(h);
    if (rc != PX_OK) {
        cmd_error("send_local_response", "cannot serialize headers");
        return;
    }

    status("proxy_send_local_response",
           proxy_send_local_response(code, details ? details->s : "",
                                     details ? details->len : 0, body->s,
                                     body->len, ser, slen, grpc));
    free(ser);
}


static void
cmd_send_local_response(env_t *e, int argc, tok_t *argv)
{
    uint64_t code;
    tok_t empty = { "", 0 };

    if (!parse_num(&argv[1], &code)) {
        cmd_error("send_local_response", "bad status code");
        return;
    }
    local_response(argc > 3 ? argc - 3 : 0, argv + (argc > 3 ? 3 : argc),
                   (uint32_t) code, NULL,
                   argc > 2 ? &argv[2] : &empty, PX_GRPC_STATUS_NONE);
}


static void
cmd_send_local_response_full(env_t *e, int argc, tok_t *argv)
{
    uint64_t code, grpc;

    if (!parse_num(&argv[1], &code) || !parse_num(&argv[4], &grpc)) {
        cmd_error("send_local_response_full", "bad number");
        return;
    }
    local_response(argc - 5, argv + 5, (uint32_t) code, &argv[2], &argv[3],
                   (int32_t) grpc);
}


/* ---- commands: callouts -------------------------------------------------- */

static void
cmd_http_call(env_t *e, int argc, tok_t *argv)
{
    uint64_t timeout;
    uint32_t token = 0;
    px_header_t *h;
    size_t n;
    px_status_t rc;

    if (!parse_num(&argv[2], &timeout)) {
        cmd_error("http_call", "bad timeout");
        return;
    }
    h = headers_from(argc - 4, argv + 4, &n);
    if (h == NULL) {
        return;
    }
    rc = px_http_call(argv[1].s, h, n, argv[3].s, argv[3].len, NULL, 0,
                      (uint32_t) timeout, &token);
    headers_restore(argc - 4, argv + 4);
    free(h);

    status("proxy_http_call", rc);
    if (rc == PX_OK) {
        last_http = token;
        value_num("http_call", token);
    }
}


static void
cmd_grpc_call(env_t *e, int argc, tok_t *argv)
{
    uint64_t timeout;
    uint32_t token = 0;
    px_header_t *h;
    size_t n;
    px_status_t rc;

    if (!parse_num(&argv[4], &timeout)) {
        cmd_error("grpc_call", "bad timeout");
        return;
    }
    h = headers_from(argc - 6, argv + 6, &n);
    if (h == NULL) {
        return;
    }
    rc = px_grpc_call(argv[1].s, argv[2].s, argv[3].s, h, n, argv[5].s,
                      argv[5].len, (uint32_t) timeout, &token);
    headers_restore(argc - 6, argv + 6);
    free(h);

    status("proxy_grpc_call", rc);
    if (rc == PX_OK) {
        last_grpc = token;
        value_num("grpc_call", token);
    }
}


static void
cmd_grpc_stream(env_t *e, int argc, tok_t *argv)
{
    uint32_t token = 0;
    px_header_t *h;
    size_t n;
    px_status_t rc;

    h = headers_from(argc - 4, argv + 4, &n);
    if (h == NULL) {
        return;
    }
    rc = px_grpc_stream(argv[1].s, argv[2].s, argv[3].s, h, n, &token);
    headers_restore(argc - 4, argv + 4);
    free(h);

    status("proxy_grpc_stream", rc);
    if (rc == PX_OK) {
        last_grpc = token;
        value_num("grpc_call", token);
    }
}


static void
cmd_grpc_send(env_t *e, int argc, tok_t *argv)
{
    uint32_t token;
    uint64_t eos;

    if (!id_arg(&argv[1], last_grpc, NULL, 0, &token)
        || !parse_num(&argv[3], &eos))
    {
        cmd_error("grpc_send", "bad token or end_stream");
        return;
    }
    status("proxy_grpc_send",
           proxy_grpc_send(token, argv[2].s, argv[2].len, (uint32_t) eos));
}


static void
cmd_grpc_cancel(env_t *e, int argc, tok_t *argv)
{
    uint32_t token;

    if (!id_arg(&argv[1], last_grpc, NULL, 0, &token)) {
        cmd_error("grpc_cancel", "bad token");
        return;
    }
    status("proxy_grpc_cancel", px_grpc_cancel(token));
}


static void
cmd_grpc_close(env_t *e, int argc, tok_t *argv)
{
    uint32_t token;

    if (!id_arg(&argv[1], last_grpc, NULL, 0, &token)) {
        cmd_error("grpc_close", "bad token");
        return;
    }
    status("proxy_grpc_close", px_grpc_close(token));
}


/* ---- commands: headers --------------------------------------------------- */

static void
cmd_get_header(env_t *e, int argc, tok_t *argv)
{
    uint32_t map, rc;
    char *v = NULL;
    size_t len = 0;
    bool ok;
    int i;

    i = map_arg(e, argc, argv, 1, &map, &ok);
    if (!ok) {
        return;
    }
    rc = proxy_get_header_map_value(map, argv[i].s, argv[i].len, &v, &len);
    status("proxy_get_header_map_value", rc);
    if (rc == PX_OK) {
        value(argv[i].s, v ? v : "", v ? len : 0);
    }
    free(v);
}


static void
cmd_add_header(env_t *e, int argc, tok_t *argv)
{
    uint32_t map;
    bool ok;
    int i;

    i = map_arg(e, argc, argv, 2, &map, &ok);
    if (!ok) {
        return;
    }
    status("proxy_add_header_map_value",
           proxy_add_header_map_value(map, argv[i].s, argv[i].len,
                                      argv[i + 1].s, argv[i + 1].len));
}


static void
cmd_replace_header(env_t *e, int argc, tok_t *argv)
{
    uint32_t map;
    bool ok;
    int i;

    i = map_arg(e, argc, argv, 2, &map, &ok);
    if (!ok) {
        return;
    }
    status("proxy_replace_header_map_value",
           proxy_replace_header_map_value(map, argv[i].s, argv[i].len,
                                          argv[i + 1].s, argv[i + 1].len));
}


static void
cmd_remove_header(env_t *e, int argc, tok_t *argv)
{
    uint32_t map;
    bool ok;
    int i;

    i = map_arg(e, argc, argv, 1, &map, &ok);
    if (!ok) {
        return;
    }
    status("proxy_remove_header_map_value",
           proxy_remove_header_map_value(map, argv[i].s, argv[i].len));
}


static void
cmd_get_headers(env_t *e, int argc, tok_t *argv)
{
    uint32_t map;
    size_t i;
    bool ok;
    px_headers_t h;
    px_status_t rc;
    char *k, *v;

    map_arg(e, argc, argv, 0, &map, &ok);
    if (!ok) {
        return;
    }
    rc = px_get_headers(map, &h);
    status("proxy_get_header_map_pairs", rc);
    if (rc != PX_OK) {
        return;
    }

    value_num("headers", h.count);
    for (i = 0; i < h.count; i++) {
        k = escape(h.pairs[i].name, h.pairs[i].name_len);
        v = escape(h.pairs[i].value, h.pairs[i].value_len);
        if (k != NULL && v != NULL) {
            px_logf(PX_LOG_INFO, "header %s: %s", k, v);
        }
        free(k);
        free(v);
    }
    px_headers_free(&h);
}


static void
cmd_set_headers(env_t *e, int argc, tok_t *argv)
{
    uint32_t map;
    px_header_t *h;
    size_t n;
    int i;
    px_status_t rc;

    map = default_map(e);
    i = 1;
    if (argc > 1 && memchr(argv[1].s, '=', argv[1].len) == NULL) {
        if (!parse_sym(&argv[1], map_syms, &map)) {
            cmd_error("set_headers", "unknown map");
            return;
        }
        i = 2;
    }

    h = headers_from(argc - i, argv + i, &n);
    if (h == NULL) {
        return;
    }
    rc = px_set_headers(map, h, n);
    headers_restore(argc - i, argv + i);
    free(h);
    status("proxy_set_header_map_pairs", rc);
}


static void
cmd_header_map_size(env_t *e, int argc, tok_t *argv)
{
    uint32_t map, rc;
    size_t size = 0;
    bool ok;

    map_arg(e, argc, argv, 0, &map, &ok);
    if (!ok) {
        return;
    }
    rc = proxy_get_header_map_size(map, &size);
    status("proxy_get_header_map_size", rc);
    if (rc == PX_OK) {
        value_num("header_map_size", size);
    }
}


/* ---- commands: buffers --------------------------------------------------- */

static void
get_buffer(uint32_t type, uint32_t start, uint32_t max)
{
    char *p = NULL;
    size_t n = 0;
    uint32_t rc;

    rc = proxy_get_buffer_bytes(type, start, max, &p, &n);
    status("proxy_get_buffer_bytes", rc);
    if (rc == PX_OK) {
        value("buffer", p ? p : "", p ? n : 0);
    }
    free(p);
}


static void
cmd_get_buffer(env_t *e, int argc, tok_t *argv)
{
    uint32_t type;
    uint64_t start = 0, max = UINT32_MAX;

    if (!parse_sym(&argv[1], buffer_syms, &type)
        || (argc > 2 && !parse_num(&argv[2], &start))
        || (argc > 3 && !parse_num(&argv[3], &max)))
    {
        cmd_error("get_buffer", "bad argument");
        return;
    }
    get_buffer(type, (uint32_t) start, (uint32_t) max);
}


static void
cmd_get_body(env_t *e, int argc, tok_t *argv)
{
    uint64_t start = 0, max = UINT32_MAX;

    if ((argc > 1 && !parse_num(&argv[1], &start))
        || (argc > 2 && !parse_num(&argv[2], &max)))
    {
        cmd_error("get_body", "bad argument");
        return;
    }
    get_buffer(default_buffer(e), (uint32_t) start, (uint32_t) max);
}


static void
cmd_set_buffer(env_t *e, int argc, tok_t *argv)
{
    uint32_t type;
    uint64_t start, size;

    if (!parse_sym(&argv[1], buffer_syms, &type)
        || !parse_num(&argv[2], &start) || !parse_num(&argv[3], &size))
    {
        cmd_error("set_buffer", "bad argument");
        return;
    }
    status("proxy_set_buffer_bytes",
           proxy_set_buffer_bytes(type, (uint32_t) start, (uint32_t) size,
                                  argv[4].s, argv[4].len));
}


static void
cmd_set_body(env_t *e, int argc, tok_t *argv)
{
    uint32_t type, flags = 0, rc;
    size_t len = 0;

    type = default_buffer(e);
    rc = proxy_get_buffer_status(type, &len, &flags);
    status("proxy_get_buffer_status", rc);
    if (rc != PX_OK) {
        return;
    }
    status("proxy_set_buffer_bytes",
           proxy_set_buffer_bytes(type, 0, (uint32_t) len, argv[1].s,
                                  argv[1].len));
}


static void
cmd_buffer_status(env_t *e, int argc, tok_t *argv)
{
    uint32_t type, flags = 0, rc;
    size_t len = 0;

    type = default_buffer(e);
    if (argc > 1 && !parse_sym(&argv[1], buffer_syms, &type)) {
        cmd_error("buffer_status", "bad buffer");
        return;
    }
    rc = proxy_get_buffer_status(type, &len, &flags);
    status("proxy_get_buffer_status", rc);
    if (rc == PX_OK) {
        px_logf(PX_LOG_INFO, "value buffer_status = size=%zu flags=%u", len,
                flags);
    }
}


static void
cmd_get_config(env_t *e, int argc, tok_t *argv)
{
    char *p = NULL;
    size_t n = 0;
    uint32_t rc;

#if PX_ABI_VERSION == PX_ABI_0_1_0
    rc = proxy_get_configuration(&p, &n);
    status("proxy_get_configuration", rc);
#else
    rc = proxy_get_buffer_bytes(PX_BUFFER_PLUGIN_CONFIGURATION, 0,
                                UINT32_MAX, &p, &n);
    status("proxy_get_buffer_bytes", rc);
#endif
    if (rc == PX_OK) {
        value("config", p ? p : "", p ? n : 0);
    }
    free(p);
}


/* ---- commands: shared data, queues, metrics ------------------------------ */

static void
cmd_get_shared(env_t *e, int argc, tok_t *argv)
{
    char *p = NULL;
    size_t n = 0;
    uint32_t cas = 0, rc;

    rc = proxy_get_shared_data(argv[1].s, argv[1].len, &p, &n, &cas);
    status("proxy_get_shared_data", rc);
    if (rc == PX_OK) {
        last_cas = cas;
        value("shared", p ? p : "", p ? n : 0);
        value_num("cas", cas);
    }
    free(p);
}


static void
cmd_set_shared(env_t *e, int argc, tok_t *argv)
{
    uint64_t cas = 0;

    if (argc > 3) {
        if (tok_is(&argv[3], "last")) {
            cas = last_cas;
        } else if (!parse_num(&argv[3], &cas)) {
            cmd_error("set_shared", "bad cas");
            return;
        }
    }
    status("proxy_set_shared_data",
           proxy_set_shared_data(argv[1].s, argv[1].len, argv[2].s,
                                 argv[2].len, (uint32_t) cas));
}


static void
cmd_register_queue(env_t *e, int argc, tok_t *argv)
{
    uint32_t qid = 0, rc;

    rc = proxy_register_shared_queue(argv[1].s, argv[1].len, &qid);
    status("proxy_register_shared_queue", rc);
    if (rc == PX_OK) {
        last_queue = qid;
        remember(queues, &nqueues, argv[1].s, qid);
        value_num("queue", qid);
    }
}


static void
cmd_resolve_queue(env_t *e, int argc, tok_t *argv)
{
    uint32_t qid = 0, rc;

    rc = proxy_resolve_shared_queue(argv[1].s, argv[1].len, argv[2].s,
                                    argv[2].len, &qid);
    status("proxy_resolve_shared_queue", rc);
    if (rc == PX_OK) {
        last_queue = qid;
        remember(queues, &nqueues, argv[2].s, qid);
        value_num("queue", qid);
    }
}


static void
cmd_enqueue(env_t *e, int argc, tok_t *argv)
{
    uint32_t qid;

    if (!id_arg(&argv[1], last_queue, queues, nqueues, &qid)) {
        cmd_error("enqueue", "unknown queue");
        return;
    }
    status("proxy_enqueue_shared_queue",
           proxy_enqueue_shared_queue(qid, argv[2].s, argv[2].len));
}


static uint32_t
dequeue_one(uint32_t qid)
{
    char *p = NULL;
    size_t n = 0;
    uint32_t rc;

    rc = proxy_dequeue_shared_queue(qid, &p, &n);
    status("proxy_dequeue_shared_queue", rc);
    if (rc == PX_OK) {
        value("dequeue", p ? p : "", p ? n : 0);
    }
    free(p);

    return rc;
}


static void
cmd_dequeue(env_t *e, int argc, tok_t *argv)
{
    uint32_t qid;

    if (!id_arg(&argv[1], last_queue, queues, nqueues, &qid)) {
        cmd_error("dequeue", "unknown queue");
        return;
    }
    dequeue_one(qid);
}


static void
cmd_dequeue_all(env_t *e, int argc, tok_t *argv)
{
    uint32_t qid;
    int i;

    if (!id_arg(&argv[1], last_queue, queues, nqueues, &qid)) {
        cmd_error("dequeue_all", "unknown queue");
        return;
    }
    for (i = 0; i < 100000 && dequeue_one(qid) == PX_OK; i++) {
        /* drain */
    }
}


static void
cmd_define_metric(env_t *e, int argc, tok_t *argv)
{
    uint32_t type, id = 0, rc;

    if (!parse_sym(&argv[1], metric_syms, &type)) {
        cmd_error("define_metric", "bad metric type");
        return;
    }
    rc = proxy_define_metric(type, argv[2].s, argv[2].len, &id);
    status("proxy_define_metric", rc);
    if (rc == PX_OK) {
        last_metric = id;
        remember(metrics, &nmetrics, argv[2].s, id);
        value_num("metric", id);
    }
}


static void
cmd_increment_metric(env_t *e, int argc, tok_t *argv)
{
    uint32_t id;
    uint64_t delta;

    if (!id_arg(&argv[1], last_metric, metrics, nmetrics, &id)
        || !parse_num(&argv[2], &delta))
    {
        cmd_error("increment_metric", "bad argument");
        return;
    }
    status("proxy_increment_metric",
           proxy_increment_metric(id, (int64_t) delta));
}


static void
cmd_record_metric(env_t *e, int argc, tok_t *argv)
{
    uint32_t id;
    uint64_t v;

    if (!id_arg(&argv[1], last_metric, metrics, nmetrics, &id)
        || !parse_num(&argv[2], &v))
    {
        cmd_error("record_metric", "bad argument");
        return;
    }
    status("proxy_record_metric", proxy_record_metric(id, v));
}


static void
cmd_get_metric(env_t *e, int argc, tok_t *argv)
{
    uint32_t id, rc;
    uint64_t v = 0;

    if (!id_arg(&argv[1], last_metric, metrics, nmetrics, &id)) {
        cmd_error("get_metric", "bad argument");
        return;
    }
    rc = proxy_get_metric(id, &v);
    status("proxy_get_metric", rc);
    if (rc == PX_OK) {
        value_num("metric_value", v);
    }
}


/* ---- commands: properties and foreign functions -------------------------- */

/* Tokens joined by NUL (a token may itself contain NULs). */
static char *
join_path(int argc, tok_t *argv, size_t *len)
{
    size_t n;
    int i;
    char *p;

    n = 0;
    for (i = 0; i < argc; i++) {
        n += argv[i].len + 1;
    }
    p = malloc(n ? n : 1);
    if (p == NULL) {
        return NULL;
    }
    n = 0;
    for (i = 0; i < argc; i++) {
        memcpy(p + n, argv[i].s, argv[i].len);
        n += argv[i].len;
        if (i + 1 < argc) {
            p[n++] = '\0';
        }
    }
    *len = n;
    return p;
}


static void
cmd_get_property(env_t *e, int argc, tok_t *argv)
{
    char *path, *p = NULL;
    size_t plen, n = 0;
    uint32_t rc;

    path = join_path(argc - 1, argv + 1, &plen);
    if (path == NULL) {
        return;
    }
    rc = proxy_get_property(path, plen, &p, &n);
    free(path);
    status("proxy_get_property", rc);
    if (rc == PX_OK) {
        value("property", p ? p : "", p ? n : 0);
    }
    free(p);
}


static void
cmd_set_property(env_t *e, int argc, tok_t *argv)
{
    char *path;
    size_t plen;

    path = join_path(argc - 2, argv + 1, &plen);
    if (path == NULL) {
        return;
    }
    status("proxy_set_property",
           proxy_set_property(path, plen, argv[argc - 1].s,
                              argv[argc - 1].len));
    free(path);
}


static void
cmd_call_foreign(env_t *e, int argc, tok_t *argv)
{
    char *p = NULL;
    size_t n = 0;
    uint32_t rc;
    tok_t empty = { "", 0 };
    const tok_t *args;

    args = argc > 2 ? &argv[2] : &empty;
    rc = proxy_call_foreign_function(argv[1].s, argv[1].len, args->s,
                                     args->len, &p, &n);
    status("proxy_call_foreign_function", rc);
    if (rc == PX_OK) {
        value("foreign", p ? p : "", p ? n : 0);
    }
    free(p);
}


/* ---- raw host calls ------------------------------------------------------ */

enum {
    R_LOG, R_GET_LOG_LEVEL, R_TIME, R_TICK, R_GET_CONFIGURATION,
    R_CONTINUE_REQUEST, R_CONTINUE_RESPONSE, R_CLEAR_ROUTE_CACHE,
    R_CONTINUE_STREAM, R_CLOSE_STREAM, R_DONE, R_SET_EFFECTIVE_CONTEXT,
    R_GET_BUFFER_BYTES, R_SET_BUFFER_BYTES, R_GET_BUFFER_STATUS,
    R_GET_MAP_SIZE, R_GET_MAP_PAIRS, R_SET_MAP_PAIRS, R_GET_MAP_VALUE,
    R_ADD_MAP_VALUE, R_REPLACE_MAP_VALUE, R_REMOVE_MAP_VALUE, R_GET_STATUS,
    R_SEND_LOCAL_RESPONSE, R_HTTP_CALL, R_GRPC_CALL, R_GRPC_STREAM,
    R_GRPC_SEND, R_GRPC_CANCEL, R_GRPC_CLOSE, R_GET_SHARED, R_SET_SHARED,
    R_REGISTER_QUEUE, R_RESOLVE_QUEUE, R_ENQUEUE, R_DEQUEUE,
    R_DEFINE_METRIC, R_INCREMENT_METRIC, R_RECORD_METRIC, R_GET_METRIC,
    R_GET_PROPERTY, R_SET_PROPERTY, R_CALL_FOREIGN
};

static const struct {
    const char *name;
    int id;
} raw_calls[] = {
    { "proxy_log", R_LOG },
#if PX_ABI_VERSION >= PX_ABI_0_2_1
    { "proxy_get_log_level", R_GET_LOG_LEVEL },
#endif
    { "proxy_get_current_time_nanoseconds", R_TIME },
    { "proxy_set_tick_period_milliseconds", R_TICK },
#if PX_ABI_VERSION == PX_ABI_0_1_0
    { "proxy_get_configuration", R_GET_CONFIGURATION },
    { "proxy_continue_request", R_CONTINUE_REQUEST },
    { "proxy_continue_response", R_CONTINUE_RESPONSE },
    { "proxy_clear_route_cache", R_CLEAR_ROUTE_CACHE },
#else
    { "proxy_continue_stream", R_CONTINUE_STREAM },
    { "proxy_close_stream", R_CLOSE_STREAM },
#endif
    { "proxy_done", R_DONE },
    { "proxy_set_effective_context", R_SET_EFFECTIVE_CONTEXT },
    { "proxy_get_buffer_bytes", R_GET_BUFFER_BYTES },
    { "proxy_set_buffer_bytes", R_SET_BUFFER_BYTES },
    { "proxy_get_buffer_status", R_GET_BUFFER_STATUS },
    { "proxy_get_header_map_size", R_GET_MAP_SIZE },
    { "proxy_get_header_map_pairs", R_GET_MAP_PAIRS },
    { "proxy_set_header_map_pairs", R_SET_MAP_PAIRS },
    { "proxy_get_header_map_value", R_GET_MAP_VALUE },
    { "proxy_add_header_map_value", R_ADD_MAP_VALUE },
    { "proxy_replace_header_map_value", R_REPLACE_MAP_VALUE },
    { "proxy_remove_header_map_value", R_REMOVE_MAP_VALUE },
    { "proxy_get_status", R_GET_STATUS },
    { "proxy_send_local_response", R_SEND_LOCAL_RESPONSE },
    { "proxy_http_call", R_HTTP_CALL },
    { "proxy_grpc_call", R_GRPC_CALL },
    { "proxy_grpc_stream", R_GRPC_STREAM },
    { "proxy_grpc_send", R_GRPC_SEND },
    { "proxy_grpc_cancel", R_GRPC_CANCEL },
    { "proxy_grpc_close", R_GRPC_CLOSE },
    { "proxy_get_shared_data", R_GET_SHARED },
    { "proxy_set_shared_data", R_SET_SHARED },
    { "proxy_register_shared_queue", R_REGISTER_QUEUE },
    { "proxy_resolve_shared_queue", R_RESOLVE_QUEUE },
    { "proxy_enqueue_shared_queue", R_ENQUEUE },
    { "proxy_dequeue_shared_queue", R_DEQUEUE },
    { "proxy_define_metric", R_DEFINE_METRIC },
    { "proxy_increment_metric", R_INCREMENT_METRIC },
    { "proxy_record_metric", R_RECORD_METRIC },
    { "proxy_get_metric", R_GET_METRIC },
    { "proxy_get_property", R_GET_PROPERTY },
    { "proxy_set_property", R_SET_PROPERTY },
    { "proxy_call_foreign_function", R_CALL_FOREIGN },
};

#define RAW_MAX_ARGS  16

/* Out slots are 8 bytes, zeroed before the call; see README ("raw"). */
static uint64_t raw_out[RAW_MAX_ARGS];

#define U(i)   ((uint32_t) a[i])
#define P(i)   ((void *) (uintptr_t) (uint32_t) a[i])

static uint32_t
raw_invoke(int id, const uint64_t *a)
{
    switch (id) {
    case R_LOG:
        return proxy_log(U(0), P(1), U(2));
#if PX_ABI_VERSION >= PX_ABI_0_2_1
    case R_GET_LOG_LEVEL:
        return proxy_get_log_level(P(0));
#endif
    case R_TIME:
        return proxy_get_current_time_nanoseconds(P(0));
    case R_TICK:
        return proxy_set_tick_period_milliseconds(U(0));
#if PX_ABI_VERSION == PX_ABI_0_1_0
    case R_GET_CONFIGURATION:
        return proxy_get_configuration(P(0), P(1));
    case R_CONTINUE_REQUEST:
        return proxy_continue_request();
    case R_CONTINUE_RESPONSE:
        return proxy_continue_response();
    case R_CLEAR_ROUTE_CACHE:
        return proxy_clear_route_cache();
#else
    case R_CONTINUE_STREAM:
        return proxy_continue_stream(U(0));
    case R_CLOSE_STREAM:
        return proxy_close_stream(U(0));
#endif
    case R_DONE:
        return proxy_done();
    case R_SET_EFFECTIVE_CONTEXT:
        return proxy_set_effective_context(U(0));
    case R_GET_BUFFER_BYTES:
        return proxy_get_buffer_bytes(U(0), U(1), U(2), P(3), P(4));
    case R_SET_BUFFER_BYTES:
        return proxy_set_buffer_bytes(U(0), U(1), U(2), P(3), U(4));
    case R_GET_BUFFER_STATUS:
        return proxy_get_buffer_status(U(0), P(1), P(2));
    case R_GET_MAP_SIZE:
        return proxy_get_header_map_size(U(0), P(1));
    case R_GET_MAP_PAIRS:
        return proxy_get_header_map_pairs(U(0), P(1), P(2));
    case R_SET_MAP_PAIRS:
        return proxy_set_header_map_pairs(U(0), P(1), U(2));
    case R_GET_MAP_VALUE:
        return proxy_get_header_map_value(U(0), P(1), U(2), P(3), P(4));
    case R_ADD_MAP_VALUE:
        return proxy_add_header_map_value(U(0), P(1), U(2), P(3), U(4));
    case R_REPLACE_MAP_VALUE:
        return proxy_replace_header_map_value(U(0), P(1), U(2), P(3), U(4));
    case R_REMOVE_MAP_VALUE:
        return proxy_remove_header_map_value(U(0), P(1), U(2));
    case R_GET_STATUS:
        return proxy_get_status(P(0), P(1), P(2));
    case R_SEND_LOCAL_RESPONSE:
        return proxy_send_local_response(U(0), P(1), U(2), P(3), U(4), P(5),
                                         U(6), (int32_t) U(7));
    case R_HTTP_CALL:
        return proxy_http_call(P(0), U(1), P(2), U(3), P(4), U(5), P(6),
                               U(7), U(8), P(9));
    case R_GRPC_CALL:
        return proxy_grpc_call(P(0), U(1), P(2), U(3), P(4), U(5), P(6),
                               U(7), P(8), U(9), U(10), P(11));
    case R_GRPC_STREAM:
        return proxy_grpc_stream(P(0), U(1), P(2), U(3), P(4), U(5), P(6),
                                 U(7), P(8));
    case R_GRPC_SEND:
        return proxy_grpc_send(U(0), P(1), U(2), U(3));
    case R_GRPC_CANCEL:
        return proxy_grpc_cancel(U(0));
    case R_GRPC_CLOSE:
        return proxy_grpc_close(U(0));
    case R_GET_SHARED:
        return proxy_get_shared_data(P(0), U(1), P(2), P(3), P(4));
    case R_SET_SHARED:
        return proxy_set_shared_data(P(0), U(1), P(2), U(3), U(4));
    case R_REGISTER_QUEUE:
        return proxy_register_shared_queue(P(0), U(1), P(2));
    case R_RESOLVE_QUEUE:
        return proxy_resolve_shared_queue(P(0), U(1), P(2), U(3), P(4));
    case R_ENQUEUE:
        return proxy_enqueue_shared_queue(U(0), P(1), U(2));
    case R_DEQUEUE:
        return proxy_dequeue_shared_queue(U(0), P(1), P(2));
    case R_DEFINE_METRIC:
        return proxy_define_metric(U(0), P(1), U(2), P(3));
    case R_INCREMENT_METRIC:
        return proxy_increment_metric(U(0), (int64_t) a[1]);
    case R_RECORD_METRIC:
        return proxy_record_metric(U(0), a[1]);
    case R_GET_METRIC:
        return proxy_get_metric(U(0), P(1));
    case R_GET_PROPERTY:
        return proxy_get_property(P(0), U(1), P(2), P(3));
    case R_SET_PROPERTY:
        return proxy_set_property(P(0), U(1), P(2), U(3));
    case R_CALL_FOREIGN:
        return proxy_call_foreign_function(P(0), U(1), P(2), U(3), P(4),
                                           P(5));
    default:
        return UINT32_MAX;
    }
}

#undef U
#undef P


static bool
prefix(const tok_t *t, const char *p)
{
    size_t n = strlen(p);

    return t->len >= n && memcmp(t->s, p, n) == 0;
}


static void
cmd_raw(env_t *e, int argc, tok_t *argv)
{
    uint64_t a[RAW_MAX_ARGS], v, mem;
    int i, n, id, nout, out_idx[RAW_MAX_ARGS];
    bool outp[RAW_MAX_ARGS];
    char *keep[RAW_MAX_ARGS], *ser;
    size_t k, nkeep, slen;
    uint32_t rc;
    tok_t t;
    px_header_t *h;

    id = -1;
    for (k = 0; k < sizeof(raw_calls) / sizeof(raw_calls[0]); k++) {
        if (tok_is(&argv[1], raw_calls[k].name)) {
            id = raw_calls[k].id;
        }
    }
    if (id < 0) {
        cmd_error("raw", "unknown import for this ABI version");
        return;
    }

    memset(a, 0, sizeof(a));
    memset(raw_out, 0, sizeof(raw_out));
    n = 0;
    nout = 0;
    nkeep = 0;
    mem = (uint64_t) __builtin_wasm_memory_size(0) * 65536;

    for (i = 2; i < argc && n < RAW_MAX_ARGS; i++) {
        t = argv[i];

        if (tok_is(&t, "out") || tok_is(&t, "outp")) {
            outp[nout] = tok_is(&t, "outp");
            out_idx[nout] = n;
            a[n++] = (uint32_t) (uintptr_t) &raw_out[nout];
            nout++;

        } else if (prefix(&t, "s:") || prefix(&t, "p:")) {
            keep[nkeep] = malloc(t.len - 2 + 1);
            if (keep[nkeep] == NULL) {
                goto done;
            }
            memcpy(keep[nkeep], t.s + 2, t.len - 2 + 1);
            a[n++] = (uint32_t) (uintptr_t) keep[nkeep];
            if (t.s[0] == 's' && n < RAW_MAX_ARGS) {
                a[n++] = t.len - 2;
            }
            nkeep++;

        } else if (prefix(&t, "hdrs:")) {
            tok_t *parts;
            int np = 0;
            char *c, *copy;

            copy = strdup(t.s + 5);
            parts = calloc(t.len, sizeof(tok_t));
            if (copy == NULL || parts == NULL) {
                free(copy);
                free(parts);
                goto done;
            }
            for (c = strtok(copy, ","); c != NULL; c = strtok(NULL, ",")) {
                parts[np].s = c;
                parts[np].len = strlen(c);
                np++;
            }
            h = headers_from(np, parts, &k);
            ser = NULL;
            slen = 0;
            if (h != NULL) {
                px_serialize_headers(h, k, &ser, &slen);
            }
            free(h);
            free(parts);
            free(copy);
            if (ser == NULL) {
                goto done;
            }
            keep[nkeep++] = ser;
            a[n++] = (uint32_t) (uintptr_t) ser;
            if (n < RAW_MAX_ARGS) {
                a[n++] = slen;
            }

        } else if (prefix(&t, "mem")) {
            tok_t rest = { t.s + 4, t.len > 4 ? t.len - 4 : 0 };

            v = 0;
            if (t.len > 3 && (t.s[3] != '+' && t.s[3] != '-')) {
                cmd_error("raw", "bad mem expression");
                goto done;
            }
            if (t.len > 3 && !parse_num(&rest, &v)) {
                cmd_error("raw", "bad mem offset");
                goto done;
            }
            a[n++] = (t.len > 3 && t.s[3] == '-') ? mem - v : mem + v;

        } else if (parse_num(&t, &v)) {
            a[n++] = v;

        } else {
            cmd_error("raw", "bad argument");
            goto done;
        }
    }

    rc = raw_invoke(id, a);
    status(argv[1].s, rc);

    for (i = 0; i < nout; i++) {
        px_logf(PX_LOG_INFO, "out %d = %llu", i,
                (unsigned long long) raw_out[i]);
    }

    /* an outp followed by an out: the returned block and its size */
    for (i = 0; rc == PX_OK && i + 1 < nout; i++) {
        if (outp[i] && !outp[i + 1] && out_idx[i + 1] == out_idx[i] + 1) {
            char *p = (char *) (uintptr_t) (uint32_t) raw_out[i];

            value("data", p ? p : "", p ? (size_t) raw_out[i + 1] : 0);
            free(p);
        }
    }

done:
    for (k = 0; k < nkeep; k++) {
        free(keep[k]);
    }
}


/* ---- command table ------------------------------------------------------- */

static const cmd_def_t cmds[] = {
    { "return", cmd_return, 1 },
    { "trace", cmd_trace, 0 },
    { "unreachable", cmd_unreachable, 0 },
    { "loop", cmd_loop, 0 },
    { "loop_hostcall", cmd_loop_hostcall, 0 },
    { "exit", cmd_exit, 1 },
    { "memory_grow", cmd_memory_grow, 1 },
    { "log", cmd_log, 1 },
    { "fd_write", cmd_fd_write, 2 },
    { "clock", cmd_clock, 1 },
    { "random", cmd_random, 1 },
    { "environ", cmd_environ, 0 },
    { "args", cmd_args, 0 },
    { "log_level", cmd_log_level, 0 },
    { "time", cmd_time, 0 },
    { "set_tick", cmd_set_tick, 1 },
    { "done", cmd_done, 0 },
    { "set_effective_context", cmd_set_effective_context, 1 },
    { "continue_stream", cmd_continue_stream, 0 },
    { "close_stream", cmd_close_stream, 0 },
    { "continue_request", cmd_continue_request, 0 },
    { "continue_response", cmd_continue_response, 0 },
    { "clear_route_cache", cmd_clear_route_cache, 0 },
    { "get_status", cmd_get_status, 0 },
    { "send_local_response", cmd_send_local_response, 1 },
    { "send_local_response_full", cmd_send_local_response_full, 4 },
    { "http_call", cmd_http_call, 3 },
    { "grpc_call", cmd_grpc_call, 5 },
    { "grpc_stream", cmd_grpc_stream, 3 },
    { "grpc_send", cmd_grpc_send, 3 },
    { "grpc_cancel", cmd_grpc_cancel, 1 },
    { "grpc_close", cmd_grpc_close, 1 },
    { "get_header", cmd_get_header, 1 },
    { "add_header", cmd_add_header, 2 },
    { "replace_header", cmd_replace_header, 2 },
    { "remove_header", cmd_remove_header, 1 },
    { "get_headers", cmd_get_headers, 0 },
    { "set_headers", cmd_set_headers, 0 },
    { "header_map_size", cmd_header_map_size, 0 },
    { "get_buffer", cmd_get_buffer, 1 },
    { "get_body", cmd_get_body, 0 },
    { "set_buffer", cmd_set_buffer, 4 },
    { "set_body", cmd_set_body, 1 },
    { "buffer_status", cmd_buffer_status, 0 },
    { "get_config", cmd_get_config, 0 },
    { "get_shared", cmd_get_shared, 1 },
    { "set_shared", cmd_set_shared, 2 },
    { "register_queue", cmd_register_queue, 1 },
    { "resolve_queue", cmd_resolve_queue, 2 },
    { "enqueue", cmd_enqueue, 2 },
    { "dequeue", cmd_dequeue, 1 },
    { "dequeue_all", cmd_dequeue_all, 1 },
    { "define_metric", cmd_define_metric, 2 },
    { "increment_metric", cmd_increment_metric, 2 },
    { "record_metric", cmd_record_metric, 2 },
    { "get_metric", cmd_get_metric, 1 },
    { "get_property", cmd_get_property, 1 },
    { "set_property", cmd_set_property, 2 },
    { "call_foreign", cmd_call_foreign, 1 },
    { "raw", cmd_raw, 1 },
    { NULL, NULL, 0 }
};


static const cmd_def_t *
find_cmd(const char *name)
{
    const cmd_def_t *c;

    for (c = cmds; c->name != NULL; c++) {
        if (strcmp(c->name, name) == 0) {
            return c;
        }
    }
    return NULL;
}


/* ---- parser -------------------------------------------------------------- */

static void
free_cmds(cmd_t *c)
{
    cmd_t *next;
    int i;

    for (; c != NULL; c = next) {
        next = c->next;
        for (i = 0; i < c->argc; i++) {
            free(c->argv[i].s);
        }
        free(c->argv);
        free(c);
    }
}


static void
script_free(script_t *s)
{
    int i;

    for (i = 0; i < EV_COUNT; i++) {
        free_cmds(s->head[i]);
        s->head[i] = NULL;
    }
    s->trace = false;
}


typedef struct {
    script_t *s;
    int section;
    int line;
    tok_t *toks;
    int ntoks, cap;
    char *err;             /* static message */
} parser_t;


static int
hexval(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}


static bool
push_tok(parser_t *p, const char *s, size_t len)
{
    tok_t *nt;

    if (p->ntoks == p->cap) {
        p->cap = p->cap ? p->cap * 2 : 8;
        nt = realloc(p->toks, (size_t) p->cap * sizeof(tok_t));
        if (nt == NULL) {
            return false;
        }
        p->toks = nt;
    }
    p->toks[p->ntoks].s = malloc(len + 1);
    if (p->toks[p->ntoks].s == NULL) {
        return false;
    }
    memcpy(p->toks[p->ntoks].s, s, len);
    p->toks[p->ntoks].s[len] = '\0';
    p->toks[p->ntoks].len = len;
    p->ntoks++;
    return true;
}


static void
drop_toks(parser_t *p, int from)
{
    int i;

    for (i = from; i < p->ntoks; i++) {
        free(p->toks[i].s);
    }
    p->ntoks = from;
}


static bool
add_cmd(parser_t *p, int first)
{
    const cmd_def_t *def;
    cmd_t *c, **tail;
    int i, argc;

    argc = p->ntoks - first;
    if (argc == 0) {
        return true;
    }

    def = find_cmd(p->toks[first].s);
    if (def == NULL) {
        p->err = "unknown command";
        return false;
    }
    if (argc - 1 < def->min_args) {
        p->err = "too few arguments";
        return false;
    }
    if (def->fn == cmd_trace) {
        p->s->trace = true;     /* applies from the start, wherever it is */
    }

    c = calloc(1, sizeof(cmd_t));
    if (c == NULL) {
        p->err = "out of memory";
        return false;
    }
    c->line = p->line;
    c->argc = argc;
    c->argv = malloc((size_t) argc * sizeof(tok_t));
    if (c->argv == NULL) {
        free(c);
        p->err = "out of memory";
        return false;
    }
    for (i = 0; i < argc; i++) {
        c->argv[i] = p->toks[first + i];
    }
    p->ntoks = first;        /* the command owns the strings now */

    for (tail = &p->s->head[p->section]; *tail != NULL;
         tail = &(*tail)->next)
    {
        /* append */
    }
    *tail = c;
    return true;
}


/* One item (between ';' / newlines): "on EVENT:" and/or a command. */
static bool
end_item(parser_t *p)
{
    int i, first, ev;
    tok_t *t;
    size_t l;

    first = 0;
    if (p->ntoks >= 2 && tok_is(&p->toks[0], "on")) {
        t = &p->toks[1];
        l = t->len;
        if (l > 0 && t->s[l - 1] == ':') {
            t->s[--l] = '\0';
            t->len = l;
            first = 2;
        } else if (p->ntoks >= 3 && tok_is(&p->toks[2], ":")) {
            first = 3;
        } else {
            p->err = "expected ':' after the event name";
            return false;
        }

        ev = -1;
        for (i = 0; i < EV_COUNT; i++) {
            if (tok_is(t, ev_names[i])) {
                ev = i;
            }
        }
        if (ev < 0) {
            p->err = "unknown event";
            return false;
        }
        p->section = ev;
    }

    if (!add_cmd(p, first)) {
        return false;
    }
    drop_toks(p, 0);
    return true;
}


/*
 * Parse `src` into `s` (which must be empty); commands before the first
 * "on EVENT:" belong to `section`. On error, `*err` says why and
 * `*line` where; `s` keeps what was parsed before.
 */
static bool
parse_script(const char *src, size_t len, int section, script_t *s,
    const char **err, int *line)
{
    parser_t p;
    size_t i, tl, tcap;
    char *tb, *nb, c;
    bool in_tok, quoted;
    int h1, h2;

    memset(&p, 0, sizeof(p));
    p.s = s;
    p.section = section;
    p.line = 1;

    tcap = 64;
    tb = malloc(tcap);
    if (tb == NULL) {
        *err = "out of memory";
        *line = 0;
        return false;
    }
    tl = 0;
    in_tok = false;
    quoted = false;

    for (i = 0; i <= len && p.err == NULL; i++) {
        c = (i < len) ? src[i] : '\n';

        if (tl + 2 > tcap) {
            tcap *= 2;
            nb = realloc(tb, tcap);
            if (nb == NULL) {
                p.err = "out of memory";
                break;
            }
            tb = nb;
        }

        if (quoted) {
            if (i == len) {
                p.err = "unterminated string";
                break;
            }
            if (c == '"') {
                quoted = false;
            } else if (c == '\\' && i + 1 < len) {
                c = src[++i];
                switch (c) {
                case 'n': tb[tl++] = '\n'; break;
                case 'r': tb[tl++] = '\r'; break;
                case 't': tb[tl++] = '\t'; break;
                case '0': tb[tl++] = '\0'; break;
                case 'x':
                    h1 = (i + 1 < len) ? hexval(src[i + 1]) : -1;
                    h2 = (i + 2 < len) ? hexval(src[i + 2]) : -1;
                    if (h1 < 0 || h2 < 0) {
                        p.err = "bad \\x escape";
                        break;
                    }
                    tb[tl++] = (char) (h1 * 16 + h2);
                    i += 2;
                    break;
                default:
                    tb[tl++] = c;
                }
            } else {
                if (c == '\n') {
                    p.line++;
                }
                tb[tl++] = c;
            }
            continue;
        }

        if (c == '"') {
            quoted = true;
            in_tok = true;
            continue;
        }

        if (c == '#' && !in_tok) {
            while (i + 1 < len && src[i + 1] != '\n') {
                i++;
            }
            continue;
        }

        if (c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == ';') {
            if (in_tok) {
                if (!push_tok(&p, tb, tl)) {
                    p.err = "out of memory";
                    break;
                }
                tl = 0;
                in_tok = false;
            }
            if (c == '\n' || c == ';') {
                if (!end_item(&p)) {
                    break;
                }
                if (c == '\n') {
                    p.line++;
                }
            }
            continue;
        }

        tb[tl++] = c;
        in_tok = true;
    }

    free(tb);
    drop_toks(&p, 0);
    free(p.toks);

    if (p.err != NULL) {
        *err = p.err;
        *line = p.line;
        return false;
    }
    return true;
}


/* ---- running ------------------------------------------------------------- */

static void
run_cmds(env_t *e, cmd_t *c)
{
    for (; c != NULL && !e->stop; c = c->next) {
        find_cmd(c->argv[0].s)->fn(e, c->argc, c->argv);
    }
}


static script_t *
root_script(uint32_t root)
{
    return px_get_context_data(root);
}


/*
 * Run the commands for `ev`: the VM script's, then the root's. `fmt`
 * formats the callback's arguments for the trace line.
 */
static uint32_t
fire(int ev, uint32_t ctx, uint32_t root, uint32_t id, uint32_t dflt,
    const char *fmt, ...)
{
    env_t e;
    script_t *s;
    va_list ap;
    char args[160];

    s = root_script(root);

    if (vm_trace || (s != NULL && s->trace)) {
        va_start(ap, fmt);
        vsnprintf(args, sizeof(args), fmt, ap);
        va_end(ap);
        px_logf(PX_LOG_INFO, "callback %s ctx=%u%s%s", ev_names[ev], ctx,
                args[0] ? " " : "", args);
    }

    memset(&e, 0, sizeof(e));
    e.ev = ev;
    e.ctx = ctx;
    e.root = root;
    e.id = id;
    e.ret = dflt;

    run_cmds(&e, vm_script.head[ev]);
    if (s != NULL && !e.stop) {
        run_cmds(&e, s->head[ev]);
    }

    return e.ret;
}


/* ---- callbacks ----------------------------------------------------------- */

static bool
load_script(const char *what, const char *src, size_t len, int section,
    script_t *s)
{
    const char *err;
    int line;

    if (!parse_script(src, len, section, s, &err, &line)) {
        px_logf(PX_LOG_ERROR, "testplugin: %s line %d: %s", what, line, err);
        return false;
    }
    return true;
}


static bool
on_vm_start(uint32_t root_id, uint32_t size)
{
    char *src;
    size_t len;

    script_free(&vm_script);
    vm_trace = false;

    if (px_get_vm_configuration(&src, &len) == PX_OK) {
        if (!load_script("vm configuration", src, len, EV_VM_START,
                         &vm_script)) {
            free(src);
            return false;
        }
        free(src);
        vm_trace = vm_script.trace;
    }

    return fire(EV_VM_START, root_id, root_id, 0, 1, "size=%u", size) != 0;
}


static bool
on_configure(uint32_t root_id, uint32_t size)
{
    char *src;
    size_t len;
    script_t *s;
    bool ok;

    s = root_script(root_id);
    if (s == NULL) {
        s = calloc(1, sizeof(script_t));
        if (s == NULL || px_set_context_data(root_id, s) != PX_OK) {
            free(s);
            px_log(PX_LOG_ERROR, "testplugin: cannot keep the script");
            return false;
        }
    }
    script_free(s);

    if (px_get_configuration(&src, &len) != PX_OK) {
        px_log(PX_LOG_ERROR, "testplugin: cannot read the configuration");
        return false;
    }
    ok = load_script("configuration", src, len, EV_CONFIGURE, s);
    free(src);
    if (!ok) {
        return false;
    }

    return fire(EV_CONFIGURE, root_id, root_id, 0, 1, "size=%u", size) != 0;
}


static void
on_tick(uint32_t root_id)
{
    fire(EV_TICK, root_id, root_id, 0, 0, "");
}


static void
on_context_create(uint32_t ctx, uint32_t parent)
{
    fire(EV_CONTEXT_CREATE, ctx, parent ? parent : ctx, 0, 0, "parent=%u",
         parent);
}


static px_action_t
on_request_headers(uint32_t ctx, uint32_t n, bool eos)
{
    return (px_action_t) fire(EV_REQUEST_HEADERS, ctx, px_root_of(ctx), 0,
                              0, "headers=%u eos=%d", n, eos);
}


static px_action_t
on_request_body(uint32_t ctx, uint32_t size, bool eos)
{
    return (px_action_t) fire(EV_REQUEST_BODY, ctx, px_root_of(ctx), 0, 0,
                              "size=%u eos=%d", size, eos);
}


static px_action_t
on_request_trailers(uint32_t ctx, uint32_t n)
{
    return (px_action_t) fire(EV_REQUEST_TRAILERS, ctx, px_root_of(ctx), 0,
                              0, "trailers=%u", n);
}


static px_action_t
on_response_headers(uint32_t ctx, uint32_t n, bool eos)
{
    return (px_action_t) fire(EV_RESPONSE_HEADERS, ctx, px_root_of(ctx), 0,
                              0, "headers=%u eos=%d", n, eos);
}


static px_action_t
on_response_body(uint32_t ctx, uint32_t size, bool eos)
{
    return (px_action_t) fire(EV_RESPONSE_BODY, ctx, px_root_of(ctx), 0, 0,
                              "size=%u eos=%d", size, eos);
}


static px_action_t
on_response_trailers(uint32_t ctx, uint32_t n)
{
    return (px_action_t) fire(EV_RESPONSE_TRAILERS, ctx, px_root_of(ctx), 0,
                              0, "trailers=%u", n);
}


static px_action_t
on_new_connection(uint32_t ctx)
{
    return (px_action_t) fire(EV_NEW_CONNECTION, ctx, px_root_of(ctx), 0, 0,
                              "");
}


static px_action_t
on_downstream_data(uint32_t ctx, uint32_t size, bool eos)
{
    return (px_action_t) fire(EV_DOWNSTREAM_DATA, ctx, px_root_of(ctx), 0,
                              0, "size=%u eos=%d", size, eos);
}


static px_action_t
on_upstream_data(uint32_t ctx, uint32_t size, bool eos)
{
    return (px_action_t) fire(EV_UPSTREAM_DATA, ctx, px_root_of(ctx), 0, 0,
                              "size=%u eos=%d", size, eos);
}


static void
on_downstream_close(uint32_t ctx, px_peer_type_t peer)
{
    fire(EV_DOWNSTREAM_CLOSE, ctx, px_root_of(ctx), 0, 0, "peer=%u",
         (unsigned) peer);
}


static void
on_upstream_close(uint32_t ctx, px_peer_type_t peer)
{
    fire(EV_UPSTREAM_CLOSE, ctx, px_root_of(ctx), 0, 0, "peer=%u",
         (unsigned) peer);
}


static void
on_http_call_response(uint32_t ctx, uint32_t token, uint32_t nheaders,
    uint32_t body_size, uint32_t ntrailers)
{
    last_http = token;
    fire(EV_HTTP_CALL_RESPONSE, ctx, px_root_of(ctx), token, 0,
         "token=%u headers=%u body=%u trailers=%u", token, nheaders,
         body_size, ntrailers);
}


static void
on_grpc_initial_metadata(uint32_t ctx, uint32_t token, uint32_t n)
{
    last_grpc = token;
    fire(EV_GRPC_INITIAL_METADATA, ctx, px_root_of(ctx), token, 0,
         "token=%u headers=%u", token, n);
}


static void
on_grpc_receive(uint32_t ctx, uint32_t token, uint32_t size)
{
    last_grpc = token;
    fire(EV_GRPC_RECEIVE, ctx, px_root_of(ctx), token, 0,
         "token=%u size=%u", token, size);
}


static void
on_grpc_trailing_metadata(uint32_t ctx, uint32_t token, uint32_t n)
{
    last_grpc = token;
    fire(EV_GRPC_TRAILING_METADATA, ctx, px_root_of(ctx), token, 0,
         "token=%u trailers=%u", token, n);
}


static void
on_grpc_close(uint32_t ctx, uint32_t token, uint32_t code)
{
    last_grpc = token;
    fire(EV_GRPC_CLOSE, ctx, px_root_of(ctx), token, 0,
         "token=%u status=%u", token, code);
}


static void
on_queue_ready(uint32_t root_id, uint32_t qid)
{
    last_queue = qid;
    fire(EV_QUEUE_READY, root_id, root_id, qid, 0, "queue=%u", qid);
}


static void
on_foreign_function(uint32_t root_id, uint32_t function_id, uint32_t size)
{
    fire(EV_FOREIGN_FUNCTION, root_id, root_id, function_id, 0,
         "function=%u size=%u", function_id, size);
}


static bool
on_done(uint32_t ctx)
{
    return fire(EV_DONE, ctx, px_root_of(ctx), 0, 1, "") != 0;
}


static void
on_log(uint32_t ctx)
{
    fire(EV_LOG, ctx, px_root_of(ctx), 0, 0, "");
}


static void
on_delete(uint32_t ctx)
{
    script_t *s;

    fire(EV_DELETE, ctx, px_root_of(ctx), 0, 0, "");

    if (px_root_of(ctx) == ctx) {
        s = root_script(ctx);
        if (s != NULL) {
            script_free(s);
            free(s);
            px_set_context_data(ctx, NULL);
        }
    }
}


static const px_plugin_t plugin = {
    .on_vm_start = on_vm_start,
    .on_configure = on_configure,
    .on_tick = on_tick,
    .on_context_create = on_context_create,
    .on_request_headers = on_request_headers,
    .on_request_body = on_request_body,
    .on_request_trailers = on_request_trailers,
    .on_response_headers = on_response_headers,
    .on_response_body = on_response_body,
    .on_response_trailers = on_response_trailers,
    .on_new_connection = on_new_connection,
    .on_downstream_data = on_downstream_data,
    .on_upstream_data = on_upstream_data,
    .on_downstream_connection_close = on_downstream_close,
    .on_upstream_connection_close = on_upstream_close,
    .on_http_call_response = on_http_call_response,
    .on_grpc_receive_initial_metadata = on_grpc_initial_metadata,
    .on_grpc_receive = on_grpc_receive,
    .on_grpc_receive_trailing_metadata = on_grpc_trailing_metadata,
    .on_grpc_close = on_grpc_close,
    .on_queue_ready = on_queue_ready,
    .on_foreign_function = on_foreign_function,
    .on_done = on_done,
    .on_log = on_log,
    .on_delete = on_delete,
};

PX_PLUGIN(plugin);
