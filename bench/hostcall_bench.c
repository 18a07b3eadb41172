/*
 * Host call and callback round-trip costs, with engine baselines measured
 * in the same run. Variants alternate round by round; per-round figures
 * and the median are printed (these machines are noisy: compare medians
 * and ratios, not single runs).
 *
 *   hostcall_bench BUILD_DIR [rounds [variant]]
 *
 * With a variant number (0 ..), only that variant runs: for perf record
 * (PW_BENCH_V8_FLAGS=--perf-basic-prof names the wasm functions).
 * PW_BENCH_CLOCK=cpu times the thread's CPU time instead of the wall
 * clock: on a shared machine, time spent preempted is not counted.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <pw/pw.h>

#define N 200000

static pw_map_t *hdrs;

static int
bench_map_get(const pw_hctx_t *c, pw_map_type_t t, pw_str_t k, pw_str_t *v)
{
    return pw_map_get(hdrs, k, v);
}

static int
bench_map_add(const pw_hctx_t *c, pw_map_type_t t, pw_str_t k, pw_str_t v)
{
    /* replace, so the map does not grow over the run */
    return pw_map_replace(hdrs, k, v);
}

static int
bench_noop(void *d, pw_einstance_t *i, const pw_val_t *a, pw_val_t *r,
    const char **trap)
{
    return PW_OK;
}

static clockid_t clock_id = CLOCK_MONOTONIC;

static double
now_ns(void)
{
    struct timespec ts;

    clock_gettime(clock_id, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static uint8_t *
slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    uint8_t *b;
    long n;

    if (f == NULL) {
        fprintf(stderr, "cannot open %s\n", path);
        exit(2);
    }
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    b = malloc((size_t) n);
    if (b == NULL || fread(b, 1, (size_t) n, f) != (size_t) n) {
        exit(2);
    }
    fclose(f);
    *len = (size_t) n;
    return b;
}

static int
cmp(const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;
    return x < y ? -1 : x > y;
}

static double
median(double *v, int n)
{
    double s[64];

    memcpy(s, v, sizeof(double) * (size_t) n);
    qsort(s, (size_t) n, sizeof(double), cmp);
    return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

enum { V_IMPORT, V_EXPORT, V_GETHDR, V_ROUNDTRIP, V_FILTER, V_MAX };

static const char *names[V_MAX] = {
    "engine: empty wasm->host import call",
    "engine: empty host->wasm export call",
    "proxy_get_header_map_value (small header)",
    "on_request_headers round trip (core)",
    "on_response_headers: get + add header",
};

int
main(int argc, char **argv)
{
    char err[256], path[512];
    const char *build = argc > 1 ? argv[1] : "build/rel";
    int rounds = argc > 2 ? atoi(argv[2]) : 7, r, v, i;
    int only = argc > 3 ? atoi(argv[3]) : -1;
    double res[V_MAX][64], t0, med[V_MAX];
    pw_engine_t *e;
    pw_emodule_t *emod;
    pw_einstance_t *einst;
    pw_efunc_t *loop, *empty;
    pw_module_t *mod;
    pw_vm_t *vm;
    pw_plugin_t *p;
    pw_stream_t *s;
    pw_action_t act;
    pw_val_t a, out;
    char sig[PW_SIG_MAX];
    uint8_t *bytes;
    size_t len;
    pw_host_t host = { .map_get = bench_map_get, .map_add = bench_map_add };
    pw_import_t imp = { "bench", "noop", ":", bench_noop, NULL, 0 };
    pw_vm_conf_t vc = { .host = &host, .vm_id = PW_STR("bench") };
    pw_plugin_conf_t pc = { .name = PW_STR("bench") };

    if (getenv("PW_BENCH_CLOCK") && strcmp(getenv("PW_BENCH_CLOCK"), "cpu")
        == 0)
    {
        clock_id = CLOCK_THREAD_CPUTIME_ID;
    }
    if (rounds < 1 || rounds > 64) {
        rounds = 7;
    }
    if (pw_engine_v8.init(&(pw_engine_conf_t){
                              .flags = getenv("PW_BENCH_V8_FLAGS") },
                          &e, err, sizeof(err)))
    {
        fprintf(stderr, "engine: %s\n", err);
        return 1;
    }

    snprintf(path, sizeof(path), "%s/bench/bench_engine.wasm", build);
    bytes = slurp(path, &len);
    if (pw_engine_v8.compile(e, bytes, len, &emod, err, sizeof(err))
        || pw_engine_v8.instantiate(emod, &imp, 1, &einst, err, sizeof(err))
        || pw_engine_v8.lookup(einst, "loop", &loop, sig)
        || pw_engine_v8.lookup(einst, "empty", &empty, sig))
    {
        fprintf(stderr, "engine module: %s\n", err);
        return 1;
    }
    free(bytes);

    snprintf(path, sizeof(path), "%s/bench/bench_abi.wasm", build);
    bytes = slurp(path, &len);
    if (pw_module_load(&pw_engine_v8, e, bytes, len, &mod, err, sizeof(err))
        || pw_vm_new(mod, &vc, &vm, err, sizeof(err))
        || pw_plugin_new(vm, &pc, &p, err, sizeof(err))
        || pw_stream_new(p, PW_STREAM_HTTP, NULL, &s))
    {
        fprintf(stderr, "plugin: %s\n", err);
        return 1;
    }
    free(bytes);
    pw_map_new(&hdrs);
    pw_map_add(hdrs, PW_STR(":path"), PW_STR("/"));
    pw_map_add(hdrs, PW_STR("x-small"), PW_STR("abc"));

    for (r = 0; r < rounds; r++) {
        for (v = 0; v < V_MAX; v++) {
            if (only >= 0 && v != only) {
                res[v][r] = 0;
                continue;
            }
            t0 = now_ns();
            switch (v) {
            case V_IMPORT:
                a.kind = PW_I32;
                a.of.i32 = N;
                pw_engine_v8.call(einst, loop, &a, 1, NULL, 0, NULL);
                break;
            case V_EXPORT:
                a.kind = PW_I32;
                out.kind = PW_I32;
                for (i = 0; i < N; i++) {
                    a.of.i32 = i;
                    pw_engine_v8.call(einst, empty, &a, 1, &out, 1, NULL);
                }
                break;
            case V_GETHDR:
                pw_http_request_headers(s, N, 1, &act);
                break;
            case V_ROUNDTRIP:
                for (i = 0; i < N; i++) {
                    pw_http_request_headers(s, 0, 1, &act);
                }
                break;
            case V_FILTER:
                for (i = 0; i < N; i++) {
                    pw_http_response_headers(s, 2, 0, &act);
                }
                break;
            }
            res[v][r] = (now_ns() - t0) / N;
        }
    }
    if (pw_vm_failed(vm)) {
        fprintf(stderr, "plugin failed: %s\n", pw_vm_fail_reason(vm));
        return 1;
    }

    printf("hostcall_bench: %d rounds x %d calls, variants alternated\n\n",
           rounds, N);
    for (v = 0; v < V_MAX; v++) {
        med[v] = median(res[v], rounds);
        printf("%-44s median %7.1f ns   rounds:", names[v], med[v]);
        for (r = 0; r < rounds; r++) {
            printf(" %.1f", res[v][r]);
        }
        printf("\n");
    }
    printf("\nratios (same run):\n");
    printf("  get_header_map_value / empty import call   %5.2f\n",
           med[V_GETHDR] / med[V_IMPORT]);
    printf("  on_request_headers round trip / empty export call  %5.2f\n",
           med[V_ROUNDTRIP] / med[V_EXPORT]);
    printf("\ntargets: get_header_map_value < 60 ns (Envoy's V8: 85 ns for "
           "an empty call): %s\n", med[V_GETHDR] < 60 ? "met" : "NOT met");
    printf("         on_request_headers round trip < 250 ns: %s\n",
           med[V_ROUNDTRIP] < 250 ? "met" : "NOT met");

    pw_stream_free(s);
    pw_vm_free(vm);
    pw_module_free(mod);
    pw_engine_v8.instance_free(einst);
    pw_engine_v8.module_free(emod);
    pw_engine_v8.destroy(e);
    pw_map_free(hdrs);
    return 0;
}
