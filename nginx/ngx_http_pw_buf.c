/*
 * The growable byte buffer of ngx_pw.h (ngx_http_pw_buf_t), shared by the
 * callouts: malloc'd rather than from a pool, as a buffer lives as long as
 * its call or connection and may grow many times.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_pw.h"


#define NGX_HTTP_PW_BUF_MIN  256


ngx_int_t
ngx_http_pw_buf_grow(ngx_http_pw_buf_t *b, size_t size)
{
    u_char  *p;
    size_t   cap;

    if (size <= b->cap) {
        return NGX_OK;
    }

    cap = b->cap ? b->cap : NGX_HTTP_PW_BUF_MIN;
    while (cap < size) {
        if (cap > (size_t) -1 / 2) {
            cap = size;
            break;
        }
        cap *= 2;
    }

    p = realloc(b->data, cap);
    if (p == NULL) {
        return NGX_ERROR;
    }

    b->data = p;
    b->cap = cap;

    return NGX_OK;
}


ngx_int_t
ngx_http_pw_buf_add(ngx_http_pw_buf_t *b, const void *data, size_t len)
{
    if (len == 0) {
        return NGX_OK;
    }

    if (len > (size_t) -1 - b->len
        || ngx_http_pw_buf_grow(b, b->len + len) != NGX_OK)
    {
        return NGX_ERROR;
    }

    ngx_memcpy(b->data + b->len, data, len);
    b->len += len;

    return NGX_OK;
}


void
ngx_http_pw_buf_free(ngx_http_pw_buf_t *b)
{
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}
