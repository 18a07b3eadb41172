/*
 * grpc_callout: gRPC callouts from a request, for the nginx tests
 * (test_callout_grpc.py) against grpc_upstream.py.
 *
 * Plugin configuration:
 *
 *   (empty)        the request header "x-grpc" says what to do (below);
 *                  the request pauses until the call ends and is answered
 *                  locally (200) with one line per event
 *   auth UPSTREAM  an authorization filter: a unary call test.Echo/Unary
 *                  to UPSTREAM with the request's "x-token" as message (and
 *                  "x-md-*" request headers as metadata); the answer
 *                  "letmein" lets the request through with "x-auth: ok",
 *                  any other answer or a failed call gets 403 with the
 *                  reason in the body
 *   configure UPSTREAM  in on_configure, a unary call with message
 *                  "from-configure"; its answer is logged as
 *                  "grpc_callout: configure answer data=D"
 *
 * x-grpc: words KEY=VALUE:
 *   kind=unary|stream   (unary)
 *   up=UPSTREAM         (grpc)
 *   svc=SERVICE         (test.Echo)
 *   method=METHOD       (Unary or Stream, by kind)
 *   msg=TEXT            unary request message (hello)
 *   size=N              unary request message of N bytes "abc..."
 *   timeout=MS          unary timeout (0: none)
 *   md=KEY:VALUE        request metadata (repeatable)
 *   send=A,B,C          stream: messages sent right after opening
 *   end=send|close|none stream: half-close with the last send (default),
 *                       with proxy_grpc_close, or not at all
 *   cancel_after=N      cancel once N messages came (stream or unary: 0
 *                       cancels right after the start) and answer at once
 *
 * Answer lines: "start status=S token=T", "initial n=N K=V;...",
 * "message len=N data=D status=C" (over 64 bytes: "sum=S" in place of
 * data, S = fold of s * 31 + byte), "trailing n=N K=V;...",
 * "close status=C message=M", "cancel status=S". Every event is also
 * logged (info) as "grpc_callout: LINE"; an event for a request that is
 * gone is logged as "grpc_callout: late EVENT token=T".
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy_wasm.h"

#define MAX_MD  16

typedef struct {
    uint32_t  token;
    char     *out;
    size_t    len;
    int       received;
    int       cancel_after;      /* -1: never */
    int       answered;
    int       auth;
    int       unary;
} req_t;

static int   auth_mode;
static uint32_t configure_token;
static char  auth_upstream[128];


static void
add(req_t *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
add(req_t *r, const char *fmt, ...)
{
    char     line[2048];
    char    *p;
    va_list  ap;
    int      n;

    va_start(ap, fmt);
    n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n < 0) {
        return;
    }
    if ((size_t) n >= sizeof(line)) {
        n = sizeof(line) - 1;
    }

    px_logf(PX_LOG_INFO, "grpc_callout: %s", line);

    p = realloc(r->out, r->len + (size_t) n + 2);
    if (p == NULL) {
        return;
    }
    r->out = p;
    memcpy(r->out + r->len, line, (size_t) n);
    r->len += (size_t) n;
    r->out[r->len++] = '\n';
    r->out[r->len] = '\0';
}


static void
answer(uint32_t ctx, req_t *r, uint32_t code)
{
    if (r->answered) {
        return;
    }
    r->answered = 1;
    px_set_effective_context(ctx);
    px_send_local_response(code, NULL, r->out, r->len, NULL, 0,
                           PX_GRPC_STATUS_NONE);
}


static req_t *
req_of(uint32_t ctx, const char *what, uint32_t token)
{
    req_t *r;

    r = px_root_of(ctx) == ctx ? NULL : px_get_context_data(ctx);
    if (r == NULL || r->answered) {
        px_logf(PX_LOG_INFO, "grpc_callout: late %s token=%u", what, token);
        return NULL;
    }
    return r;
}


static unsigned
sum(const char *p, size_t len)
{
    unsigned  s = 0;
    size_t    i;

    for (i = 0; i < len; i++) {
        s = s * 31 + (unsigned char) p[i];
    }
    return s;
}


static bool
on_configure(uint32_t root_id, uint32_t size)
{
    char    *conf = NULL;
    size_t   len = 0;

    (void) root_id;
    (void) size;

    auth_mode = 0;
    if (px_get_configuration(&conf, &len) == PX_OK && conf != NULL) {
        if (strncmp(conf, "auth ", 5) == 0 && len - 5 < sizeof(auth_upstream))
        {
            auth_mode = 1;
            memcpy(auth_upstream, conf + 5, len - 5);
            auth_upstream[len - 5] = '\0';

        } else if (strncmp(conf, "configure ", 10) == 0
                   && len - 10 < sizeof(auth_upstream))
        {
            memcpy(auth_upstream, conf + 10, len - 10);
            auth_upstream[len - 10] = '\0';
            px_logf(PX_LOG_INFO, "grpc_callout: configure call status=%d",
                    (int) px_grpc_call(auth_upstream, "test.Echo", "Unary",
                                       NULL, 0, "from-configure", 14, 2000,
                                       &configure_token));
        }
        free(conf);
    }
    return true;
}


static void
md_line(req_t *r, const char *what, px_map_type_t map, uint32_t n)
{
    px_headers_t  h;
    char          buf[1024];
    size_t        i, off = 0;

    buf[0] = '\0';
    if (px_get_headers(map, &h) == PX_OK) {
        for (i = 0; i < h.count; i++) {
            off += (size_t) snprintf(buf + off, sizeof(buf) - off, "%s%s=%s",
                                     i ? ";" : "", h.pairs[i].name,
                                     h.pairs[i].value);
            if (off >= sizeof(buf)) {
                off = sizeof(buf) - 1;
                break;
            }
        }
        px_headers_free(&h);
    }
    add(r, "%s n=%u %s", what, n, buf);
}


static px_action_t
start_auth(uint32_t ctx, req_t *r)
{
    px_headers_t  h;
    px_header_t   md[MAX_MD];
    char         *token = NULL;
    size_t        i, n = 0;
    px_status_t   st;

    (void) px_get_header(PX_MAP_HTTP_REQUEST_HEADERS, "x-token", &token,
                         NULL);
    if (px_get_headers(PX_MAP_HTTP_REQUEST_HEADERS, &h) == PX_OK) {
        for (i = 0; i < h.count && n < MAX_MD; i++) {
            if (strncmp(h.pairs[i].name, "x-md-", 5) == 0
                || strcmp(h.pairs[i].name, "x-status") == 0
                || strcmp(h.pairs[i].name, "x-delay") == 0)
            {
                md[n].name = h.pairs[i].name;
                md[n].value = h.pairs[i].value;
                n++;
            }
        }
    } else {
        h.count = 0;
    }

    r->auth = 1;
    st = px_grpc_call(auth_upstream, "test.Echo", "Unary", md, n,
                      token ? token : "", token ? strlen(token) : 0, 2000,
                      &r->token);
    if (h.count) {
        px_headers_free(&h);
    }
    free(token);

    if (st != PX_OK) {
        add(r, "auth call failed status=%d", (int) st);
        answer(ctx, r, 403);
        return PX_PAUSE;
    }
    return PX_PAUSE;
}


static px_action_t
on_request_headers(uint32_t ctx, uint32_t n, bool eos)
{
    char        *cmd = NULL, *w, *save = NULL;
    char        *kind = "unary", *up = "grpc", *svc = "test.Echo";
    char        *method = NULL, *msg = "hello", *send = NULL;
    char        *end = "send";
    px_header_t  md[MAX_MD];
    size_t       nmd = 0;
    uint32_t     timeout = 0;
    px_status_t  st;
    req_t       *r;
    char        *c, *m, *next, *bigmsg = NULL;
    size_t       i, big = 0;

    (void) n;
    (void) eos;

    r = calloc(1, sizeof(req_t));
    if (r == NULL) {
        return PX_CONTINUE;
    }
    r->cancel_after = -1;
    px_set_context_data(ctx, r);

    if (auth_mode) {
        return start_auth(ctx, r);
    }

    if (px_get_header(PX_MAP_HTTP_REQUEST_HEADERS, "x-grpc", &cmd, NULL)
        != PX_OK || cmd == NULL)
    {
        free(cmd);
        return PX_CONTINUE;
    }

    for (w = strtok_r(cmd, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
        if (strncmp(w, "kind=", 5) == 0) {
            kind = w + 5;
        } else if (strncmp(w, "up=", 3) == 0) {
            up = w + 3;
        } else if (strncmp(w, "svc=", 4) == 0) {
            svc = w + 4;
        } else if (strncmp(w, "method=", 7) == 0) {
            method = w + 7;
        } else if (strncmp(w, "msg=", 4) == 0) {
            msg = w + 4;
        } else if (strncmp(w, "timeout=", 8) == 0) {
            timeout = (uint32_t) strtoul(w + 8, NULL, 10);
        } else if (strncmp(w, "size=", 5) == 0) {
            big = strtoul(w + 5, NULL, 10);
        } else if (strncmp(w, "send=", 5) == 0) {
            send = w + 5;
        } else if (strncmp(w, "end=", 4) == 0) {
            end = w + 4;
        } else if (strncmp(w, "cancel_after=", 13) == 0) {
            r->cancel_after = atoi(w + 13);
        } else if (strncmp(w, "md=", 3) == 0 && nmd < MAX_MD) {
            c = strchr(w + 3, ':');
            if (c) {
                *c = '\0';
                md[nmd].name = w + 3;
                md[nmd].value = c + 1;
                nmd++;
            }
        }
    }

    if (big) {
        bigmsg = malloc(big + 1);
        if (bigmsg == NULL) {
            free(cmd);
            return PX_CONTINUE;
        }
        for (i = 0; i < big; i++) {
            bigmsg[i] = (char) ('a' + i % 26);
        }
        bigmsg[big] = '\0';
        msg = bigmsg;
    }

    if (strcmp(kind, "stream") == 0) {
        st = px_grpc_stream(up, svc, method ? method : "Stream", md, nmd,
                            &r->token);
    } else {
        r->unary = 1;
        st = px_grpc_call(up, svc, method ? method : "Unary", md, nmd, msg,
                          strlen(msg), timeout, &r->token);
    }

    add(r, "start status=%d token=%u", (int) st, st == PX_OK ? r->token : 0);

    if (st != PX_OK) {
        free(cmd);
        free(bigmsg);
        answer(ctx, r, 200);
        return PX_PAUSE;
    }

    if (strcmp(kind, "stream") == 0) {
        for (m = send; m && *m; m = next) {
            next = strchr(m, ',');
            if (next) {
                *next++ = '\0';
            }
            st = px_grpc_send(r->token, m, strlen(m),
                              next == NULL && strcmp(end, "send") == 0);
            if (st != PX_OK) {
                add(r, "send status=%d", (int) st);
            }
        }
        if (strcmp(end, "close") == 0) {
            add(r, "half-close status=%d", (int) px_grpc_close(r->token));
        }
    }

    free(cmd);
    free(bigmsg);

    if (r->cancel_after == 0) {
        add(r, "cancel status=%d", (int) px_grpc_cancel(r->token));
        answer(ctx, r, 200);
    }

    return PX_PAUSE;
}


static void
on_grpc_initial(uint32_t ctx, uint32_t token, uint32_t n)
{
    req_t *r = req_of(ctx, "initial", token);

    if (r) {
        md_line(r, "initial", PX_MAP_GRPC_CALL_INITIAL_METADATA, n);
    }
}


static void
on_grpc_trailing(uint32_t ctx, uint32_t token, uint32_t n)
{
    req_t *r = req_of(ctx, "trailing", token);

    if (r) {
        md_line(r, "trailing", PX_MAP_GRPC_CALL_TRAILING_METADATA, n);
    }
}


static void
on_grpc_receive(uint32_t ctx, uint32_t token, uint32_t size)
{
    char      *data = NULL;
    size_t     len = 0;
    uint32_t   code = 999;
    req_t     *r;

    if (token == configure_token && px_root_of(ctx) == ctx) {
        (void) px_get_buffer(PX_BUFFER_GRPC_CALL_MESSAGE, 0, size, &data,
                             &len);
        px_logf(PX_LOG_INFO, "grpc_callout: configure answer data=%.*s",
                (int) len, data ? data : "");
        free(data);
        return;
    }

    r = req_of(ctx, "message", token);
    if (r == NULL) {
        return;
    }

    (void) px_get_buffer(PX_BUFFER_GRPC_CALL_MESSAGE, 0, size, &data, &len);
    (void) px_get_status(&code, NULL, NULL);
    if (len <= 64) {
        add(r, "message len=%u data=%.*s status=%u", size, (int) len,
            data ? data : "", code);
    } else {
        add(r, "message len=%u sum=%u status=%u", size, sum(data, len),
            code);
    }
    r->received++;

    if (r->auth) {
        if (len == 7 && memcmp(data, "letmein", 7) == 0) {
            px_set_effective_context(ctx);
            px_add_header(PX_MAP_HTTP_REQUEST_HEADERS, "x-auth", "ok");
            r->answered = 1;
            px_continue_request();
        } else {
            answer(ctx, r, 403);
        }
        free(data);
        return;
    }
    free(data);

    if (r->cancel_after > 0 && r->received >= r->cancel_after) {
        add(r, "cancel status=%d", (int) px_grpc_cancel(token));
        answer(ctx, r, 200);
        return;
    }

    /* a unary call ends with its message (as in Envoy) */
    if (r->unary) {
        answer(ctx, r, 200);
    }
}


static void
on_grpc_close(uint32_t ctx, uint32_t token, uint32_t status)
{
    char      *msg = NULL;
    size_t     len = 0;
    uint32_t   code = 999;
    req_t     *r = req_of(ctx, "close", token);

    if (r == NULL) {
        return;
    }

    (void) px_get_status(&code, &msg, &len);
    add(r, "close status=%u code=%u message=%.*s", status, code, (int) len,
        msg ? msg : "");
    free(msg);
    answer(ctx, r, r->auth ? 403 : 200);
}


static void
on_delete(uint32_t ctx)
{
    req_t *r = px_get_context_data(ctx);

    if (r) {
        free(r->out);
        free(r);
    }
}


static px_plugin_t plugin = {
    .on_configure = on_configure,
    .on_request_headers = on_request_headers,
    .on_grpc_receive_initial_metadata = on_grpc_initial,
    .on_grpc_receive = on_grpc_receive,
    .on_grpc_receive_trailing_metadata = on_grpc_trailing,
    .on_grpc_close = on_grpc_close,
    .on_delete = on_delete,
};

PX_PLUGIN(plugin);
