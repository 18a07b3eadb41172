/*
 * TLS for callouts (ngx_pw_tls.c): the wasm{} settings (tls_* directives),
 * the client SSL context made at configuration time, and, per worker, TLS
 * on a connected ngx_connection_t with verification and session reuse.
 * Shared by the HTTP and gRPC callouts; docs/CALLOUTS.md says what a
 * plugin sees.
 *
 * A caller connects (ngx_event_connect_peer), then:
 *
 *     ngx_pw_tls_target()     does this call use TLS, and with what name;
 *     ngx_pw_tls_handshake()  TLS on the connected c, verified as the
 *                             wasm{} block says; the end comes to a
 *                             handler (never inside the call) unless it
 *                             is known at once;
 *     c->send / c->recv       are TLS's once the handshake passed;
 *     ngx_pw_tls_close()      closes c, TLS or not (use it for every
 *                             connection that may have seen a handshake).
 *
 * Timing is the caller's: the layer sets no timer; a caller whose timer
 * fires during the handshake closes c with ngx_pw_tls_close().
 */
#ifndef NGX_PW_TLS_H
#define NGX_PW_TLS_H

#include "ngx_pw.h"


/* ALPN list for gRPC (wire format: length-prefixed names). */
#define NGX_PW_TLS_ALPN_H2    "\x02h2"


typedef struct {
    ngx_str_t      server_name;  /* SNI (not sent for an IP address) and
                                    the name the certificate must match */
    ngx_str_t      alpn;         /* ALPN list in wire format, or empty */
    ngx_str_t      peer;         /* the address ("IP:port"): with
                                    server_name and alpn it keys session
                                    reuse; empty: no reuse */
} ngx_pw_tls_params_t;

/* err: NULL when the handshake and the checks passed, else why not
 * ("certificate verify failed: ...", "hostname mismatch: ..."); valid
 * until the next ngx_pw_tls_* call. c->data is still the caller's. */
typedef void (*ngx_pw_tls_handler_pt)(ngx_connection_t *c, const char *err);


/* ---- configuration (called by ngx_pw_core_module.c) ---- */

/* A `tls_*` line of the wasm{} block. */
char *ngx_pw_tls_directive(ngx_conf_t *cf, ngx_pw_core_conf_t *pcf);

/* The end of the wasm{} block: the SSL context (a bad CA file fails here,
 * so `nginx -t` tells). */
char *ngx_pw_tls_block_done(ngx_conf_t *cf, ngx_pw_core_conf_t *pcf);

/* The whole configuration read: tls_upstream names checked against the
 * upstream{} blocks. */
char *ngx_pw_tls_init_conf(ngx_cycle_t *cycle, ngx_pw_core_conf_t *pcf);


/* ---- worker ---- */

/*
 * Whether a call uses TLS. target: the target as the plugin wrote it,
 * without an http:// or https:// prefix; https: the plugin asked for TLS
 * (an https:// prefix, :scheme https); authority: the call's :authority
 * (may be empty); host: the target's host (an upstream block's name, a
 * host name or an address).
 *
 * 1: TLS, *server_name set (tls_upstream's server_name=, else the host of
 * authority without its port, else host; it points into one of those);
 * 0: plain; NGX_ERROR: TLS asked but not available (no wasm{} block, or
 * nginx without SSL), logged.
 */
ngx_int_t ngx_pw_tls_target(ngx_str_t *target, ngx_uint_t https,
    ngx_str_t *authority, ngx_str_t *host, ngx_str_t *server_name,
    ngx_log_t *log);

/*
 * Start TLS on c (connected: its connect() has completed).
 * NGX_AGAIN: handler(c, err) will be called from an event handler; until
 * then c's read and write handlers are TLS's, afterwards the caller sets
 * its own again. NGX_OK: done and checked already (handler not called).
 * NGX_ERROR: failed at once, *err says why. In every case c is the
 * caller's to close with ngx_pw_tls_close().
 */
ngx_int_t ngx_pw_tls_handshake(ngx_connection_t *c, ngx_pw_tls_params_t *p,
    ngx_pw_tls_handler_pt handler, const char **err);

/* The ALPN protocol the server chose (empty when none). */
void ngx_pw_tls_alpn(ngx_connection_t *c, ngx_str_t *proto);

/* Close c: a TLS connection sends its close_notify without waiting for
 * the peer's and frees its TLS state; c->pool, when set, is destroyed. */
void ngx_pw_tls_close(ngx_connection_t *c);

#endif /* NGX_PW_TLS_H */
