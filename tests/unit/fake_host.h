/*
 * A recording fake host: a pw_host_t whose every call is appended to a log
 * the tests inspect, with header maps and bodies of "the" stream, canned
 * properties, and callouts that are only recorded (tests deliver answers
 * themselves with pw_plugin_http_response() etc.).
 */
#ifndef FAKE_HOST_H
#define FAKE_HOST_H

#include <pw/pw.h>

#define FH_MAX_PROPS 16

typedef struct {
    char kind[32];              /* the pw_host_t member: "log", "map_add" */
    pw_plugin_t *plugin;        /* from the pw_hctx_t */
    void *plugin_data;
    pw_stream_t *stream;
    void *stream_data;
    uint32_t t;                 /* map/buffer/stream type, level, status,
                                   tick ms, token */
    uint32_t a, b;              /* start,size; timeout; end_stream */
    int32_t i;                  /* grpc_status */
    char *s1, *s2, *s3;         /* NUL-terminated copies: key/value, */
    size_t s1len, s2len, s3len; /* msg, upstream/service/method, path */
    char *pairs;                /* "k: v\n" per pair (headers, md) */
    char *pairs2;               /* trailers */
    int rc;                     /* what the host answered */
} fh_rec_t;

typedef struct {
    pw_host_t host;             /* all set by fh_init; NULL some to test */
    pw_map_t *maps[4];          /* request/response headers/trailers */
    char *bufs[4];              /* bodies and TCP data */
    size_t buflens[4];
    struct {
        char path[64];          /* segments joined with '.' */
        char *value;
        size_t len;
    } props[FH_MAX_PROPS];
    size_t nprops;
    pw_log_level_t level;
    uint64_t wall_ns, mono_ns;
    const char *unknown_upstream;   /* PW_ENOTFOUND for this name */
    int fail_rc;                /* when non-zero, map/buffer writes fail */

    fh_rec_t *recs;
    size_t nrecs, cap;
} fake_host_t;

void fh_init(fake_host_t *fh);
void fh_free(fake_host_t *fh);
void fh_reset_log(fake_host_t *fh);

int fh_set_body(fake_host_t *fh, pw_buffer_type_t t, const char *data);
int fh_set_prop(fake_host_t *fh, const char *path, const void *v, size_t len);

/* Records of kind (NULL: all). */
size_t fh_count(const fake_host_t *fh, const char *kind);
/* The nth (0-based) record of kind, or NULL. */
const fh_rec_t *fh_find(const fake_host_t *fh, const char *kind, size_t nth);
const fh_rec_t *fh_last(const fake_host_t *fh, const char *kind);
/* The first "log" record whose message contains needle, or NULL. */
const fh_rec_t *fh_log_find(const fake_host_t *fh, const char *needle);

/* "k: v\n" per pair, malloc'd. */
char *fh_pairs_str(const pw_pairs_t *p);

#endif /* FAKE_HOST_H */
