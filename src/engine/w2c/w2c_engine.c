/*
 * The w2c backend of the engine interface: plugins compiled ahead of time.
 *
 * compile runs wasm2c on the module, writes glue for it (w2c_glue.c), and
 * builds both with the C compiler into a shared object, which it loads.
 * The object carries its own runtime (w2c_rt.c) and exports one descriptor
 * (w2c_abi.h). A call into the guest is then a setjmp and a C call, and a
 * host function a C call through the import table: no engine in between.
 *
 * Objects are kept in the cache directory, named by a hash of the module's
 * bytes and of how they were built, so a proxy compiles a plugin once (in
 * nginx: in the master, at configuration) and loads it everywhere else.
 *
 * max_call_time: the watchdog's interrupt sends PW_W2C_SIGNAL to the
 * engine's thread. If guest code is running, the handler jumps out of it;
 * if a host function is, the guest is stopped when that returns.
 */

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <pw/pw_engine.h>
#include <pw/pw_wasm.h>

#include "w2c_abi.h"
#include "w2c_glue.h"

_Static_assert(sizeof(pw_w2c_val_t) == sizeof(pw_val_t), "pw_val_t");
_Static_assert(offsetof(pw_w2c_val_t, of) == offsetof(pw_val_t, of),
               "pw_val_t");
_Static_assert(PW_W2C_SEQ_ARGS >= PW_ECALL_ARGS_MAX, "PW_ECALL_ARGS_MAX");

#define PW__W2C_CLAIMED (1ULL << 63)
#define PW__W2C_PATH 4096

extern char **environ;

struct pw_engine_s {
    pthread_t thread;
    char *cache_dir;                /* NULL: no cache */
    char *wasm2c;                   /* the tools, fixed at init */
    char *cc;
    char *cflags;
    pw_einstance_t *volatile running;   /* innermost call */
    atomic_int claimed;             /* an interrupt is on its way */
    int signal_ready;
};

struct pw_emodule_s {
    pw_engine_t *engine;
    void *dl;
    const pw_w2c_module_t *m;
    unsigned refs;                  /* module_free's and each instance's */
};

struct pw_efunc_s {
    const pw_w2c_export_t *e;
    uint8_t nparams;
    uint8_t nresults;
    char kinds[PW_SIG_MAX];         /* parameters, then results */
};

struct pw_eseq_s {
    pw_w2c_call32_t c[PW_ECALL_SEQ_MAX];
    unsigned n;
    pw_eseq_t *next;                /* the instance's, freed with it */
};

struct pw_einstance_s {
    pw_emodule_t *mod;
    pw_engine_t *engine;
    void *minst;                    /* the object's instance */
    pw_w2c_env_t env;
    pw_w2c_import_t *imports;
    pw_efunc_t *funcs;              /* one per export, filled by lookup */
    pw_eseq_t *seqs;                /* prepared sequences */
    int depth;
    atomic_uint_fast64_t active;    /* generation of the running call */
    atomic_uint_fast64_t next_gen;
    atomic_int kill_done;
    /*
     * Set once a watchdog has asked for a generation: until then nothing
     * can interrupt a call (interrupt needs one), and calls skip the
     * atomic bookkeeping.
     */
    atomic_int armed;
    /* the memory as last read, good while state->grows is mem_grows */
    uint8_t *mem_base;
    size_t mem_size;
    unsigned long mem_grows;
    int mem_known;
};

static pw_engine_t *volatile pw__w2c_signal_engine;

static void
pw__w2c_on_signal(int sig)
{
    pw_engine_t *e = pw__w2c_signal_engine;
    pw_einstance_t *inst;
    pw_w2c_state_t *st;

    if (e == NULL || !atomic_load(&e->claimed)) {
        return;
    }
    inst = e->running;
    if (inst == NULL) {
        return;
    }
    st = inst->mod->m->state;
    st->stop = 1;
    if (st->in_guest && st->target != NULL) {
        inst->mod->m->interrupt();
    }
}

/*
 * The interrupt's handler, installed with the first instance (a process
 * that only compiles, such as nginx's master, gets none).
 */
static int
pw__w2c_signal_setup(pw_engine_t *e, char *err, size_t errlen)
{
    struct sigaction sa;

    if (e->signal_ready) {
        return PW_OK;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = pw__w2c_on_signal;
    /* the handler may jump out: leave the signal unblocked */
    sa.sa_flags = SA_NODEFER | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (sigaction(PW_W2C_SIGNAL, &sa, NULL) != 0) {
        snprintf(err, errlen, "sigaction: %s", strerror(errno));
        return PW_EENGINE;
    }
    e->signal_ready = 1;
    return PW_OK;
}

static const char *
pw__w2c_tool(const char *var, const char *dflt)
{
    const char *v = getenv(var);

    return v != NULL && *v != '\0' ? v : dflt;
}

static void pw__w2c_destroy(pw_engine_t *engine);

static int
pw__w2c_init(const pw_engine_conf_t *conf, pw_engine_t **out, char *err,
    size_t errlen)
{
    pw_engine_t *e;

    e = calloc(1, sizeof(*e));
    if (e == NULL) {
        snprintf(err, errlen, "out of memory");
        return PW_ENOMEM;
    }
    if (conf != NULL && conf->cache_dir != NULL) {
        e->cache_dir = strdup(conf->cache_dir);
    }
    e->wasm2c = strdup(conf && conf->wasm2c
                       ? conf->wasm2c : pw__w2c_tool("PW_W2C_WASM2C",
                                                      "wasm2c"));
    e->cc = strdup(conf && conf->cc ? conf->cc
                                    : pw__w2c_tool("PW_W2C_CC", "cc"));
    e->cflags = strdup(conf && conf->cflags
                       ? conf->cflags : pw__w2c_tool("PW_W2C_CFLAGS", "-O2"));
    if ((conf != NULL && conf->cache_dir != NULL && e->cache_dir == NULL)
        || e->wasm2c == NULL || e->cc == NULL || e->cflags == NULL)
    {
        pw__w2c_destroy(e);
        snprintf(err, errlen, "out of memory");
        return PW_ENOMEM;
    }
    e->thread = pthread_self();

    pw__w2c_signal_engine = e;
    *out = e;
    return PW_OK;
}

static void
pw__w2c_destroy(pw_engine_t *engine)
{
    if (engine == NULL) {
        return;
    }
    if (pw__w2c_signal_engine == engine) {
        pw__w2c_signal_engine = NULL;
    }
    free(engine->cache_dir);
    free(engine->wasm2c);
    free(engine->cc);
    free(engine->cflags);
    free(engine);
}

/* ---- building the shared object ---------------------------------------- */

static int
pw__w2c_spawn(char *const argv[], const char *log, char *err, size_t errlen)
{
    posix_spawn_file_actions_t fa;
    sigset_t chld, old;
    char buf[1024];
    pid_t pid;
    ssize_t n;
    int rc, status, fd;

    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT
                                     | O_TRUNC, 0600);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);

    /* a proxy's SIGCHLD handler must not reap our child before we do */
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    pthread_sigmask(SIG_BLOCK, &chld, &old);
    rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        snprintf(err, errlen, "cannot run %s: %s", argv[0], strerror(rc));
        return PW_EENGINE;
    }
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            status = -1;
            break;
        }
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);

    if (status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        return PW_OK;
    }
    /* the first lines of what it said */
    n = 0;
    fd = open(log, O_RDONLY);
    if (fd >= 0) {
        n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
    }
    buf[n > 0 ? n : 0] = '\0';
    snprintf(err, errlen, "%s failed (%s %d): %s", argv[0],
             status != -1 && WIFEXITED(status) ? "exit" : "signal",
             status == -1 ? -1
             : WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status),
             buf);
    return PW_EMALFORMED;
}

static int
pw__w2c_write(const char *path, const void *data, size_t len)
{
    FILE *f;
    int ok;

    f = fopen(path, "wb");
    if (f == NULL) {
        return PW_EENGINE;
    }
    ok = fwrite(data, 1, len, f) == len;
    ok &= fclose(f) == 0;
    return ok ? PW_OK : PW_EENGINE;
}

static char *
pw__w2c_read(const char *path)
{
    FILE *f;
    char *buf;
    long n;

    f = fopen(path, "rb");
    if (f == NULL) {
        return NULL;
    }
    buf = NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0
        && fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t) n + 1)))
    {
        if (fread(buf, 1, (size_t) n, f) != (size_t) n) {
            free(buf);
            buf = NULL;
        } else {
            buf[n] = '\0';
        }
    }
    fclose(f);
    return buf;
}

/* FNV-1a, 64 bits */
static uint64_t
pw__w2c_hash(uint64_t h, const void *data, size_t len)
{
    const uint8_t *p = data;
    size_t i;

    for (i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

/* dir/name into a PATH_MAX buffer; 0 if it does not fit */
static int
pw__w2c_path(char *buf, const char *dir, const char *name)
{
    size_t d = strlen(dir), n = strlen(name);

    if (d + 1 + n >= PW__W2C_PATH) {
        return 0;
    }
    memcpy(buf, dir, d);
    buf[d] = '/';
    memcpy(buf + d + 1, name, n + 1);
    return 1;
}

static void
pw__w2c_rmtree(const char *dir)
{
    static const char *const files[] = {
        "m.wasm", "m.c", "m.h", "g.c", "m.so", "wasm2c.log", "cc.log"
    };
    char path[PW__W2C_PATH];
    size_t i;

    for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        if (pw__w2c_path(path, dir, files[i])) {
            unlink(path);
        }
    }
    rmdir(dir);
}

/*
 * Build the module's object in a fresh directory under `base`; on success
 * *so names it (inside *dir, which the caller removes).
 */
static int
pw__w2c_build(pw_engine_t *engine, const char *base, const uint8_t *bytes,
    size_t len, const pw_wasm_info_t *info, char *dir, size_t dirlen,
    char *so, size_t solen, char *err, size_t errlen)
{
    char wasm[PW__W2C_PATH], c[PW__W2C_PATH], h[PW__W2C_PATH];
    char g[PW__W2C_PATH], log[PW__W2C_PATH];
    char *hdr, *cc_argv[64], *flags, *tok, *save;
    const char *wasm2c, *cc;
    FILE *f;
    int rc, n;

    if ((size_t) snprintf(dir, dirlen, "%s/.pw-w2c-XXXXXX", base) >= dirlen
        || mkdtemp(dir) == NULL)
    {
        dir[0] = '\0';
        snprintf(err, errlen, "cannot create a directory in %s: %s", base,
                 strerror(errno));
        return PW_EENGINE;
    }
    if (!pw__w2c_path(wasm, dir, "m.wasm") || !pw__w2c_path(c, dir, "m.c")
        || !pw__w2c_path(h, dir, "m.h") || !pw__w2c_path(g, dir, "g.c")
        || !pw__w2c_path(log, dir, "wasm2c.log")
        || (size_t) snprintf(so, solen, "%s/m.so", dir) >= solen)
    {
        snprintf(err, errlen, "path too long: %s", dir);
        return PW_EENGINE;
    }

    if (pw__w2c_write(wasm, bytes, len) != PW_OK) {
        snprintf(err, errlen, "cannot write %s", wasm);
        return PW_EENGINE;
    }

    wasm2c = engine->wasm2c;
    rc = pw__w2c_spawn((char *const[]) { (char *) wasm2c, "-n", "pwmod",
                                         "--no-debug-names", wasm, "-o", c,
                                         NULL },
                       log, err, errlen);
    if (rc != PW_OK) {
        return rc;
    }

    hdr = pw__w2c_read(h);
    if (hdr == NULL) {
        snprintf(err, errlen, "wasm2c wrote no header");
        return PW_EENGINE;
    }
    f = fopen(g, "w");
    if (f == NULL) {
        free(hdr);
        snprintf(err, errlen, "cannot write %s", g);
        return PW_EENGINE;
    }
    rc = pw__w2c_glue(hdr, info, f, err, errlen);
    free(hdr);
    if (fclose(f) != 0 && rc == PW_OK) {
        snprintf(err, errlen, "cannot write %s", g);
        rc = PW_EENGINE;
    }
    if (rc != PW_OK) {
        return rc;
    }

    cc = engine->cc;
    flags = strdup(engine->cflags);
    if (flags == NULL) {
        snprintf(err, errlen, "out of memory");
        return PW_ENOMEM;
    }
    n = 0;
    cc_argv[n++] = (char *) cc;
    for (tok = strtok_r(flags, " ", &save); tok != NULL && n < 40;
         tok = strtok_r(NULL, " ", &save))
    {
        cc_argv[n++] = tok;
    }
    cc_argv[n++] = "-shared";
    cc_argv[n++] = "-fPIC";
    cc_argv[n++] = "-fvisibility=hidden";
    cc_argv[n++] = "-fno-strict-aliasing";
    cc_argv[n++] = "-w";
    cc_argv[n++] = "-DWASM_RT_MEMCHECK_SIGNAL_HANDLER=0";
    cc_argv[n++] = "-DWASM_RT_MAX_CALL_STACK_DEPTH=" PW__W2C_DEPTH_STR;
    cc_argv[n++] = "-o";
    cc_argv[n++] = so;
    cc_argv[n++] = c;
    cc_argv[n++] = g;
    cc_argv[n++] = "-lm";
    cc_argv[n] = NULL;
    pw__w2c_path(log, dir, "cc.log");
    rc = pw__w2c_spawn(cc_argv, log, err, errlen);
    free(flags);
    return rc;
}

static int
pw__w2c_load(pw_engine_t *engine, const char *so, pw_emodule_t **out,
    char *err, size_t errlen)
{
    const pw_w2c_module_t *m;
    pw_emodule_t *mod;
    const char *msg;
    void *dl;

    dl = dlopen(so, RTLD_NOW | RTLD_LOCAL);
    if (dl == NULL) {
        snprintf(err, errlen, "cannot load %s: %s", so, dlerror());
        return PW_EENGINE;
    }
    m = dlsym(dl, PW_W2C_SYMBOL);
    if (m == NULL || m->abi != PW_W2C_ABI) {
        dlclose(dl);
        snprintf(err, errlen, "%s is not a plugin of this build", so);
        return PW_EENGINE;
    }
    msg = NULL;
    if (m->init_module(&msg) != PW_W2C_OK) {
        dlclose(dl);
        snprintf(err, errlen, "%s", msg ? msg : "cannot initialise");
        return PW_EENGINE;
    }
    mod = calloc(1, sizeof(*mod));
    if (mod == NULL) {
        dlclose(dl);
        snprintf(err, errlen, "out of memory");
        return PW_ENOMEM;
    }
    mod->engine = engine;
    mod->dl = dl;
    mod->m = m;
    mod->refs = 1;
    *out = mod;
    return PW_OK;
}

static int
pw__w2c_compile(pw_engine_t *engine, const uint8_t *bytes, size_t len,
    pw_emodule_t **out, char *err, size_t errlen)
{
    char dir[4096], so[4096], cached[4096];
    pw_wasm_info_t *info;
    const char *cflags, *base;
    uint64_t key;
    unsigned abi;
    int rc;

    /* a clear message for bad bytes, before any tool runs */
    rc = pw_wasm_parse(bytes, len, &info, err, errlen);
    if (rc != PW_OK) {
        return rc;
    }

    cflags = engine->cflags;
    abi = PW_W2C_ABI;
    key = pw__w2c_hash(0xcbf29ce484222325ULL, &abi, sizeof(abi));
    key = pw__w2c_hash(key, cflags, strlen(cflags));
    /* a changed runtime or glue makes new objects */
    key = pw__w2c_hash(key, pw__w2c_abi_text, strlen(pw__w2c_abi_text));
    key = pw__w2c_hash(key, pw__w2c_rt_text, strlen(pw__w2c_rt_text));
    key = pw__w2c_hash(key, pw__w2c_glue_version,
                       strlen(pw__w2c_glue_version));
    key = pw__w2c_hash(key, bytes, len);
    cached[0] = '\0';
    if (engine->cache_dir != NULL) {
        if ((size_t) snprintf(cached, sizeof(cached),
                              "%s/pw-w2c-%u-%016llx-%zu.so", engine->cache_dir,
                              abi, (unsigned long long) key, len)
            >= sizeof(cached))
        {
            pw_wasm_info_free(info);
            snprintf(err, errlen, "path too long: %s", engine->cache_dir);
            return PW_EENGINE;
        }
        if (access(cached, R_OK) == 0) {
            pw_wasm_info_free(info);
            return pw__w2c_load(engine, cached, out, err, errlen);
        }
    }

    base = engine->cache_dir ? engine->cache_dir
                             : pw__w2c_tool("TMPDIR", "/tmp");
    if (engine->cache_dir != NULL) {
        (void) mkdir(engine->cache_dir, 0755);  /* the build says if not */
    }
    rc = pw__w2c_build(engine, base, bytes, len, info, dir, sizeof(dir), so,
                       sizeof(so), err, errlen);
    pw_wasm_info_free(info);
    if (rc == PW_OK && cached[0] != '\0') {
        /* atomic: a concurrent build of the same bytes wins or loses whole */
        if (rename(so, cached) != 0) {
            snprintf(err, errlen, "cannot store %s: %s", cached,
                     strerror(errno));
            rc = PW_EENGINE;
        }
        memcpy(so, cached, sizeof(so));
    }
    if (rc == PW_OK) {
        rc = pw__w2c_load(engine, so, out, err, errlen);
    }
    if (dir[0] != '\0') {
        pw__w2c_rmtree(dir);
    }
    return rc;
}

/* the module may go before its instances: the last one closes it */
static void
pw__w2c_module_free(pw_emodule_t *mod)
{
    if (mod == NULL || --mod->refs > 0) {
        return;
    }
    dlclose(mod->dl);
    free(mod);
}

/* ---- instances --------------------------------------------------------- */

static int
pw__w2c_instantiate(pw_emodule_t *mod, const pw_import_t *imports,
    size_t nimports, pw_einstance_t **out, char *err, size_t errlen)
{
    const pw_w2c_module_t *m = mod->m;
    const pw_w2c_import_decl_t *d;
    pw_einstance_t *inst;
    const char *msg;
    size_t i, j;
    int rc;

    rc = pw__w2c_signal_setup(mod->engine, err, errlen);
    if (rc != PW_OK) {
        return rc;
    }
    inst = calloc(1, sizeof(*inst));
    if (inst == NULL) {
        snprintf(err, errlen, "out of memory");
        return PW_ENOMEM;
    }
    inst->mod = mod;
    inst->engine = mod->engine;
    inst->minst = calloc(1, m->inst_size);
    inst->imports = calloc(m->nimports ? m->nimports : 1,
                           sizeof(*inst->imports));
    inst->funcs = calloc(m->nexports ? m->nexports : 1,
                         sizeof(*inst->funcs));
    if (inst->minst == NULL || inst->imports == NULL || inst->funcs == NULL) {
        snprintf(err, errlen, "out of memory");
        rc = PW_ENOMEM;
        goto failed;
    }
    atomic_init(&inst->next_gen, 1);

    for (i = 0; i < m->nimports; i++) {
        d = &m->imports[i];
        for (j = 0; j < nimports; j++) {
            if (strcmp(imports[j].module, d->module) == 0
                && strcmp(imports[j].name, d->name) == 0)
            {
                break;
            }
        }
        if (j == nimports || imports[j].fn == NULL) {
            /* links to other instances are not supported */
            snprintf(err, errlen, "%s import %s.%s",
                     j == nimports ? "missing" : "cannot link", d->module,
                     d->name);
            rc = PW_ELINK;
            goto failed;
        }
        if (imports[j].sig == NULL || strcmp(imports[j].sig, d->sig) != 0) {
            snprintf(err, errlen, "import %s.%s: signature %s, given %s",
                     d->module, d->name, d->sig,
                     imports[j].sig ? imports[j].sig : "none");
            rc = PW_ELINK;
            goto failed;
        }
        inst->imports[i].fn = (pw_w2c_host_fn_t) imports[j].fn;
        inst->imports[i].fn_data = imports[j].fn_data;
    }
    inst->env.einst = inst;
    inst->env.imports = inst->imports;

    msg = NULL;
    rc = m->instantiate(inst->minst, &inst->env, &msg);
    if (rc != PW_W2C_OK) {
        snprintf(err, errlen, "%s", msg ? msg : "cannot instantiate");
        /* what was allocated before the trap */
        m->free(inst->minst);
        rc = rc == PW_W2C_NOMEM ? PW_ENOMEM : PW_ETRAP;
        goto failed;
    }
    mod->refs++;
    *out = inst;
    return PW_OK;

failed:
    free(inst->minst);
    free(inst->imports);
    free(inst->funcs);
    free(inst);
    return rc;
}

static void
pw__w2c_instance_free(pw_einstance_t *inst)
{
    pw_eseq_t *q;

    if (inst == NULL) {
        return;
    }
    while (inst->seqs != NULL) {
        q = inst->seqs;
        inst->seqs = q->next;
        free(q);
    }
    inst->mod->m->free(inst->minst);
    pw__w2c_module_free(inst->mod);
    free(inst->minst);
    free(inst->imports);
    free(inst->funcs);
    free(inst);
}

static int
pw__w2c_lookup(pw_einstance_t *inst, const char *name, pw_efunc_t **fn,
    char *sig)
{
    const pw_w2c_module_t *m = inst->mod->m;
    const char *colon;
    pw_efunc_t *f;
    unsigned i;

    for (i = 0; i < m->nexports; i++) {
        if (strcmp(m->exports[i].name, name) == 0) {
            break;
        }
    }
    if (i == m->nexports) {
        return PW_ENOTFOUND;
    }
    f = &inst->funcs[i];
    if (f->e == NULL) {
        f->e = &m->exports[i];
        colon = strchr(f->e->sig, ':');
        f->nparams = (uint8_t) (colon - f->e->sig);
        f->nresults = (uint8_t) strlen(colon + 1);
        memcpy(f->kinds, f->e->sig, f->nparams);
        memcpy(f->kinds + f->nparams, colon + 1, f->nresults);
    }
    if (sig != NULL) {
        snprintf(sig, PW_SIG_MAX, "%s", f->e->sig);
    }
    *fn = f;
    return PW_OK;
}

/*
 * Before a call into the object: marks the outermost call of an armed
 * instance with its generation (the watchdog's interrupt names it).
 * Returns whether it is such a call; *gen gets the generation.
 */
static inline int
pw__w2c_begin(pw_einstance_t *inst, uint64_t *gen,
    pw_einstance_t **prev_running)
{
    int outer;

    outer = inst->depth == 0 && atomic_load_explicit(&inst->armed,
                                                     memory_order_relaxed);
    *gen = 0;
    if (outer) {
        *gen = atomic_load_explicit(&inst->next_gen, memory_order_relaxed);
        atomic_store_explicit(&inst->active, *gen, memory_order_release);
    }
    inst->depth++;
    *prev_running = inst->engine->running;
    inst->engine->running = inst;
    return outer;
}

/* After it: the object's result rc as the engine interface's. */
static inline int
pw__w2c_end(pw_einstance_t *inst, int outer, uint64_t gen,
    pw_einstance_t *prev_running, int rc, const char *msg, pw_trap_t *trap)
{
    pw_engine_t *engine = inst->engine;
    uint64_t prev;

    engine->running = prev_running;
    inst->depth--;
    if (outer) {
        prev = atomic_exchange(&inst->active, 0);
        atomic_store(&inst->next_gen, gen + 1);
        if (prev & PW__W2C_CLAIMED) {
            /* the signal is sent: take it here, not in the next call */
            while (!atomic_load(&inst->kill_done)) {
                sched_yield();
            }
            sched_yield();
            atomic_store(&inst->kill_done, 0);
            atomic_store(&engine->claimed, 0);
        }
    }

    switch (rc) {
    case PW_W2C_OK:
        return PW_OK;
    case PW_W2C_INTERRUPTED:
        rc = PW_EINTERRUPTED;
        msg = "interrupted";
        break;
    case PW_W2C_NOMEM:
        rc = PW_ENOMEM;
        break;
    default:
        rc = PW_ETRAP;
    }
    if (trap != NULL) {
        snprintf(trap->message, sizeof(trap->message), "%s",
                 msg ? msg : "trap");
        trap->backtrace[0] = '\0';
    }
    return rc;
}

static int
pw__w2c_call(pw_einstance_t *inst, pw_efunc_t *fn, const pw_val_t *args,
    size_t nargs, pw_val_t *results, size_t nresults, pw_trap_t *trap)
{
    pw_einstance_t *prev_running;
    const char *msg;
    uint64_t gen;
    size_t i;
    int rc, outer;

    if (nargs != fn->nparams || nresults != fn->nresults) {
        return PW_EINVAL;
    }
    for (i = 0; i < nargs; i++) {
        if ((char) args[i].kind != fn->kinds[i]) {
            return PW_EINVAL;
        }
    }

    outer = pw__w2c_begin(inst, &gen, &prev_running);
    msg = NULL;
    rc = inst->mod->m->call(fn->e->thunk, inst->minst,
                            (const pw_w2c_val_t *) args,
                            (pw_w2c_val_t *) results, &msg);
    return pw__w2c_end(inst, outer, gen, prev_running, rc, msg, trap);
}

static int
pw__w2c_call_i32(pw_einstance_t *inst, pw_efunc_t *fn, const uint32_t *args,
    size_t nargs, uint32_t *result, pw_trap_t *trap)
{
    pw_einstance_t *prev_running;
    const char *msg;
    uint64_t gen;
    int rc, outer;

    /* thunk32 is there only for all-i32 signatures with 0 or 1 result */
    if (fn->e->thunk32 == NULL || nargs != fn->nparams
        || (result != NULL) != fn->nresults)
    {
        return PW_EINVAL;
    }

    outer = pw__w2c_begin(inst, &gen, &prev_running);
    msg = NULL;
    rc = inst->mod->m->call32(fn->e->thunk32, inst->minst, args, result,
                              &msg);
    return pw__w2c_end(inst, outer, gen, prev_running, rc, msg, trap);
}

static int
pw__w2c_seq_prepare(pw_einstance_t *inst, const pw_ecall_t *calls, size_t n,
    pw_eseq_t **out)
{
    pw_eseq_t *q;
    size_t j, a;

    if (n == 0 || n > PW_ECALL_SEQ_MAX) {
        return PW_EINVAL;
    }
    q = calloc(1, sizeof(*q));
    if (q == NULL) {
        return PW_ENOMEM;
    }
    for (j = 0; j < n; j++) {
        if (calls[j].fn->e->thunk32 == NULL
            || calls[j].nargs != calls[j].fn->nparams
            || calls[j].nargs > PW_ECALL_ARGS_MAX)
        {
            free(q);
            return PW_EINVAL;
        }
        q->c[j].thunk = calls[j].fn->e->thunk32;
        q->c[j].nargs = (unsigned) calls[j].nargs;
        for (a = 0; a < calls[j].nargs; a++) {
            q->c[j].argmap[a] = calls[j].argmap[a];
        }
    }
    q->n = (unsigned) n;
    q->next = inst->seqs;
    inst->seqs = q;
    *out = q;
    return PW_OK;
}

static int
pw__w2c_call_seq(pw_einstance_t *inst, const pw_eseq_t *seq,
    const uint32_t *args, pw_ecall_go_t go, void *go_data, uint32_t *result,
    size_t *ran, pw_trap_t *trap)
{
    pw_w2c_seq_call_t sc = { seq->c, seq->n, inst->minst, args, go, go_data,
                             0, 0, NULL };
    pw_einstance_t *prev_running;
    uint64_t gen;
    int rc, outer;

    outer = pw__w2c_begin(inst, &gen, &prev_running);
    rc = inst->mod->m->seq32(&sc);
    *result = sc.result;
    *ran = sc.ran;
    return pw__w2c_end(inst, outer, gen, prev_running, rc, sc.msg, trap);
}

/* Every hostcall asks: a call into the object only after memory grew. */
static int
pw__w2c_memory(pw_einstance_t *inst, uint8_t **base, size_t *size)
{
    const pw_w2c_module_t *m = inst->mod->m;

    if (!inst->mem_known || inst->mem_grows != m->state->grows) {
        if (!m->has_memory) {
            return PW_ENOTFOUND;
        }
        inst->mem_grows = m->state->grows;
        m->memory(inst->minst, &inst->mem_base, &inst->mem_size);
        inst->mem_known = 1;
    }
    *base = inst->mem_base;
    *size = inst->mem_size;
    return PW_OK;
}

static uint64_t
pw__w2c_call_generation(pw_einstance_t *inst)
{
    atomic_store(&inst->armed, 1);
    return atomic_load(&inst->next_gen);
}

static void
pw__w2c_interrupt(pw_einstance_t *inst, uint64_t generation)
{
    uint_fast64_t expected = generation;

    if (generation == 0 || (generation & PW__W2C_CLAIMED)) {
        return;
    }
    if (atomic_compare_exchange_strong(&inst->active, &expected,
                                       generation | PW__W2C_CLAIMED))
    {
        atomic_store(&inst->engine->claimed, 1);
        pthread_kill(inst->engine->thread, PW_W2C_SIGNAL);
        atomic_store(&inst->kill_done, 1);
    }
}

const pw_engine_vt_t pw_engine_w2c = {
    "w2c",
    pw__w2c_init,
    pw__w2c_destroy,
    pw__w2c_compile,
    pw__w2c_module_free,
    pw__w2c_instantiate,
    pw__w2c_instance_free,
    pw__w2c_lookup,
    pw__w2c_call,
    pw__w2c_memory,
    pw__w2c_call_generation,
    pw__w2c_interrupt,
    pw__w2c_call_i32,
    pw__w2c_seq_prepare,
    pw__w2c_call_seq,
};
