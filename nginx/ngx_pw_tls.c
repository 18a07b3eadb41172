/*
 * TLS for callouts: the tls_* settings of the wasm{} block, the client SSL
 * context (made while the configuration is read), and per worker the
 * handshake, its checks and session reuse. ngx_pw_tls.h has the contract.
 *
 * Verification runs after the handshake, not inside it: the context's
 * verify callback accepts everything and the result is read afterwards,
 * so a failed call can say why (the chain's error, a name mismatch)
 * instead of a bare handshake failure.
 */
#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include "ngx_pw_tls.h"


#define NGX_PW_TLS_VERIFY_DEPTH   100
#define NGX_PW_TLS_SESSIONS_MAX   64        /* per worker */
#define NGX_PW_TLS_NAME_MAX       255


typedef struct {
    ngx_str_t                   name;        /* as the plugin names it */
    ngx_str_t                   server_name; /* empty: from the call */
    u_char                     *file;
    ngx_uint_t                  line;
} ngx_pw_tls_upstream_t;

typedef struct {
    ngx_str_t                   trusted;     /* empty: the system store */
    ngx_str_t                   certificate; /* client identity, PEM */
    ngx_str_t                   certificate_key;
    ngx_flag_t                  verify_cert;
    ngx_flag_t                  verify_host;
    ngx_flag_t                  no_verify_warn;
    ngx_array_t                 upstreams;   /* ngx_pw_tls_upstream_t */
#if (NGX_SSL)
    ngx_ssl_t                  *ssl;
#endif
} ngx_pw_tls_conf_t;


#if (NGX_SSL)

/* A connection's handshake, found from its SSL object. */
typedef struct {
    ngx_pw_tls_handler_pt       handler;
    ngx_str_t                   name;        /* NUL-terminated */
    ngx_str_t                   key;         /* session cache key */
    unsigned                    ip:1;        /* name is an address */
} ngx_pw_tls_conn_t;

typedef struct {
    ngx_queue_t                 queue;
    ngx_str_t                   key;         /* after the struct */
    ngx_ssl_session_t          *session;
} ngx_pw_tls_session_t;


static int ngx_pw_tls_verify_cb(int ok, X509_STORE_CTX *store);
static void ngx_pw_tls_handshake_done(ngx_connection_t *c);
static void ngx_pw_tls_save_session(ngx_connection_t *c);


static int           ngx_pw_tls_index = -1;
static ngx_queue_t   ngx_pw_tls_sessions;
static ngx_uint_t    ngx_pw_tls_nsessions;
static ngx_uint_t    ngx_pw_tls_sessions_ready;
static ngx_uint_t    ngx_pw_tls_warned;
static u_char        ngx_pw_tls_errbuf[NGX_PW_TLS_NAME_MAX + 128];

#endif


static ngx_pw_tls_conf_t *
ngx_pw_tls_conf(ngx_conf_t *cf, ngx_pw_core_conf_t *pcf)
{
    ngx_pw_tls_conf_t  *tcf = pcf->tls;

    if (tcf) {
        return tcf;
    }

    tcf = ngx_pcalloc(cf->pool, sizeof(ngx_pw_tls_conf_t));
    if (tcf == NULL) {
        return NULL;
    }

    if (ngx_array_init(&tcf->upstreams, cf->pool, 4,
                       sizeof(ngx_pw_tls_upstream_t))
        != NGX_OK)
    {
        return NULL;
    }

    tcf->verify_cert = NGX_CONF_UNSET;
    tcf->verify_host = NGX_CONF_UNSET;
    tcf->no_verify_warn = NGX_CONF_UNSET;
    pcf->tls = tcf;

    return tcf;
}


static ngx_int_t
ngx_pw_tls_is(ngx_str_t *s, const char *lit)
{
    size_t  n = ngx_strlen(lit);

    return s->len == n && ngx_strncmp(s->data, lit, n) == 0;
}


static char *
ngx_pw_tls_flag(ngx_conf_t *cf, ngx_flag_t *fp)
{
    ngx_str_t  *value = cf->args->elts;

    if (cf->args->nelts != 2) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "wasm: \"%V\" takes on or off", &value[0]);
        return NGX_CONF_ERROR;
    }

    if (*fp != NGX_CONF_UNSET) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "wasm: \"%V\" is duplicate", &value[0]);
        return NGX_CONF_ERROR;
    }

    if (ngx_pw_tls_is(&value[1], "on")) {
        *fp = 1;

    } else if (ngx_pw_tls_is(&value[1], "off")) {
        *fp = 0;

    } else {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "wasm: invalid value \"%V\" for \"%V\" (on or "
                           "off)", &value[1], &value[0]);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* A directive taking one PATH, given once. */
static char *
ngx_pw_tls_path(ngx_conf_t *cf, ngx_str_t *path)
{
    ngx_str_t  *value = cf->args->elts;

    if (cf->args->nelts != 2 || value[1].len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "wasm: \"%V\" takes one PATH", &value[0]);
        return NGX_CONF_ERROR;
    }

    if (path->data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "wasm: \"%V\" is duplicate", &value[0]);
        return NGX_CONF_ERROR;
    }

    *path = value[1];

    return NGX_CONF_OK;
}


#if (NGX_SSL)

/* The full name of a file the block names, checked to be readable: a
 * plain word first, OpenSSL's own is a queue of codes. */
static ngx_int_t
ngx_pw_tls_file(ngx_conf_t *cf, const char *directive, ngx_str_t *path)
{
    ngx_fd_t  fd;

    if (ngx_conf_full_name(cf->cycle, path, 1) != NGX_OK) {
        return NGX_ERROR;
    }

    fd = ngx_open_file(path->data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);
    if (fd == NGX_INVALID_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "wasm: %s: cannot open \"%V\"", directive, path);
        return NGX_ERROR;
    }
    ngx_close_file(fd);

    return NGX_OK;
}

#endif


/* tls_upstream NAME [server_name=NAME] */
static char *
ngx_pw_tls_upstream(ngx_conf_t *cf, ngx_pw_tls_conf_t *tcf)
{
    ngx_str_t              *value, sn;
    ngx_uint_t              i;
    ngx_pw_tls_upstream_t  *tu;

    value = cf->args->elts;

    if (cf->args->nelts != 2 && cf->args->nelts != 3) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "wasm: \"tls_upstream\" takes NAME "
                           "[server_name=NAME]");
        return NGX_CONF_ERROR;
    }

    if (value[1].len == 0 || ngx_strlchr(value[1].data,
                                         value[1].data + value[1].len, '/'))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "wasm: invalid tls_upstream \"%V\" (an upstream "
                           "block's name or host:port, without a scheme)",
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    ngx_str_null(&sn);

    if (cf->args->nelts == 3) {
        if (value[2].len <= 12
            || ngx_strncmp(value[2].data, "server_name=", 12) != 0
            || value[2].len - 12 > NGX_PW_TLS_NAME_MAX)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "wasm: invalid \"%V\" for tls_upstream (want "
                               "server_name=NAME)", &value[2]);
            return NGX_CONF_ERROR;
        }
        sn.data = value[2].data + 12;
        sn.len = value[2].len - 12;
    }

    tu = tcf->upstreams.elts;
    for (i = 0; i < tcf->upstreams.nelts; i++) {
        if (tu[i].name.len == value[1].len
            && ngx_strncasecmp(tu[i].name.data, value[1].data,
                               value[1].len) == 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "wasm: tls_upstream \"%V\" is declared twice",
                               &value[1]);
            return NGX_CONF_ERROR;
        }
    }

    tu = ngx_array_push(&tcf->upstreams);
    if (tu == NULL) {
        return NGX_CONF_ERROR;
    }

    tu->name = value[1];
    tu->server_name = sn;
    tu->file = cf->conf_file->file.name.data;
    tu->line = cf->conf_file->line;

    return NGX_CONF_OK;
}


char *
ngx_pw_tls_directive(ngx_conf_t *cf, ngx_pw_core_conf_t *pcf)
{
    ngx_str_t          *value;
    ngx_pw_tls_conf_t  *tcf;

    value = cf->args->elts;

    tcf = ngx_pw_tls_conf(cf, pcf);
    if (tcf == NULL) {
        return NGX_CONF_ERROR;
    }

    if (ngx_pw_tls_is(&value[0], "tls_trusted_certificate")) {
        return ngx_pw_tls_path(cf, &tcf->trusted);
    }

    if (ngx_pw_tls_is(&value[0], "tls_certificate")) {
        return ngx_pw_tls_path(cf, &tcf->certificate);
    }

    if (ngx_pw_tls_is(&value[0], "tls_certificate_key")) {
        return ngx_pw_tls_path(cf, &tcf->certificate_key);
    }

    if (ngx_pw_tls_is(&value[0], "tls_verify_cert")) {
        return ngx_pw_tls_flag(cf, &tcf->verify_cert);
    }

    if (ngx_pw_tls_is(&value[0], "tls_verify_host")) {
        return ngx_pw_tls_flag(cf, &tcf->verify_host);
    }

    if (ngx_pw_tls_is(&value[0], "tls_no_verify_warn")) {
        return ngx_pw_tls_flag(cf, &tcf->no_verify_warn);
    }

    if (ngx_pw_tls_is(&value[0], "tls_upstream")) {
        return ngx_pw_tls_upstream(cf, tcf);
    }

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "wasm: unknown directive \"%V\"", &value[0]);

    return NGX_CONF_ERROR;
}


char *
ngx_pw_tls_block_done(ngx_conf_t *cf, ngx_pw_core_conf_t *pcf)
{
    ngx_pw_tls_conf_t   *tcf;
#if (NGX_SSL)
    ngx_ssl_t           *ssl;
    ngx_pool_cleanup_t  *cln;
#endif

    tcf = ngx_pw_tls_conf(cf, pcf);
    if (tcf == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_conf_init_value(tcf->verify_cert, 1);
    ngx_conf_init_value(tcf->verify_host, 1);
    ngx_conf_init_value(tcf->no_verify_warn, 0);

    if ((tcf->certificate.len == 0) != (tcf->certificate_key.len == 0)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "wasm: \"%s\" is set without \"%s\" (a client "
                           "certificate needs both)",
                           tcf->certificate.len ? "tls_certificate"
                                                : "tls_certificate_key",
                           tcf->certificate.len ? "tls_certificate_key"
                                                : "tls_certificate");
        return NGX_CONF_ERROR;
    }

#if (NGX_SSL)

    if (ngx_pw_tls_index == -1) {
        ngx_pw_tls_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
        if (ngx_pw_tls_index == -1) {
            ngx_ssl_error(NGX_LOG_EMERG, cf->log, 0,
                          "wasm: SSL_get_ex_new_index() failed");
            return NGX_CONF_ERROR;
        }
    }

    ssl = ngx_pcalloc(cf->pool, sizeof(ngx_ssl_t));
    if (ssl == NULL) {
        return NGX_CONF_ERROR;
    }
    ssl->log = cf->log;

    if (ngx_ssl_create(ssl, NGX_SSL_TLSv1_2|NGX_SSL_TLSv1_3, NULL)
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        ngx_ssl_cleanup_ctx(ssl);
        return NGX_CONF_ERROR;
    }
    cln->handler = ngx_ssl_cleanup_ctx;
    cln->data = ssl;

    if (tcf->trusted.len) {
        if (ngx_pw_tls_file(cf, "tls_trusted_certificate", &tcf->trusted)
            != NGX_OK)
        {
            return NGX_CONF_ERROR;
        }

        if (ngx_ssl_trusted_certificate(cf, ssl, &tcf->trusted,
                                        NGX_PW_TLS_VERIFY_DEPTH)
            != NGX_OK)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "wasm: tls_trusted_certificate: \"%V\" has "
                               "no usable PEM certificates",
                               &tcf->trusted);
            return NGX_CONF_ERROR;
        }

    } else if (tcf->verify_cert
               && SSL_CTX_set_default_verify_paths(ssl->ctx) != 1)
    {
        ngx_ssl_error(NGX_LOG_EMERG, cf->log, 0,
                      "wasm: cannot load the system's trusted "
                      "certificates (SSL_CTX_set_default_verify_paths)");
        return NGX_CONF_ERROR;
    }

    if (tcf->certificate.len) {
        if (ngx_pw_tls_file(cf, "tls_certificate", &tcf->certificate)
            != NGX_OK
            || ngx_pw_tls_file(cf, "tls_certificate_key",
                               &tcf->certificate_key)
               != NGX_OK)
        {
            return NGX_CONF_ERROR;
        }

        /* logs OpenSSL's reason with the file; a key that is not the
         * certificate's fails here too (SSL_CTX_use_PrivateKey) */
        if (ngx_ssl_certificate(cf, ssl, &tcf->certificate,
                                &tcf->certificate_key, NULL)
            != NGX_OK)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "wasm: tls_certificate \"%V\" with "
                               "tls_certificate_key \"%V\": not a usable "
                               "PEM certificate and matching key",
                               &tcf->certificate, &tcf->certificate_key);
            return NGX_CONF_ERROR;
        }
    }

    SSL_CTX_set_verify(ssl->ctx, SSL_VERIFY_PEER, ngx_pw_tls_verify_cb);
    SSL_CTX_set_verify_depth(ssl->ctx, NGX_PW_TLS_VERIFY_DEPTH);

    /* new sessions (TLS 1.3: after the handshake) reach save_session */
    if (ngx_ssl_client_session_cache(cf, ssl, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    tcf->ssl = ssl;

#endif

    return NGX_CONF_OK;
}


char *
ngx_pw_tls_init_conf(ngx_cycle_t *cycle, ngx_pw_core_conf_t *pcf)
{
    ngx_uint_t                       i, j, found;
    ngx_pw_tls_conf_t               *tcf = pcf->tls;
    ngx_http_conf_ctx_t             *hctx;
    ngx_pw_tls_upstream_t           *tu;
    ngx_http_upstream_srv_conf_t   **uscfp;
    ngx_http_upstream_main_conf_t   *umcf;

    if (tcf == NULL) {
        return NGX_CONF_OK;
    }

    hctx = (ngx_http_conf_ctx_t *) ngx_get_conf(cycle->conf_ctx,
                                                ngx_http_module);
    umcf = hctx ? hctx->main_conf[ngx_http_upstream_module.ctx_index]
                : NULL;

    /* a bare word must name an upstream block: a typo would quietly
     * leave that target in plain text */
    tu = tcf->upstreams.elts;
    for (i = 0; i < tcf->upstreams.nelts; i++) {
        if (ngx_strlchr(tu[i].name.data, tu[i].name.data + tu[i].name.len,
                        ':'))
        {
            continue;
        }

        found = 0;
        uscfp = umcf ? umcf->upstreams.elts : NULL;
        for (j = 0; umcf && j < umcf->upstreams.nelts; j++) {
            if ((uscfp[j]->flags & NGX_HTTP_UPSTREAM_CREATE)
                && uscfp[j]->host.len == tu[i].name.len
                && ngx_strncasecmp(uscfp[j]->host.data, tu[i].name.data,
                                   tu[i].name.len) == 0)
            {
                found = 1;
                break;
            }
        }

        if (!found && ngx_inet_addr(tu[i].name.data, tu[i].name.len)
                      == INADDR_NONE)
        {
            ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                          "wasm: tls_upstream \"%V\" names no upstream "
                          "block (host:port for other targets) in %s:%ui",
                          &tu[i].name, tu[i].file, tu[i].line);
            return NGX_CONF_ERROR;
        }
    }

    return NGX_CONF_OK;
}


/* ---- worker ---- */


/* The host of an authority: without the port and IPv6 brackets. */
static void
ngx_pw_tls_authority_host(ngx_str_t *authority, ngx_str_t *host)
{
    u_char  *p, *end;

    p = authority->data;
    end = p + authority->len;

    if (p < end && *p == '[') {
        host->data = p + 1;
        p = ngx_strlchr(p, end, ']');
        host->len = p ? (size_t) (p - host->data) : 0;
        return;
    }

    host->data = p;
    p = ngx_strlchr(p, end, ':');
    host->len = (p ? p : end) - host->data;
}


ngx_int_t
ngx_pw_tls_target(ngx_str_t *target, ngx_uint_t https, ngx_str_t *authority,
    ngx_str_t *host, ngx_str_t *server_name, ngx_log_t *log)
{
    ngx_uint_t              i;
    ngx_pw_tls_conf_t      *tcf;
    ngx_pw_core_conf_t     *pcf;
    ngx_pw_tls_upstream_t  *tu, *found;

    pcf = ngx_pw_core_conf(ngx_cycle);
    tcf = pcf ? pcf->tls : NULL;

    found = NULL;
    tu = tcf ? tcf->upstreams.elts : NULL;
    for (i = 0; tcf && i < tcf->upstreams.nelts; i++) {
        if (tu[i].name.len == target->len
            && ngx_strncasecmp(tu[i].name.data, target->data, target->len)
               == 0)
        {
            found = &tu[i];
            break;
        }
    }

    if (found == NULL && !https) {
        return 0;
    }

#if (NGX_SSL)
    if (tcf == NULL || tcf->ssl == NULL)
#endif
    {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "[wasm] callout to \"%V\": TLS is not available "
                      "(no wasm{} block, or nginx without SSL)", target);
        return NGX_ERROR;
    }

    if (found && found->server_name.len) {
        *server_name = found->server_name;

    } else if (authority && authority->len) {
        ngx_pw_tls_authority_host(authority, server_name);

    } else {
        *server_name = *host;
    }

    if (server_name->len == 0) {
        *server_name = *host;
    }

    return 1;
}


#if (NGX_SSL)


static int
ngx_pw_tls_verify_cb(int ok, X509_STORE_CTX *store)
{
    /* checked after the handshake (ngx_pw_tls_check) */
    return 1;
}


static ngx_uint_t
ngx_pw_tls_is_ip(ngx_str_t *name)
{
    u_char  addr6[16];

    if (ngx_inet_addr(name->data, name->len) != INADDR_NONE) {
        return 1;
    }

#if (NGX_HAVE_INET6)
    if (ngx_inet6_addr(name->data, name->len, addr6) == NGX_OK) {
        return 1;
    }
#else
    (void) addr6;
#endif

    return 0;
}


static ngx_pw_tls_session_t *
ngx_pw_tls_session_find(ngx_str_t *key)
{
    ngx_queue_t           *q;
    ngx_pw_tls_session_t  *s;

    if (!ngx_pw_tls_sessions_ready || key->len == 0) {
        return NULL;
    }

    for (q = ngx_queue_head(&ngx_pw_tls_sessions);
         q != ngx_queue_sentinel(&ngx_pw_tls_sessions);
         q = ngx_queue_next(q))
    {
        s = ngx_queue_data(q, ngx_pw_tls_session_t, queue);
        if (s->key.len == key->len
            && ngx_memcmp(s->key.data, key->data, key->len) == 0)
        {
            return s;
        }
    }

    return NULL;
}


static void
ngx_pw_tls_session_drop(ngx_pw_tls_session_t *s)
{
    ngx_queue_remove(&s->queue);
    ngx_pw_tls_nsessions--;
    ngx_ssl_free_session(s->session);
    ngx_free(s);
}


/* The worker exits: its cached sessions go. */
static void
ngx_pw_tls_sessions_cleanup(void *data)
{
    while (!ngx_queue_empty(&ngx_pw_tls_sessions)) {
        ngx_pw_tls_session_drop(ngx_queue_data(
            ngx_queue_head(&ngx_pw_tls_sessions), ngx_pw_tls_session_t,
            queue));
    }

    ngx_pw_tls_sessions_ready = 0;
}


static void
ngx_pw_tls_save_session(ngx_connection_t *c)
{
    ngx_ssl_session_t     *session;
    ngx_pool_cleanup_t    *cln;
    ngx_pw_tls_conn_t     *tc;
    ngx_pw_tls_session_t  *s;

    tc = SSL_get_ex_data(c->ssl->connection, ngx_pw_tls_index);
    if (tc == NULL || tc->key.len == 0) {
        return;
    }

    if (!ngx_pw_tls_sessions_ready) {
        cln = ngx_pool_cleanup_add(ngx_cycle->pool, 0);
        if (cln == NULL) {
            return;
        }
        cln->handler = ngx_pw_tls_sessions_cleanup;
        ngx_queue_init(&ngx_pw_tls_sessions);
        ngx_pw_tls_sessions_ready = 1;
    }

    session = ngx_ssl_get_session(c);
    if (session == NULL) {
        return;
    }

    s = ngx_pw_tls_session_find(&tc->key);

    if (s == NULL) {
        if (ngx_pw_tls_nsessions == NGX_PW_TLS_SESSIONS_MAX) {
            ngx_pw_tls_session_drop(ngx_queue_data(
                ngx_queue_last(&ngx_pw_tls_sessions), ngx_pw_tls_session_t,
                queue));
        }

        s = ngx_alloc(sizeof(ngx_pw_tls_session_t) + tc->key.len, c->log);
        if (s == NULL) {
            ngx_ssl_free_session(session);
            return;
        }
        s->key.data = (u_char *) (s + 1);
        s->key.len = tc->key.len;
        ngx_memcpy(s->key.data, tc->key.data, tc->key.len);
        ngx_pw_tls_nsessions++;

    } else {
        ngx_queue_remove(&s->queue);
        ngx_ssl_free_session(s->session);
    }

    s->session = session;
    ngx_queue_insert_head(&ngx_pw_tls_sessions, &s->queue);
}


/* After the handshake: the certificate and the name, as configured. */
static const char *
ngx_pw_tls_check(ngx_connection_t *c, ngx_pw_tls_conn_t *tc)
{
    long                 rc;
    X509                *cert;
    ngx_pw_tls_conf_t   *tcf;

    tcf = ngx_pw_core_conf(ngx_cycle)->tls;

    if (tcf->verify_cert) {
        rc = SSL_get_verify_result(c->ssl->connection);
        if (rc != X509_V_OK) {
            ngx_snprintf(ngx_pw_tls_errbuf, sizeof(ngx_pw_tls_errbuf) - 1,
                         "certificate verify failed: %s (%l)%Z",
                         X509_verify_cert_error_string(rc), rc);
            return (const char *) ngx_pw_tls_errbuf;
        }
    }

    if (!tcf->verify_host) {
        return NULL;
    }

    cert = SSL_get_peer_certificate(c->ssl->connection);
    if (cert == NULL) {
        return "the server sent no certificate";
    }

    if (tc->ip) {
        rc = X509_check_ip_asc(cert, (const char *) tc->name.data, 0) == 1;

    } else {
        rc = ngx_ssl_check_host(c, &tc->name) == NGX_OK;
    }

    X509_free(cert);

    if (!rc) {
        ngx_snprintf(ngx_pw_tls_errbuf, sizeof(ngx_pw_tls_errbuf) - 1,
                     "hostname mismatch: the certificate is not for "
                     "\"%V\"%Z", &tc->name);
        return (const char *) ngx_pw_tls_errbuf;
    }

    return NULL;
}


/* The handshake ended (ngx_ssl_handshake_handler). */
static void
ngx_pw_tls_handshake_done(ngx_connection_t *c)
{
    const char         *err;
    ngx_pw_tls_conn_t  *tc;

    tc = SSL_get_ex_data(c->ssl->connection, ngx_pw_tls_index);

    if (!c->ssl->handshaked) {
        err = c->read->timedout || c->write->timedout
              ? "handshake timed out" : "handshake failed";

    } else {
        err = ngx_pw_tls_check(c, tc);
        if (err) {
            /* a session that failed the checks is not offered again */
            ngx_pw_tls_session_t  *s = ngx_pw_tls_session_find(&tc->key);

            if (s) {
                ngx_pw_tls_session_drop(s);
            }
        }
    }

    tc->handler(c, err);
}


static void
ngx_pw_tls_warn_once(ngx_pw_tls_conf_t *tcf, ngx_log_t *log)
{
    if (ngx_pw_tls_warned || tcf->no_verify_warn
        || (tcf->verify_cert && tcf->verify_host))
    {
        return;
    }

    ngx_pw_tls_warned = 1;

    ngx_log_error(NGX_LOG_WARN, log, 0,
                  "[wasm] TLS callouts do not verify %s (%s off); "
                  "\"tls_no_verify_warn on\" silences this",
                  tcf->verify_cert ? "the server's name"
                                   : "the server's certificate",
                  tcf->verify_cert ? "tls_verify_host" : "tls_verify_cert");
}


ngx_int_t
ngx_pw_tls_handshake(ngx_connection_t *c, ngx_pw_tls_params_t *p,
    ngx_pw_tls_handler_pt handler, const char **err)
{
    u_char                *q;
    ngx_int_t              rc;
    ngx_pw_tls_conf_t     *tcf;
    ngx_pw_tls_conn_t     *tc;
    ngx_pw_tls_session_t  *s;

    tcf = ngx_pw_core_conf(ngx_cycle)->tls;

    if (tcf == NULL || tcf->ssl == NULL) {
        *err = "TLS is not configured";
        return NGX_ERROR;
    }

    if (p->server_name.len == 0 || p->server_name.len > NGX_PW_TLS_NAME_MAX) {
        *err = "no usable server name";
        return NGX_ERROR;
    }

    ngx_pw_tls_warn_once(tcf, c->log);

    if (c->pool == NULL) {
        c->pool = ngx_create_pool(512, c->log);
        if (c->pool == NULL) {
            *err = "out of memory";
            return NGX_ERROR;
        }
    }

    tc = ngx_pcalloc(c->pool, sizeof(ngx_pw_tls_conn_t));
    if (tc == NULL) {
        *err = "out of memory";
        return NGX_ERROR;
    }

    tc->handler = handler;
    tc->name.len = p->server_name.len;
    tc->name.data = ngx_pnalloc(c->pool, p->server_name.len + 1);
    if (tc->name.data == NULL) {
        *err = "out of memory";
        return NGX_ERROR;
    }
    ngx_memcpy(tc->name.data, p->server_name.data, p->server_name.len);
    tc->name.data[tc->name.len] = '\0';
    tc->ip = ngx_pw_tls_is_ip(&tc->name);

    if (p->peer.len) {
        tc->key.len = p->peer.len + 1 + tc->name.len + 1 + p->alpn.len;
        tc->key.data = ngx_pnalloc(c->pool, tc->key.len);
        if (tc->key.data == NULL) {
            *err = "out of memory";
            return NGX_ERROR;
        }
        q = ngx_cpymem(tc->key.data, p->peer.data, p->peer.len);
        *q++ = ' ';
        q = ngx_cpymem(q, tc->name.data, tc->name.len);
        *q++ = ' ';
        ngx_memcpy(q, p->alpn.data, p->alpn.len);
    }

    if (ngx_ssl_create_connection(tcf->ssl, c, NGX_SSL_CLIENT) != NGX_OK) {
        *err = "cannot create the TLS connection";
        return NGX_ERROR;
    }

    if (SSL_set_ex_data(c->ssl->connection, ngx_pw_tls_index, tc) == 0) {
        *err = "SSL_set_ex_data() failed";
        return NGX_ERROR;
    }

    /* no SNI for an address (RFC 6066) */
    if (!tc->ip
        && SSL_set_tlsext_host_name(c->ssl->connection,
                                    (char *) tc->name.data) != 1)
    {
        *err = "cannot set the server name";
        return NGX_ERROR;
    }

    if (p->alpn.len
        && SSL_set_alpn_protos(c->ssl->connection, p->alpn.data,
                               (unsigned int) p->alpn.len) != 0)
    {
        *err = "cannot set ALPN";
        return NGX_ERROR;
    }

    s = ngx_pw_tls_session_find(&tc->key);
    if (s && ngx_ssl_set_session(c, s->session) != NGX_OK) {
        *err = "cannot set the TLS session";
        return NGX_ERROR;
    }

    c->ssl->save_session = ngx_pw_tls_save_session;
    c->ssl->handler = ngx_pw_tls_handshake_done;

    rc = ngx_ssl_handshake(c);

    if (rc == NGX_AGAIN) {
        return NGX_AGAIN;
    }

    if (rc != NGX_OK || !c->ssl->handshaked) {
        *err = "handshake failed";
        return NGX_ERROR;
    }

    *err = ngx_pw_tls_check(c, tc);

    return *err ? NGX_ERROR : NGX_OK;
}


void
ngx_pw_tls_alpn(ngx_connection_t *c, ngx_str_t *proto)
{
    unsigned int          len;
    const unsigned char  *data;

    ngx_str_null(proto);

    if (c->ssl == NULL) {
        return;
    }

    SSL_get0_alpn_selected(c->ssl->connection, &data, &len);
    proto->data = (u_char *) data;
    proto->len = len;
}


void
ngx_pw_tls_close(ngx_connection_t *c)
{
    if (c->ssl) {
        c->ssl->no_wait_shutdown = 1;
        if (ngx_ssl_shutdown(c) == NGX_AGAIN) {
            /* close_notify would block: give it up */
            c->error = 1;
            (void) ngx_ssl_shutdown(c);
        }
    }

    if (c->pool) {
        ngx_destroy_pool(c->pool);
        c->pool = NULL;
    }

    ngx_close_connection(c);
}


#else /* !NGX_SSL */


ngx_int_t
ngx_pw_tls_handshake(ngx_connection_t *c, ngx_pw_tls_params_t *p,
    ngx_pw_tls_handler_pt handler, const char **err)
{
    *err = "nginx was built without SSL";
    return NGX_ERROR;
}


void
ngx_pw_tls_alpn(ngx_connection_t *c, ngx_str_t *proto)
{
    ngx_str_null(proto);
}


void
ngx_pw_tls_close(ngx_connection_t *c)
{
    if (c->pool) {
        ngx_destroy_pool(c->pool);
        c->pool = NULL;
    }

    ngx_close_connection(c);
}

#endif
