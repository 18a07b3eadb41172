/*
 * Where a callout goes: what a plugin names as "upstream" in
 * proxy_http_call / proxy_grpc_call / proxy_grpc_stream, turned into an
 * address, or into a host name and port for nginx's resolver.
 *
 * Forms, in this order:
 *   NAME               an `upstream NAME {}` block of http{} (any case,
 *                      as nginx compares block names); its primary
 *                      servers (not backup, not down) one address per
 *                      call, in turn
 *   IP:port, [IPv6]:port, or a bare IP when the caller has a default port
 *   host:port          a host name: resolved by the caller at call time
 *                      (ngx_http_pw_target_resolver picks the resolver);
 *                      always with its port
 *
 * Used by the HTTP and the gRPC callouts.
 */
#ifndef NGX_HTTP_PW_CALLOUT_TARGET_H
#define NGX_HTTP_PW_CALLOUT_TARGET_H

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

typedef struct {
    /* the address; socklen 0: host is to be resolved */
    u_char                          sockaddr[NGX_SOCKADDRLEN];
    socklen_t                       socklen;
    ngx_str_t                       host;      /* points into the name */
    in_port_t                       port;
    ngx_http_upstream_srv_conf_t   *upstream;  /* the block, or NULL */
} ngx_http_pw_target_t;

/*
 * Parse name into t. default_port: for an address without one (HTTP);
 * 0: a port is required (gRPC).
 * NGX_OK; NGX_DECLINED: a bare word that names no upstream block (an
 * unknown cluster, in Envoy's terms); NGX_ABORT: not usable, *err says
 * why (a static string); NGX_ERROR: out of memory.
 */
ngx_int_t ngx_http_pw_target_parse(ngx_str_t *name, in_port_t default_port,
    ngx_http_pw_target_t *t, const char **err);

/*
 * The resolver for a callout made during request r (NULL: outside any
 * request): the `resolver` of r's location, else of the http{} block.
 * NULL when none is configured; *timeout gets its resolver_timeout.
 */
ngx_resolver_t *ngx_http_pw_target_resolver(ngx_http_request_t *r,
    ngx_msec_t *timeout);

/*
 * Start resolving host with resolver r: handler gets the answer (ctx->data
 * is data) and ends it with ngx_resolve_name_done. *held is the
 * resolution in progress, to end with ngx_resolve_name_done when its owner
 * goes first; the handler sets it to NULL. A cached answer comes before
 * this returns: the owner of data may be gone then. NGX_ERROR when the
 * resolution cannot start (*held NULL, handler not called).
 */
ngx_int_t ngx_http_pw_target_resolve(ngx_resolver_t *r, ngx_msec_t timeout,
    ngx_str_t *host, ngx_resolver_handler_pt handler, void *data,
    ngx_resolver_ctx_t **held);

/*
 * Take the first address of a successful resolution, with t->port, into
 * t. NGX_DECLINED when it has none usable.
 */
ngx_int_t ngx_http_pw_target_resolved(ngx_resolver_ctx_t *ctx,
    ngx_http_pw_target_t *t);

#endif /* NGX_HTTP_PW_CALLOUT_TARGET_H */
