/*
 * pwrun: load a Proxy-Wasm plugin and play a scripted exchange; print a
 * JSON report of everything the plugin did. See docs/PWRUN.md.
 *
 * Exit status: 0 the scenario was played (a plugin that trapped while
 * playing is reported, not an error); 1 the plugin could not be loaded,
 * linked, started or configured; 2 usage, file or scenario errors.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pwrun.h"

#define PWR_MAX_FILE (256 * 1024 * 1024)

static const char pwr_usage[] =
    "usage: pwrun [options] PLUGIN.wasm [SCENARIO.json | -]\n"
    "       pwrun --check PLUGIN.wasm\n"
    "\n"
    "Loads a Proxy-Wasm plugin, starts one root context, plays the\n"
    "scenario's exchanges and prints a JSON report on stdout.\n"
    "\n"
    "  --check            validate the module only (no engine), print its ABI\n"
    "  --config STR       plugin configuration (overrides the scenario)\n"
    "  --root-id ID       root id (overrides the scenario)\n"
    "  --vm-id ID         vm id (overrides the scenario)\n"
    "  --vm-config STR    VM configuration (overrides the scenario)\n"
    "  --engine v8|w2c    the engine (default v8, or $PWRUN_ENGINE); w2c\n"
    "                     compiles the plugin to C first (wasm2c, cc)\n"
    "  --engine-cache DIR keep w2c's compiled plugins in DIR (default\n"
    "                     $PWRUN_ENGINE_CACHE, else none)\n"
    "  --compact          print the report on one line\n"
    "  -h, --help         this text\n"
    "\n"
    "Exit status: 0 played; 1 the plugin failed to load, link, start or\n"
    "configure (reason on stderr); 2 bad usage, unreadable file or bad\n"
    "scenario.\n";

/* Read a whole file (or stdin for "-"); NULL with errno-based message. */
static char *
pwr_read_file(const char *path, size_t *len, char *err, size_t errlen)
{
    FILE *f;
    char *data = NULL, *p;
    size_t cap = 0, n = 0, got;

    f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (f == NULL) {
        snprintf(err, errlen, "%s", strerror(errno));
        return NULL;
    }
    for ( ;; ) {
        if (cap - n < 65536) {
            if (cap >= PWR_MAX_FILE) {
                snprintf(err, errlen, "larger than %d bytes", PWR_MAX_FILE);
                goto failed;
            }
            cap = cap ? cap * 2 : 65536 * 2;
            p = realloc(data, cap + 1);
            if (p == NULL) {
                snprintf(err, errlen, "out of memory");
                goto failed;
            }
            data = p;
        }
        got = fread(data + n, 1, cap - n, f);
        n += got;
        if (got == 0) {
            if (ferror(f)) {
                snprintf(err, errlen, "%s", strerror(errno ? errno : EIO));
                goto failed;
            }
            break;
        }
    }
    if (f != stdin) {
        fclose(f);
    }
    data[n] = '\0';
    *len = n;
    return data;

failed:
    if (f != stdin) {
        fclose(f);
    }
    free(data);
    return NULL;
}

static const char *
pwr_abi_string(pw_abi_t abi)
{
    switch (abi) {
    case PW_ABI_0_1_0:
        return "0.1.0";
    case PW_ABI_0_2_0:
        return "0.2.0";
    case PW_ABI_0_2_1:
        return "0.2.1";
    default:
        return "unknown";
    }
}

static pw_str_t
pwr_cstr(const char *s)
{
    pw_str_t r;

    r.data = s;
    r.len = strlen(s);
    return r;
}

int
main(int argc, char **argv)
{
    const char *plugin_path = NULL, *scenario_path = NULL;
    const char *o_config = NULL, *o_root = NULL, *o_vm = NULL;
    const char *o_vmconf = NULL, *o_engine, *o_cache;
    const pw_engine_vt_t *vt;
    int check = 0, pretty = 1, code = 2, i;
    uint8_t *wasm = NULL;
    char *text = NULL, err[512];
    size_t wasm_len = 0, text_len = 0;
    pwr_scenario_t sc;
    pwr_run_t run;
    pw_engine_conf_t econf;
    pw_abi_t abi;
    pwr_json_t *report = NULL;
    pwr_buf_t out = { 0 };
    pwr_jw_t w;
    int rc;

    memset(&sc, 0, sizeof(sc));
    memset(&run, 0, sizeof(run));
    o_engine = getenv("PWRUN_ENGINE");
    if (o_engine != NULL && *o_engine == '\0') {
        o_engine = NULL;
    }
    o_cache = getenv("PWRUN_ENGINE_CACHE");
    if (o_cache != NULL && *o_cache == '\0') {
        o_cache = NULL;
    }

    for (i = 1; i < argc; i++) {
        const char *a = argv[i];

        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(pwr_usage, stdout);
            return 0;
        }
        if (strcmp(a, "--check") == 0) {
            check = 1;
        } else if (strcmp(a, "--compact") == 0) {
            pretty = 0;
        } else if (strcmp(a, "--config") == 0 && i + 1 < argc) {
            o_config = argv[++i];
        } else if (strcmp(a, "--root-id") == 0 && i + 1 < argc) {
            o_root = argv[++i];
        } else if (strcmp(a, "--vm-id") == 0 && i + 1 < argc) {
            o_vm = argv[++i];
        } else if (strcmp(a, "--vm-config") == 0 && i + 1 < argc) {
            o_vmconf = argv[++i];
        } else if (strcmp(a, "--engine") == 0 && i + 1 < argc) {
            o_engine = argv[++i];
        } else if (strcmp(a, "--engine-cache") == 0 && i + 1 < argc) {
            o_cache = argv[++i];
        } else if (a[0] == '-' && a[1] != '\0') {
            fprintf(stderr, "pwrun: unknown or incomplete option %s\n%s", a,
                    pwr_usage);
            return 2;
        } else if (plugin_path == NULL) {
            plugin_path = a;
        } else if (scenario_path == NULL) {
            scenario_path = a;
        } else {
            fprintf(stderr, "pwrun: too many arguments\n%s", pwr_usage);
            return 2;
        }
    }
    if (plugin_path == NULL || (check && scenario_path)) {
        fputs(pwr_usage, stderr);
        return 2;
    }
    vt = pw_engine_find(o_engine ? o_engine : "v8");
    if (vt == NULL) {
        fprintf(stderr, "pwrun: unknown engine %s (v8 or w2c)\n", o_engine);
        return 2;
    }

    wasm = (uint8_t *) pwr_read_file(plugin_path, &wasm_len, err,
                                     sizeof(err));
    if (wasm == NULL) {
        fprintf(stderr, "pwrun: cannot read %s: %s\n", plugin_path, err);
        return 2;
    }

    if (check) {
        err[0] = '\0';
        rc = pw_module_check(wasm, wasm_len, &abi, err, sizeof(err));
        if (rc != PW_OK) {
            fprintf(stderr, "pwrun: cannot load %s: %s\n", plugin_path,
                    err[0] ? err : pw_strerror(rc));
            code = 1;
        } else {
            printf("%s: ok, ABI %s\n", plugin_path, pwr_abi_string(abi));
            code = 0;
        }
        goto done;
    }

    if (scenario_path) {
        text = pwr_read_file(scenario_path, &text_len, err, sizeof(err));
        if (text == NULL) {
            fprintf(stderr, "pwrun: cannot read %s: %s\n", scenario_path,
                    err);
            goto done;
        }
    }
    if (pwr_scenario_parse(text, text_len, &sc, err, sizeof(err)) != 0) {
        fprintf(stderr, "pwrun: bad scenario %s: %s\n", scenario_path, err);
        goto done;
    }
    if (o_config) {
        sc.config = pwr_cstr(o_config);
    }
    if (o_root) {
        sc.root_id = pwr_cstr(o_root);
    }
    if (o_vm) {
        sc.vm_id = pwr_cstr(o_vm);
    }
    if (o_vmconf) {
        sc.vm_config = pwr_cstr(o_vmconf);
    }

    /* validate first: a bad module gets its reason without starting V8 */
    err[0] = '\0';
    rc = pw_module_check(wasm, wasm_len, NULL, err, sizeof(err));
    if (rc != PW_OK) {
        fprintf(stderr, "pwrun: cannot load %s: %s\n", plugin_path,
                err[0] ? err : pw_strerror(rc));
        code = 1;
        goto done;
    }

    memset(&econf, 0, sizeof(econf));
    econf.threads = 0;      /* V8 background work between calls */
    econf.cache_dir = o_cache;
    err[0] = '\0';
    rc = vt->init(&econf, &run.engine, err, sizeof(err));
    if (rc != PW_OK) {
        fprintf(stderr, "pwrun: cannot start the engine: %s\n",
                err[0] ? err : pw_strerror(rc));
        code = 1;
        goto done;
    }
    err[0] = '\0';
    rc = pw_module_load(vt, run.engine, wasm, wasm_len,
                        &run.module, err, sizeof(err));
    if (rc != PW_OK) {
        fprintf(stderr, "pwrun: cannot load %s: %s\n", plugin_path,
                err[0] ? err : pw_strerror(rc));
        code = 1;
        goto done;
    }

    run.sc = &sc;
    run.plugin_path = plugin_path;
    code = pwr_play(&run, &report);
    if (code != 0) {
        fprintf(stderr, "pwrun: %s %s: %s\n", run.start_what, plugin_path,
                run.start_error);
    }

    pwr_jw_init(&w, &out, pretty);
    pwr_jw_value(&w, report);
    if (!pretty) {
        pwr_buf_addc(&out, '\n');
    }
    if (out.oom || pwr_jn_failures() != 0) {
        fprintf(stderr, "pwrun: out of memory writing the report\n");
        code = 2;
    } else if (fwrite(out.data, 1, out.len, stdout) != out.len
               || fflush(stdout) != 0)
    {
        fprintf(stderr, "pwrun: cannot write the report: %s\n",
                strerror(errno));
        code = 2;
    }

done:
    pwr_json_free(report);
    pwr_buf_free(&out);
    pwr_run_free(&run);
    if (run.module) {
        pw_module_free(run.module);
    }
    if (run.engine) {
        vt->destroy(run.engine);
    }
    pwr_scenario_free(&sc);
    free(text);
    free(wasm);
    return code;
}
