/*
 * Callout targets: upstream blocks, address literals, host names (see
 * ngx_http_pw_callout_target.h).
 */
#include "ngx_http_pw_callout_target.h"


/* the next primary server address of a block, shared by all blocks */
static ngx_uint_t  ngx_http_pw_target_turn;


static ngx_int_t
ngx_http_pw_target_set(ngx_http_pw_target_t *t, struct sockaddr *sa,
    socklen_t len, in_port_t port)
{
    if (len > NGX_SOCKADDRLEN) {
        return NGX_DECLINED;
    }

    ngx_memcpy(t->sockaddr, sa, len);
    t->socklen = len;

    if (port) {
        ngx_inet_set_port((struct sockaddr *) t->sockaddr, port);
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_pw_target_block(ngx_http_upstream_srv_conf_t *uscf,
    ngx_http_pw_target_t *t, const char **err)
{
    ngx_uint_t                   i, n, pick;
    ngx_http_upstream_server_t  *us;

    t->upstream = uscf;

    n = 0;
    us = uscf->servers ? uscf->servers->elts : NULL;

    for (i = 0; us && i < uscf->servers->nelts; i++) {
        if (!us[i].backup && !us[i].down) {
            n += us[i].naddrs;
        }
    }

    if (n == 0) {
        *err = "the upstream block has no usable address";
        return NGX_ABORT;
    }

    pick = ngx_http_pw_target_turn++ % n;

    for (i = 0; i < uscf->servers->nelts; i++) {
        if (us[i].backup || us[i].down) {
            continue;
        }

        if (pick < us[i].naddrs) {
            if (ngx_http_pw_target_set(t, us[i].addrs[pick].sockaddr,
                                       us[i].addrs[pick].socklen, 0)
                != NGX_OK)
            {
                *err = "unsupported address";
                return NGX_ABORT;
            }
            return NGX_OK;
        }

        pick -= us[i].naddrs;
    }

    *err = "the upstream block has no usable address";
    return NGX_ABORT;
}


ngx_int_t
ngx_http_pw_target_parse(ngx_str_t *name, in_port_t default_port,
    ngx_http_pw_target_t *t, const char **err)
{
    in_addr_t                        in_addr;
    ngx_int_t                        rc;
    ngx_uint_t                       i;
    ngx_url_t                        u;
    ngx_pool_t                      *pool;
    struct sockaddr_in               sin;
    ngx_http_upstream_srv_conf_t   **uscfp;
    ngx_http_upstream_main_conf_t   *umcf;

    ngx_memzero(t, sizeof(ngx_http_pw_target_t));
    *err = NULL;

    if (name->len == 0) {
        return NGX_DECLINED;
    }

    umcf = ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                               ngx_http_upstream_module);
    uscfp = umcf ? umcf->upstreams.elts : NULL;

    /* without regard to case, as nginx names its blocks */
    for (i = 0; umcf && i < umcf->upstreams.nelts; i++) {
        if ((uscfp[i]->flags & NGX_HTTP_UPSTREAM_CREATE)
            && uscfp[i]->host.len == name->len
            && ngx_strncasecmp(uscfp[i]->host.data, name->data, name->len)
               == 0)
        {
            return ngx_http_pw_target_block(uscfp[i], t, err);
        }
    }

    /* ngx_parse_url allocates only for IPv6 and unix: addresses: a pool
     * of its own keeps the cycle's from growing */
    pool = ngx_create_pool(512, ngx_cycle->log);
    if (pool == NULL) {
        return NGX_ERROR;
    }

    ngx_memzero(&u, sizeof(ngx_url_t));
    u.url = *name;
    u.default_port = default_port;
    u.no_resolve = 1;

    if (ngx_parse_url(pool, &u) != NGX_OK) {
        *err = u.err ? u.err : "not an address";
        rc = NGX_ABORT;
        goto done;
    }

    if (u.uri.len > 0 || (u.host.len == 0 && u.naddrs == 0)) {
        *err = "not an address (no path may follow)";
        rc = NGX_ABORT;
        goto done;
    }

    in_addr = INADDR_NONE;
    if (u.naddrs == 0) {
        in_addr = ngx_inet_addr(u.host.data, u.host.len);
    }

    if (u.no_port && u.naddrs == 0 && in_addr == INADDR_NONE) {
        /* a bare word: the name of an upstream block that does not
         * exist, rather than a host without its port */
        rc = NGX_DECLINED;
        goto done;
    }

    if (u.no_port && default_port == 0) {
        *err = "a port is required";
        rc = NGX_ABORT;
        goto done;
    }

    if (u.naddrs > 0) {
        rc = ngx_http_pw_target_set(t, u.addrs[0].sockaddr,
                                    u.addrs[0].socklen, 0);

    } else if (in_addr != INADDR_NONE) {
        ngx_memzero(&sin, sizeof(struct sockaddr_in));
        sin.sin_family = AF_INET;
        sin.sin_addr.s_addr = in_addr;
        rc = ngx_http_pw_target_set(t, (struct sockaddr *) &sin,
                                    sizeof(struct sockaddr_in), u.port);

    } else {
        /* a host name, for the caller to resolve */
        t->host = u.host;
        t->port = u.port;
        rc = NGX_OK;
    }

    if (rc != NGX_OK) {
        *err = "unsupported address";
        rc = NGX_ABORT;
    }

done:

    ngx_destroy_pool(pool);

    return rc;
}


ngx_resolver_t *
ngx_http_pw_target_resolver(ngx_http_request_t *r, ngx_msec_t *timeout)
{
    ngx_http_conf_ctx_t       *hctx;
    ngx_http_core_loc_conf_t  *clcf;

    if (r) {
        clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    } else {
        hctx = (ngx_http_conf_ctx_t *) ngx_get_conf(ngx_cycle->conf_ctx,
                                                    ngx_http_module);
        if (hctx == NULL) {
            return NULL;
        }
        clcf = hctx->loc_conf[ngx_http_core_module.ctx_index];
    }

    /* without a `resolver` directive nginx has one with no server */
    if (clcf == NULL || clcf->resolver == NULL
        || clcf->resolver->connections.nelts == 0)
    {
        return NULL;
    }

    *timeout = clcf->resolver_timeout;

    return clcf->resolver;
}


ngx_int_t
ngx_http_pw_target_resolve(ngx_resolver_t *r, ngx_msec_t timeout,
    ngx_str_t *host, ngx_resolver_handler_pt handler, void *data,
    ngx_resolver_ctx_t **held)
{
    ngx_resolver_ctx_t  *ctx;

    *held = NULL;

    ctx = ngx_resolve_start(r, NULL);
    if (ctx == NULL || ctx == NGX_NO_RESOLVER) {
        return NGX_ERROR;
    }

    ctx->name = *host;
    ctx->handler = handler;
    ctx->data = data;
    ctx->timeout = timeout;

    /* set before: a cached answer runs the handler inside */
    *held = ctx;

    if (ngx_resolve_name(ctx) != NGX_OK) {
        /* ctx was freed by the resolver */
        *held = NULL;
        return NGX_ERROR;
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_pw_target_resolved(ngx_resolver_ctx_t *ctx, ngx_http_pw_target_t *t)
{
    if (ctx->state || ctx->naddrs == 0) {
        return NGX_DECLINED;
    }

    return ngx_http_pw_target_set(t, ctx->addrs[0].sockaddr,
                                  ctx->addrs[0].socklen, t->port);
}
