/*
 * The wasm{} block: module declarations read and validated by the master,
 * and per worker the engine, compiled modules and instances.
 */
#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <sys/eventfd.h>
#include "ngx_pw.h"
#include "ngx_pw_tls.h"


#define NGX_PW_BACKOFF_MIN    1000
#define NGX_PW_BACKOFF_MAX    60000
#define NGX_PW_LOG_INTERVAL   1000
#define NGX_PW_DEFAULT_ZONE   (1024 * 1024)
#define NGX_PW_MIN_ZONE       (16 * 1024)


static void *ngx_pw_core_create_conf(ngx_cycle_t *cycle);
static char *ngx_pw_core_init_conf(ngx_cycle_t *cycle, void *conf);
static char *ngx_pw_block(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
static char *ngx_pw_block_directive(ngx_conf_t *cf, ngx_command_t *dummy,
    void *conf);
static ngx_int_t ngx_pw_valid_name(ngx_str_t *name);
static ngx_int_t ngx_pw_init_module(ngx_cycle_t *cycle);
static ngx_int_t ngx_pw_init_process(ngx_cycle_t *cycle);
static void ngx_pw_exit_process(ngx_cycle_t *cycle);
static ngx_pw_instance_t *ngx_pw_instance_start(ngx_pw_module_t *m,
    ngx_log_t *log);
static void ngx_pw_instance_destroy(ngx_pw_instance_t *inst);
static void ngx_pw_tick_handler(ngx_event_t *ev);
static void ngx_pw_instance_failed(ngx_pw_instance_t *inst, ngx_log_t *log);


static ngx_command_t  ngx_pw_core_commands[] = {

    { ngx_string("wasm"),
      NGX_MAIN_CONF|NGX_CONF_BLOCK|NGX_CONF_NOARGS,
      ngx_pw_block,
      0,
      0,
      NULL },

      ngx_null_command
};


static ngx_core_module_t  ngx_pw_core_module_ctx = {
    ngx_string("wasm"),
    ngx_pw_core_create_conf,
    ngx_pw_core_init_conf
};


ngx_module_t  ngx_pw_core_module = {
    NGX_MODULE_V1,
    &ngx_pw_core_module_ctx,               /* module context */
    ngx_pw_core_commands,                  /* module directives */
    NGX_CORE_MODULE,                       /* module type */
    NULL,                                  /* init master */
    ngx_pw_init_module,                    /* init module */
    ngx_pw_init_process,                   /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_pw_exit_process,                   /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static void *
ngx_pw_core_create_conf(ngx_cycle_t *cycle)
{
    ngx_pw_core_conf_t  *pcf;

    pcf = ngx_pcalloc(cycle->pool, sizeof(ngx_pw_core_conf_t));
    if (pcf == NULL) {
        return NULL;
    }

    if (ngx_array_init(&pcf->modules, cycle->pool, 4,
                       sizeof(ngx_pw_module_t))
        != NGX_OK
        || ngx_array_init(&pcf->plugins, cycle->pool, 4,
                          sizeof(ngx_pw_plugin_conf_t *))
           != NGX_OK)
    {
        return NULL;
    }

    if (ngx_array_init(&pcf->zones, cycle->pool, 4, sizeof(ngx_pw_zone_t))
        != NGX_OK)
    {
        return NULL;
    }

    pcf->max_call_time = NGX_CONF_UNSET_MSEC;
    pcf->v8_threads = NGX_CONF_UNSET;
    pcf->kv_default = NGX_CONF_UNSET_UINT;
    pcf->metrics_zone = NGX_CONF_UNSET_UINT;

    return pcf;
}


static ngx_pw_module_t *
ngx_pw_module_find(ngx_pw_core_conf_t *pcf, ngx_str_t *name)
{
    ngx_uint_t        i;
    ngx_pw_module_t  *m;

    m = pcf->modules.elts;
    for (i = 0; i < pcf->modules.nelts; i++) {
        if (m[i].name.len == name->len
            && ngx_strncmp(m[i].name.data, name->data, name->len) == 0)
        {
            return &m[i];
        }
    }

    return NULL;
}


/* the engine's settings, with the cache path NUL-terminated in the pool */
static ngx_int_t
ngx_pw_engine_conf(ngx_cycle_t *cycle, ngx_pw_core_conf_t *pcf,
    pw_engine_conf_t *econf)
{
    u_char  *cache;

    cache = ngx_pnalloc(cycle->pool, pcf->engine_cache.len + 1);
    if (cache == NULL) {
        return NGX_ERROR;
    }
    ngx_cpystrn(cache, pcf->engine_cache.data, pcf->engine_cache.len + 1);

    ngx_memzero(econf, sizeof(pw_engine_conf_t));
    /* 0: V8's background work runs in the worker, between calls */
    econf->threads = (int) pcf->v8_threads;
    econf->cache_dir = (const char *) cache;
    econf->wasm2c = pcf->w2c_tools[0];
    econf->cc = pcf->w2c_tools[1];
    econf->cflags = pcf->w2c_tools[2];

    return NGX_OK;
}


/*
 * w2c's tools as the master's environment names them: workers lose that
 * environment, and their engines must build (so find in the cache) what
 * the master built.
 */
static ngx_int_t
ngx_pw_w2c_tools(ngx_cycle_t *cycle, ngx_pw_core_conf_t *pcf)
{
    char        *v;
    size_t       len;
    ngx_uint_t   i;

    static const char  *vars[3] = {
        "PW_W2C_WASM2C", "PW_W2C_CC", "PW_W2C_CFLAGS"
    };

    for (i = 0; i < 3; i++) {
        pcf->w2c_tools[i] = NULL;
        v = getenv(vars[i]);
        if (v == NULL || *v == '\0') {
            continue;
        }
        len = ngx_strlen(v) + 1;
        pcf->w2c_tools[i] = ngx_pnalloc(cycle->pool, len);
        if (pcf->w2c_tools[i] == NULL) {
            return NGX_ERROR;
        }
        ngx_memcpy(pcf->w2c_tools[i], v, len);
    }

    return NGX_OK;
}


/*
 * w2c: compile every module in the master, at configuration, into the
 * cache, so that `nginx -t` reports what cannot be built and workers only
 * load the objects.
 */
static ngx_int_t
ngx_pw_precompile(ngx_cycle_t *cycle, ngx_pw_core_conf_t *pcf)
{
    char               err[512];
    int                rc;
    ngx_uint_t         i;
    pw_engine_t       *engine;
    pw_emodule_t      *emod;
    ngx_pw_module_t   *m;
    pw_engine_conf_t   econf;

    if (ngx_pw_engine_conf(cycle, pcf, &econf) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_create_full_path(pcf->engine_cache.data, 0755) != NGX_OK
        || (mkdir((const char *) econf.cache_dir, 0755) != 0
            && ngx_errno != NGX_EEXIST))
    {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, ngx_errno,
                      "wasm: cannot create engine_cache \"%s\"",
                      econf.cache_dir);
        return NGX_ERROR;
    }

    err[0] = '\0';
    if (pw_engine_w2c.init(&econf, &engine, err, sizeof(err)) != PW_OK) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "wasm: cannot start the w2c engine: %s", err);
        return NGX_ERROR;
    }

    m = pcf->modules.elts;
    for (i = 0; i < pcf->modules.nelts; i++) {
        err[0] = '\0';
        rc = pw_engine_w2c.compile(engine, m[i].bytes, m[i].len, &emod, err,
                                   sizeof(err));
        if (rc != PW_OK) {
            ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                          "wasm: module \"%V\" (%V): cannot compile: %s",
                          &m[i].name, &m[i].path,
                          err[0] ? err : pw_strerror(rc));
            pw_engine_w2c.destroy(engine);
            return NGX_ERROR;
        }
        pw_engine_w2c.module_free(emod);
    }

    pw_engine_w2c.destroy(engine);

    return NGX_OK;
}


static char *
ngx_pw_core_init_conf(ngx_cycle_t *cycle, void *conf)
{
    ngx_pw_core_conf_t  *pcf = conf;

    ngx_uint_t             i;
    ngx_pw_module_t       *m;
    ngx_pw_plugin_conf_t  *pc, **ppc, **slot;

    ngx_conf_init_msec_value(pcf->max_call_time, 0);
    ngx_conf_init_value(pcf->v8_threads, 0);

    /* the module array is final now: give each its plugin list */
    m = pcf->modules.elts;
    for (i = 0; i < pcf->modules.nelts; i++) {
        if (ngx_array_init(&m[i].plugins, cycle->pool, 4,
                           sizeof(ngx_pw_plugin_conf_t *))
            != NGX_OK)
        {
            return NGX_CONF_ERROR;
        }
    }

    ppc = pcf->plugins.elts;
    for (i = 0; i < pcf->plugins.nelts; i++) {
        pc = ppc[i];
        m = ngx_pw_module_find(pcf, &pc->module_name);
        if (m == NULL) {
            ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                          "proxy_wasm: no module \"%V\" declared in the "
                          "wasm{} block, used in %s:%ui",
                          &pc->module_name, pc->file, pc->line);
            return NGX_CONF_ERROR;
        }
        pc->module = m;
        pc->index = m->plugins.nelts;
        slot = ngx_array_push(&m->plugins);
        if (slot == NULL) {
            return NGX_CONF_ERROR;
        }
        *slot = pc;
    }

    if (ngx_pw_tls_init_conf(cycle, pcf) != NGX_CONF_OK) {
        return NGX_CONF_ERROR;
    }

    if (pcf->engine_vt == NULL) {
        pcf->engine_vt = &pw_engine_v8;
    }
    if (pcf->engine_cache.data == NULL) {
        ngx_str_set(&pcf->engine_cache, "wasm_cache");
        if (ngx_conf_full_name(cycle, &pcf->engine_cache, 1) != NGX_OK) {
            return NGX_CONF_ERROR;
        }
    }
    if (ngx_pw_w2c_tools(cycle, pcf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (pcf->engine_vt == &pw_engine_w2c && pcf->modules.nelts > 0
        && ngx_pw_precompile(cycle, pcf) != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    pcf->enabled = (pcf->modules.nelts > 0);
    pcf->cycle = cycle;

    return NGX_CONF_OK;
}


ngx_pw_plugin_conf_t *
ngx_pw_plugin_conf(ngx_conf_t *cf, ngx_str_t *name, ngx_str_t *root_id,
    ngx_str_t *config)
{
    ngx_uint_t             i;
    ngx_pw_core_conf_t    *pcf;
    ngx_pw_plugin_conf_t  *pc, **ppc;

    pcf = ngx_pw_core_conf(cf->cycle);

    ppc = pcf->plugins.elts;
    for (i = 0; i < pcf->plugins.nelts; i++) {
        pc = ppc[i];
        if (ngx_strncmp(pc->module_name.data, name->data, name->len) == 0
            && pc->module_name.len == name->len
            && pc->root_id.len == root_id->len
            && ngx_strncmp(pc->root_id.data, root_id->data, root_id->len)
               == 0
            && pc->config.len == config->len
            && ngx_memcmp(pc->config.data, config->data, config->len) == 0)
        {
            return pc;
        }
    }

    pc = ngx_pcalloc(cf->pool, sizeof(ngx_pw_plugin_conf_t));
    if (pc == NULL) {
        return NULL;
    }

    pc->module_name = *name;
    pc->root_id = *root_id;
    pc->config = *config;
    pc->file = cf->conf_file->file.name.data;
    pc->line = cf->conf_file->line;

    ppc = ngx_array_push(&pcf->plugins);
    if (ppc == NULL) {
        return NULL;
    }
    *ppc = pc;

    return pc;
}


/* ---- the wasm{} block ---- */


/* ---- shared memory zones ---- */


/* The store region inside a zone: after nginx's slab pool header, which
 * nginx initialises in every zone (the slab allocator is not used). */
static u_char *
ngx_pw_zone_region(ngx_shm_zone_t *shm, size_t *size)
{
    size_t  off;

    off = ngx_align(sizeof(ngx_slab_pool_t), 64);
    *size = shm->shm.size - off;

    return shm->shm.addr + off;
}


static ngx_int_t
ngx_pw_zone_init(ngx_shm_zone_t *shm, void *data)
{
    int               rc;
    u_char           *region;
    size_t            size;
    ngx_pw_zone_t    *z = shm->data;
    pw_store_opts_t   opts;

    if (data) {
        /* the same zone in the new cycle: its contents survive reload */
        return NGX_OK;
    }

    region = ngx_pw_zone_region(shm, &size);

    ngx_memzero(&opts, sizeof(opts));
    if (z->kind == NGX_PW_ZONE_KV) {
        opts.kv_eviction = (int) z->eviction;
    } else if (z->kind == NGX_PW_ZONE_QUEUE) {
        opts.queue_eviction = (int) z->eviction;
    }

    rc = pw_store_format_ex(region, size, &opts);
    if (rc != PW_OK) {
        ngx_log_error(NGX_LOG_EMERG, shm->shm.log, 0,
                      "wasm: cannot format zone \"%V\": %s", &shm->shm.name,
                      pw_strerror(rc));
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_pw_zone_t *
ngx_pw_zone_find(ngx_pw_core_conf_t *pcf, ngx_uint_t kind, u_char *name,
    size_t len)
{
    ngx_uint_t      i;
    ngx_pw_zone_t  *z;

    z = pcf->zones.elts;
    for (i = 0; i < pcf->zones.nelts; i++) {
        if (z[i].kind == kind && z[i].name.len == len
            && ngx_strncmp(z[i].name.data, name, len) == 0)
        {
            return &z[i];
        }
    }

    return NULL;
}


static char *
ngx_pw_zone_add(ngx_conf_t *cf, ngx_pw_core_conf_t *pcf, ngx_uint_t kind,
    ngx_str_t *name, size_t size, ngx_uint_t eviction)
{
    static const char  *prefix[] = { "wasm_kv_", "wasm_queue_",
                                     "wasm_metrics" };
    ngx_str_t           zname;
    ngx_pw_zone_t      *z;

    if (ngx_pw_zone_find(pcf, kind, name->data, name->len)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "wasm: zone \"%V\" is declared twice", name);
        return NGX_CONF_ERROR;
    }

    if (size < NGX_PW_MIN_ZONE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "wasm: zone \"%V\" is too small (at least %uz "
                           "bytes)", name, (size_t) NGX_PW_MIN_ZONE);
        return NGX_CONF_ERROR;
    }

    z = ngx_array_push(&pcf->zones);
    if (z == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(z, sizeof(ngx_pw_zone_t));
    z->name = *name;
    z->kind = kind;
    z->eviction = eviction;
    z->index = pcf->zones.nelts - 1;

    zname.len = ngx_strlen(prefix[kind])
                + (kind == NGX_PW_ZONE_METRICS ? 0 : name->len);
    zname.data = ngx_pnalloc(cf->pool, zname.len);
    if (zname.data == NULL) {
        return NGX_CONF_ERROR;
    }
    ngx_memcpy(ngx_cpymem(zname.data, prefix[kind], ngx_strlen(prefix[kind])),
               name->data, kind == NGX_PW_ZONE_METRICS ? 0 : name->len);
    if (kind == NGX_PW_ZONE_KV && name->len == 1 && name->data[0] == '*') {
        ngx_str_set(&zname, "wasm_kv_default");
    }

    z->shm = ngx_shared_memory_add(cf, &zname, size, &ngx_pw_core_module);
    if (z->shm == NULL) {
        return NGX_CONF_ERROR;
    }

    if (z->shm->data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "wasm: shared memory zone \"%V\" is already "
                           "used", &zname);
        return NGX_CONF_ERROR;
    }

    z->shm->init = ngx_pw_zone_init;
    z->shm->data = z;
    z->shm->noreuse = 0;

    if (kind == NGX_PW_ZONE_KV && name->len == 1 && name->data[0] == '*') {
        pcf->kv_default = z->index;
    }
    if (kind == NGX_PW_ZONE_METRICS) {
        pcf->metrics_zone = z->index;
    }

    return NGX_CONF_OK;
}


/* shm_kv NAME|* SIZE [eviction=lru|none]
 * shm_queue NAME SIZE [eviction=oldest|none]
 * shm_metrics SIZE */
static char *
ngx_pw_zone_directive(ngx_conf_t *cf, ngx_pw_core_conf_t *pcf,
    ngx_uint_t kind)
{
    ssize_t     size;
    ngx_str_t  *value, name, *sz;
    ngx_uint_t  eviction, nargs;

    value = cf->args->elts;
    nargs = cf->args->nelts;

    if (kind == NGX_PW_ZONE_METRICS) {
        if (nargs != 2) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "wasm: \"shm_metrics\" takes SIZE");
            return NGX_CONF_ERROR;
        }
        ngx_str_set(&name, "metrics");
        sz = &value[1];

    } else {
        if (nargs != 3 && nargs != 4) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "wasm: \"%V\" takes NAME SIZE "
                               "[eviction=...]", &value[0]);
            return NGX_CONF_ERROR;
        }
        name = value[1];
        sz = &value[2];

        if (!(kind == NGX_PW_ZONE_KV && name.len == 1
              && name.data[0] == '*')
            && !ngx_pw_valid_name(&name))
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "wasm: invalid zone name \"%V\"", &name);
            return NGX_CONF_ERROR;
        }
    }

    size = ngx_parse_size(sz);
    if (size == NGX_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "wasm: invalid zone size \"%V\"", sz);
        return NGX_CONF_ERROR;
    }

    eviction = (kind == NGX_PW_ZONE_KV) ? PW_STORE_EVICT_LRU
                                        : PW_STORE_EVICT_NONE;

    if (nargs == 4) {
        if (kind == NGX_PW_ZONE_KV
            && ngx_strcmp(value[3].data, "eviction=lru") == 0)
        {
            eviction = PW_STORE_EVICT_LRU;

        } else if (kind == NGX_PW_ZONE_QUEUE
                   && ngx_strcmp(value[3].data, "eviction=oldest") == 0)
        {
            eviction = PW_STORE_EVICT_OLDEST;

        } else if (ngx_strcmp(value[3].data, "eviction=none") == 0) {
            eviction = PW_STORE_EVICT_NONE;

        } else {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "wasm: invalid \"%V\" for %V", &value[3],
                               &value[0]);
            return NGX_CONF_ERROR;
        }
    }

    return ngx_pw_zone_add(cf, pcf, kind, &name, (size_t) size, eviction);
}


static char *
ngx_pw_block(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char                *rv;
    ngx_str_t            name;
    ngx_conf_t           save;
    ngx_pw_core_conf_t  *pcf;

    pcf = ngx_pw_core_conf(cf->cycle);

    save = *cf;
    cf->handler = ngx_pw_block_directive;
    cf->handler_conf = (char *) pcf;

    rv = ngx_conf_parse(cf, NULL);

    *cf = save;

    if (rv != NGX_CONF_OK) {
        return rv;
    }

    rv = ngx_pw_tls_block_done(cf, pcf);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    /* a default key-value zone and a metrics zone exist unconfigured */
    if (pcf->kv_default == NGX_CONF_UNSET_UINT) {
        ngx_str_set(&name, "*");
        rv = ngx_pw_zone_add(cf, pcf, NGX_PW_ZONE_KV, &name,
                             NGX_PW_DEFAULT_ZONE, PW_STORE_EVICT_LRU);
        if (rv != NGX_CONF_OK) {
            return rv;
        }
    }

    if (pcf->metrics_zone == NGX_CONF_UNSET_UINT) {
        ngx_str_set(&name, "metrics");
        rv = ngx_pw_zone_add(cf, pcf, NGX_PW_ZONE_METRICS, &name,
                             NGX_PW_DEFAULT_ZONE, PW_STORE_EVICT_NONE);
    }

    return rv;
}


static ngx_int_t
ngx_pw_read_module(ngx_conf_t *cf, ngx_pw_module_t *m)
{
    char             err[256];
    ssize_t          n;
    ngx_fd_t         fd;
    ngx_file_info_t  fi;
    int              rc;

    if (ngx_conf_full_name(cf->cycle, &m->path, 0) != NGX_OK) {
        return NGX_ERROR;
    }

    fd = ngx_open_file(m->path.data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);
    if (fd == NGX_INVALID_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "wasm: module \"%V\": cannot open \"%V\"",
                           &m->name, &m->path);
        return NGX_ERROR;
    }

    if (ngx_fd_info(fd, &fi) == NGX_FILE_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "wasm: module \"%V\": cannot stat \"%V\"",
                           &m->name, &m->path);
        ngx_close_file(fd);
        return NGX_ERROR;
    }

    m->len = (size_t) ngx_file_size(&fi);
    m->bytes = ngx_pnalloc(cf->pool, m->len ? m->len : 1);
    if (m->bytes == NULL) {
        ngx_close_file(fd);
        return NGX_ERROR;
    }

    n = m->len ? read(fd, m->bytes, m->len) : 0;
    ngx_close_file(fd);

    if (n < 0 || (size_t) n != m->len) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "wasm: module \"%V\": cannot read \"%V\"",
                           &m->name, &m->path);
        return NGX_ERROR;
    }

    err[0] = '\0';
    rc = pw_module_check(m->bytes, m->len, NULL, err, sizeof(err));
    if (rc != PW_OK) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "wasm: module \"%V\" (\"%V\") refused: %s",
                           &m->name, &m->path,
                           err[0] ? err : pw_strerror(rc));
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_pw_valid_name(ngx_str_t *name)
{
    ngx_uint_t  i;
    u_char      ch;

    if (name->len == 0) {
        return 0;
    }

    for (i = 0; i < name->len; i++) {
        ch = name->data[i];
        if (!(ch >= 'a' && ch <= 'z') && !(ch >= 'A' && ch <= 'Z')
            && !(ch >= '0' && ch <= '9') && ch != '_' && ch != '-'
            && ch != '.')
        {
            return 0;
        }
    }

    return 1;
}


static char *
ngx_pw_block_directive(ngx_conf_t *cf, ngx_command_t *dummy, void *conf)
{
    ngx_pw_core_conf_t  *pcf = conf;

    ngx_str_t        *value;
    ngx_pw_module_t  *m;

    value = cf->args->elts;

    if (value[0].len == 6 && ngx_strncmp(value[0].data, "module", 6) == 0) {

        if (cf->args->nelts != 3 && cf->args->nelts != 4) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "wasm: \"module\" takes NAME PATH "
                               "[VM_CONFIGURATION]");
            return NGX_CONF_ERROR;
        }

        if (!ngx_pw_valid_name(&value[1])) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "wasm: invalid module name \"%V\" (letters, "
                               "digits, \"_\", \"-\" and \".\")", &value[1]);
            return NGX_CONF_ERROR;
        }

        if (ngx_pw_module_find(pcf, &value[1]) != NULL) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "wasm: module \"%V\" is declared twice",
                               &value[1]);
            return NGX_CONF_ERROR;
        }

        m = ngx_array_push(&pcf->modules);
        if (m == NULL) {
            return NGX_CONF_ERROR;
        }
        ngx_memzero(m, sizeof(ngx_pw_module_t));

        m->name = value[1];
        m->path = value[2];
        if (cf->args->nelts == 4) {
            m->vm_config = value[3];
        }

        if (ngx_pw_read_module(cf, m) != NGX_OK) {
            return NGX_CONF_ERROR;
        }

        return NGX_CONF_OK;
    }

    if (value[0].len == 13
        && ngx_strncmp(value[0].data, "max_call_time", 13) == 0)
    {
        if (cf->args->nelts != 2) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "wasm: \"max_call_time\" takes one TIME");
            return NGX_CONF_ERROR;
        }

        if (pcf->max_call_time != NGX_CONF_UNSET_MSEC) {
            return "is duplicate";
        }

        pcf->max_call_time = ngx_parse_time(&value[1], 0);
        if (pcf->max_call_time == (ngx_msec_t) NGX_ERROR) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "wasm: invalid max_call_time \"%V\"",
                               &value[1]);
            return NGX_CONF_ERROR;
        }

        return NGX_CONF_OK;
    }

    if (value[0].len == 10
        && ngx_strncmp(value[0].data, "v8_threads", 10) == 0)
    {
        if (cf->args->nelts != 2) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "wasm: \"v8_threads\" takes one NUMBER");
            return NGX_CONF_ERROR;
        }

        if (pcf->v8_threads != NGX_CONF_UNSET) {
            return "is duplicate";
        }

        pcf->v8_threads = ngx_atoi(value[1].data, value[1].len);
        if (pcf->v8_threads == NGX_ERROR
            || pcf->v8_threads > NGX_PW_V8_THREADS_MAX)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "wasm: invalid v8_threads \"%V\" "
                               "(0 to %d)", &value[1],
                               NGX_PW_V8_THREADS_MAX);
            return NGX_CONF_ERROR;
        }

        return NGX_CONF_OK;
    }

    if (value[0].len == 6 && ngx_strncmp(value[0].data, "engine", 6) == 0) {
        if (cf->args->nelts != 2) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "wasm: \"engine\" takes v8 or w2c");
            return NGX_CONF_ERROR;
        }
        if (pcf->engine_vt != NULL) {
            return "is duplicate";
        }
        pcf->engine_vt = pw_engine_find((const char *) value[1].data);
        if (pcf->engine_vt == NULL) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "wasm: unknown engine \"%V\" (v8 or w2c)",
                               &value[1]);
            return NGX_CONF_ERROR;
        }
        return NGX_CONF_OK;
    }

    if (value[0].len == 12
        && ngx_strncmp(value[0].data, "engine_cache", 12) == 0)
    {
        if (cf->args->nelts != 2) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "wasm: \"engine_cache\" takes one PATH");
            return NGX_CONF_ERROR;
        }
        if (pcf->engine_cache.data != NULL) {
            return "is duplicate";
        }
        pcf->engine_cache = value[1];
        if (ngx_conf_full_name(cf->cycle, &pcf->engine_cache, 1) != NGX_OK) {
            return NGX_CONF_ERROR;
        }
        return NGX_CONF_OK;
    }

    if (value[0].len == 6 && ngx_strncmp(value[0].data, "shm_kv", 6) == 0) {
        return ngx_pw_zone_directive(cf, pcf, NGX_PW_ZONE_KV);
    }

    if (value[0].len == 9
        && ngx_strncmp(value[0].data, "shm_queue", 9) == 0)
    {
        return ngx_pw_zone_directive(cf, pcf, NGX_PW_ZONE_QUEUE);
    }

    if (value[0].len == 11
        && ngx_strncmp(value[0].data, "shm_metrics", 11) == 0)
    {
        if (pcf->metrics_zone != NGX_CONF_UNSET_UINT) {
            return "is duplicate";
        }
        return ngx_pw_zone_directive(cf, pcf, NGX_PW_ZONE_METRICS);
    }

    if (value[0].len > 4 && ngx_strncmp(value[0].data, "tls_", 4) == 0) {
        return ngx_pw_tls_directive(cf, pcf);
    }

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "wasm: unknown directive \"%V\"", &value[0]);

    return NGX_CONF_ERROR;
}


/* ---- store routing and queue wake-ups ---- */


#define NGX_PW_OWNER(worker, module, root)                                  \
    (((uint64_t) (worker) << 48) | ((uint64_t) (module) << 32)             \
     | (uint64_t) (root))


static size_t
ngx_pw_route_kv(void *data, pw_str_t key)
{
    ngx_pw_core_conf_t  *pcf = data;
    ngx_pw_zone_t       *z;
    const char          *slash;

    /* "NAME/key" picks zone NAME when there is one */
    slash = memchr(key.data, '/', key.len);
    if (slash) {
        z = ngx_pw_zone_find(pcf, NGX_PW_ZONE_KV, (u_char *) key.data,
                             slash - key.data);
        if (z) {
            return z->index;
        }
    }

    return pcf->kv_default;
}


static size_t
ngx_pw_route_queue(void *data, pw_str_t vm_id, pw_str_t name)
{
    ngx_pw_core_conf_t  *pcf = data;
    ngx_pw_zone_t       *z;

    z = ngx_pw_zone_find(pcf, NGX_PW_ZONE_QUEUE, (u_char *) name.data,
                         name.len);

    return z ? z->index : pcf->kv_default;
}


static uint64_t
ngx_pw_route_owner(void *data, const pw_hctx_t *c)
{
    ngx_pw_core_conf_t  *pcf = data;
    ngx_pw_root_t       *root = c->plugin_data;
    ngx_pw_module_t     *m;

    if (root == NULL) {
        return 0;
    }

    m = root->inst->module;

    return NGX_PW_OWNER(ngx_worker,
                        m - (ngx_pw_module_t *) pcf->modules.elts,
                        root->conf->index);
}


typedef struct {
    ngx_uint_t     worker;
    uint32_t       qid[64];
    uint64_t       owner[64];
    ngx_uint_t     n;
} ngx_pw_ready_t;


static void
ngx_pw_ready_collect(void *arg, const pw_queue_info_t *q)
{
    ngx_pw_ready_t  *rd = arg;

    if (q->depth && (q->owner >> 48) == rd->worker && rd->n < 64) {
        rd->qid[rd->n] = q->qid;
        rd->owner[rd->n] = q->owner;
        rd->n++;
    }
}


/* Deliver proxy_on_queue_ready for every non-empty queue this worker's
 * root contexts registered. */
static void
ngx_pw_queue_scan(ngx_pw_core_conf_t *pcf)
{
    uint32_t            qid;
    ngx_uint_t          i, j, mi, ri;
    ngx_pw_zone_t      *z;
    ngx_pw_ready_t      rd;
    ngx_pw_module_t    *m;
    ngx_pw_instance_t  *inst;

    z = pcf->zones.elts;

    for (i = 0; i < pcf->zones.nelts; i++) {
        if (z[i].store == NULL || z[i].kind == NGX_PW_ZONE_METRICS) {
            continue;
        }

        rd.worker = ngx_worker;
        rd.n = 0;
        (void) pw_queue_foreach(z[i].store, ngx_pw_ready_collect, &rd);

        for (j = 0; j < rd.n; j++) {
            mi = (rd.owner[j] >> 32) & 0xffff;
            ri = rd.owner[j] & 0xffffffff;

            if (mi >= pcf->modules.nelts) {
                continue;
            }

            m = &((ngx_pw_module_t *) pcf->modules.elts)[mi];
            inst = m->current;
            if (inst == NULL || inst->failed || ri >= inst->nroots
                || inst->roots[ri].plugin == NULL
                || (rd.qid[j] >> PW_QUEUE_STORE_SHIFT))
            {
                continue;
            }

            qid = ((uint32_t) z[i].index << PW_QUEUE_STORE_SHIFT)
                  | rd.qid[j];

            inst->refs++;
            (void) pw_plugin_queue_ready(inst->roots[ri].plugin, qid);
            (void) ngx_pw_instance_check(inst, ngx_cycle->log);
            ngx_pw_instance_release(inst);
        }
    }
}


static void
ngx_pw_wakeup_local_handler(ngx_event_t *ev)
{
    ngx_pw_queue_scan(ev->data);
}


static void
ngx_pw_wakeup_handler(ngx_event_t *ev)
{
    uint64_t             v;
    ngx_connection_t    *c = ev->data;
    ngx_pw_core_conf_t  *pcf = c->data;

    while (read(c->fd, &v, sizeof(v)) == (ssize_t) sizeof(v)) {
        /* drain */
    }

    if (ngx_handle_read_event(ev, 0) != NGX_OK) {
        ngx_log_error(NGX_LOG_ALERT, ev->log, 0,
                      "[wasm] queue wake-up: cannot re-arm the event");
    }

    ngx_pw_queue_scan(pcf);
}


/* After an enqueue in this process (outside the store's lock): wake the
 * worker whose root context registered the queue. Never calls a plugin
 * here: the enqueue may come from inside a plugin call. */
static void
ngx_pw_queue_ready(void *data, uint32_t qid, uint64_t owner)
{
    uint64_t             one = 1;
    ngx_uint_t           worker;
    ngx_pw_core_conf_t  *pcf = data;

    worker = (ngx_uint_t) (owner >> 48);

    if (worker == (ngx_uint_t) ngx_worker) {
        if (!pcf->wakeup_local.posted) {
            ngx_post_event(&pcf->wakeup_local, &ngx_posted_events);
        }
        return;
    }

    if (pcf->wakeup_fds == NULL || worker >= pcf->nworkers
        || pcf->wakeup_fds[worker] == -1)
    {
        return;
    }

    if (write(pcf->wakeup_fds[worker], &one, sizeof(one)) != sizeof(one)) {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, ngx_errno,
                      "[wasm] cannot wake worker %ui for a queue", worker);
    }
}


pw_store_t *
ngx_pw_metrics_store(ngx_cycle_t *cycle)
{
    ngx_pw_core_conf_t  *pcf;

    pcf = ngx_pw_core_conf(cycle);
    if (pcf == NULL || pcf->stores == NULL
        || pcf->metrics_zone >= pcf->zones.nelts)
    {
        return NULL;
    }

    return pcf->stores[pcf->metrics_zone];
}


static void
ngx_pw_close_fds(void *data)
{
    ngx_pw_core_conf_t  *pcf = data;
    ngx_uint_t           i;

    for (i = 0; i < pcf->nworkers; i++) {
        if (pcf->wakeup_fds[i] != -1
            && (pcf->wakeup == NULL || pcf->wakeup->fd != pcf->wakeup_fds[i]))
        {
            close(pcf->wakeup_fds[i]);
        }
        pcf->wakeup_fds[i] = -1;
    }
}


/* In the master, before the workers fork: one eventfd per worker slot, so
 * any worker can wake any other. */
static ngx_int_t
ngx_pw_init_module(ngx_cycle_t *cycle)
{
    ngx_uint_t           i;
    ngx_core_conf_t     *ccf;
    ngx_pool_cleanup_t  *cln;
    ngx_pw_core_conf_t  *pcf;

    pcf = ngx_pw_core_conf(cycle);
    if (pcf == NULL || !pcf->enabled || ngx_test_config) {
        return NGX_OK;
    }

    ccf = (ngx_core_conf_t *) ngx_get_conf(cycle->conf_ctx, ngx_core_module);
    pcf->nworkers = ccf->worker_processes > 0 ? ccf->worker_processes : 1;

    pcf->wakeup_fds = ngx_pcalloc(cycle->pool, pcf->nworkers * sizeof(int));
    cln = ngx_pool_cleanup_add(cycle->pool, 0);
    if (pcf->wakeup_fds == NULL || cln == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < pcf->nworkers; i++) {
        pcf->wakeup_fds[i] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (pcf->wakeup_fds[i] == -1) {
            ngx_log_error(NGX_LOG_EMERG, cycle->log, ngx_errno,
                          "wasm: eventfd() failed");
            return NGX_ERROR;
        }
    }

    cln->handler = ngx_pw_close_fds;
    cln->data = pcf;

    return NGX_OK;
}


static ngx_int_t
ngx_pw_attach_zones(ngx_cycle_t *cycle, ngx_pw_core_conf_t *pcf)
{
    int               rc;
    u_char           *region;
    size_t            size;
    ngx_uint_t        i;
    ngx_pw_zone_t    *z;
    pw_store_conf_t   sconf;
    ngx_connection_t *c;

    pcf->stores = ngx_pcalloc(cycle->pool,
                              pcf->zones.nelts * sizeof(pw_store_t *));
    if (pcf->stores == NULL) {
        return NGX_ERROR;
    }

    ngx_memzero(&sconf, sizeof(sconf));
    sconf.queue_ready = ngx_pw_queue_ready;
    sconf.queue_ready_data = pcf;

    z = pcf->zones.elts;
    for (i = 0; i < pcf->zones.nelts; i++) {
        region = ngx_pw_zone_region(z[i].shm, &size);
        rc = pw_store_attach(region, size, &sconf, &z[i].store);
        if (rc != PW_OK) {
            ngx_log_error(NGX_LOG_ALERT, cycle->log, 0,
                          "[wasm] cannot attach zone \"%V\": %s",
                          &z[i].shm->shm.name, pw_strerror(rc));
            return NGX_ERROR;
        }
        pcf->stores[i] = z[i].store;
    }

    pcf->route.stores = pcf->stores;
    pcf->route.nstores = pcf->zones.nelts;
    pcf->route.kv = ngx_pw_route_kv;
    pcf->route.queue = ngx_pw_route_queue;
    pcf->route.metrics = pcf->metrics_zone;
    pcf->route.owner = ngx_pw_route_owner;
    pcf->route.data = pcf;

    pcf->wakeup_local.handler = ngx_pw_wakeup_local_handler;
    pcf->wakeup_local.data = pcf;
    pcf->wakeup_local.log = cycle->log;

    if (pcf->wakeup_fds && (ngx_uint_t) ngx_worker < pcf->nworkers) {
        c = ngx_get_connection(pcf->wakeup_fds[ngx_worker], cycle->log);
        if (c == NULL) {
            return NGX_ERROR;
        }
        c->data = pcf;
        c->read->handler = ngx_pw_wakeup_handler;
        c->read->log = cycle->log;
        pcf->wakeup = c;
        if (ngx_handle_read_event(c->read, 0) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/* ---- workers ---- */


static ngx_int_t
ngx_pw_init_process(ngx_cycle_t *cycle)
{
    char                 err[256];
    int                  rc;
    ngx_uint_t           i;
    ngx_pw_module_t     *m;
    ngx_pw_core_conf_t  *pcf;
    pw_engine_conf_t     econf;

    pcf = ngx_pw_core_conf(cycle);
    if (pcf == NULL || !pcf->enabled) {
        return NGX_OK;
    }

    /* the engine lives in workers only (never the master, nor cache
     * helpers) */
    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    pcf->cycle = cycle;

    if (ngx_pw_engine_conf(cycle, pcf, &econf) != NGX_OK) {
        return NGX_OK;
    }
    err[0] = '\0';

    rc = pcf->engine_vt->init(&econf, &pcf->engine, err, sizeof(err));
    if (rc != PW_OK) {
        ngx_log_error(NGX_LOG_ALERT, cycle->log, 0,
                      "[wasm] cannot start the %s engine: %s",
                      pcf->engine_vt->name, err[0] ? err : pw_strerror(rc));
        pcf->engine = NULL;
        return NGX_OK;
    }

    if (ngx_pw_attach_zones(cycle, pcf) != NGX_OK) {
        pcf->engine_vt->destroy(pcf->engine);
        pcf->engine = NULL;
        return NGX_OK;
    }

    m = pcf->modules.elts;
    for (i = 0; i < pcf->modules.nelts; i++) {
        err[0] = '\0';
        rc = pw_module_load(pcf->engine_vt, pcf->engine, m[i].bytes,
                            m[i].len, &m[i].compiled, err, sizeof(err));
        if (rc != PW_OK) {
            ngx_log_error(NGX_LOG_ERR, cycle->log, 0,
                          "[wasm] %V: cannot compile: %s", &m[i].name,
                          err[0] ? err : pw_strerror(rc));
            m[i].compiled = NULL;
            continue;
        }

        ngx_log_error(NGX_LOG_INFO, cycle->log, 0,
                      "[wasm] %V: compiled (%uz bytes)", &m[i].name,
                      m[i].len);

        /* start the shared instance now: on_vm_start, on_configure and
         * ticks begin with the worker, as in Envoy */
        if (m[i].plugins.nelts) {
            (void) ngx_pw_instance_acquire(&m[i], 0, cycle->log);
            if (m[i].current) {
                m[i].current->refs--;      /* keep only the module's ref */
            }
        }
    }

    return NGX_OK;
}


static void
ngx_pw_exit_process(ngx_cycle_t *cycle)
{
    ngx_uint_t           i;
    ngx_pw_zone_t       *z;
    ngx_pw_module_t     *m;
    ngx_pw_core_conf_t  *pcf;
    ngx_pw_instance_t   *inst;

    pcf = ngx_pw_core_conf(cycle);
    if (pcf == NULL || pcf->engine == NULL) {
        return;
    }

    m = pcf->modules.elts;
    for (i = 0; i < pcf->modules.nelts; i++) {
        inst = m[i].current;
        if (inst) {
            m[i].current = NULL;
            ngx_pw_instance_release(inst);
        }
    }

    for (i = 0; i < pcf->modules.nelts; i++) {
        if (m[i].compiled) {
            pw_module_free(m[i].compiled);
            m[i].compiled = NULL;
        }
    }

    if (pcf->wakeup) {
        ngx_close_connection(pcf->wakeup);
        pcf->wakeup = NULL;
    }

    if (pcf->wakeup_local.posted) {
        ngx_delete_posted_event(&pcf->wakeup_local);
    }

    z = pcf->zones.elts;
    for (i = 0; i < pcf->zones.nelts; i++) {
        if (z[i].store) {
            pw_store_detach(z[i].store);
            z[i].store = NULL;
        }
    }
    pcf->stores = NULL;

    pcf->engine_vt->destroy(pcf->engine);
    pcf->engine = NULL;
}


/* ---- instances ---- */


void
ngx_pw_failure_log(ngx_pw_module_t *m, ngx_log_t *log, const char *what,
    const char *reason)
{
    ngx_msec_t  now;

    now = ngx_current_msec;

    if (m->last_log && now - m->last_log < NGX_PW_LOG_INTERVAL) {
        m->unlogged++;
        return;
    }

    if (m->unlogged) {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "[wasm] %V: %s: %s (%ui more failures not logged "
                      "in the last interval)", &m->name, what, reason,
                      m->unlogged);
    } else {
        ngx_log_error(NGX_LOG_ERR, log, 0, "[wasm] %V: %s: %s", &m->name,
                      what, reason);
    }

    m->last_log = now ? now : 1;
    m->unlogged = 0;
}


static void
ngx_pw_backoff(ngx_pw_module_t *m)
{
    ngx_msec_t  now;

    now = ngx_current_msec;

    if (m->last_failure && now - m->last_failure < NGX_PW_BACKOFF_MIN) {
        m->backoff = m->backoff ? m->backoff * 2 : NGX_PW_BACKOFF_MIN;
        if (m->backoff > NGX_PW_BACKOFF_MAX) {
            m->backoff = NGX_PW_BACKOFF_MAX;
        }
        m->next_start = now + m->backoff;

    } else {
        m->backoff = 0;
    }

    m->last_failure = now ? now : 1;
    m->failures++;
    ngx_pw_host_metric((ngx_cycle_t *) ngx_cycle, "plugin_failures",
                       &m->name, 1);
}


static ngx_pw_instance_t *
ngx_pw_instance_start(ngx_pw_module_t *m, ngx_log_t *log)
{
    char                 err[256];
    int                  rc;
    ngx_uint_t           i;
    ngx_pw_root_t       *root;
    ngx_pw_core_conf_t  *pcf;
    ngx_pw_instance_t   *inst;
    ngx_pw_plugin_conf_t **ppc;
    pw_vm_conf_t         vconf;
    pw_plugin_conf_t     pconf;

    pcf = ngx_pw_core_conf(ngx_cycle);

    if (m->compiled == NULL || pcf->engine == NULL) {
        ngx_pw_failure_log(m, log, "cannot start", "module not compiled");
        return NULL;
    }

    inst = ngx_calloc(sizeof(ngx_pw_instance_t)
                      + m->plugins.nelts * sizeof(ngx_pw_root_t), log);
    if (inst == NULL) {
        return NULL;
    }

    inst->module = m;
    inst->roots = (ngx_pw_root_t *) (inst + 1);
    inst->nroots = m->plugins.nelts;
    inst->log = ngx_cycle->log;

    ngx_memzero(&vconf, sizeof(vconf));
    vconf.host = &ngx_http_pw_host;
    vconf.host_data = inst;
    vconf.route = &pcf->route;
    vconf.vm_id.data = (const char *) m->name.data;
    vconf.vm_id.len = m->name.len;
    vconf.vm_config.data = (const char *) m->vm_config.data;
    vconf.vm_config.len = m->vm_config.len;
    vconf.max_call_ms = (uint32_t) pcf->max_call_time;

    err[0] = '\0';
    rc = pw_vm_new(m->compiled, &vconf, &inst->vm, err, sizeof(err));
    if (rc != PW_OK) {
        ngx_pw_backoff(m);
        ngx_pw_failure_log(m, log, "cannot start an instance",
                           err[0] ? err : pw_strerror(rc));
        ngx_free(inst);
        return NULL;
    }

    inst->events = pw_vm_events(inst->vm);
    inst->events_seen = *inst->events;

    /* from here on ngx_pw_instance_destroy() undoes it */
    ngx_pw_host_metric((ngx_cycle_t *) ngx_cycle, "instances", &m->name, 1);

    ppc = m->plugins.elts;
    for (i = 0; i < inst->nroots; i++) {
        root = &inst->roots[i];
        root->inst = inst;
        root->conf = ppc[i];
        root->tick.handler = ngx_pw_tick_handler;
        root->tick.data = root;
        root->tick.log = ngx_cycle->log;
        root->tick.cancelable = 1;

        ngx_memzero(&pconf, sizeof(pconf));
        pconf.name.data = (const char *) m->name.data;
        pconf.name.len = m->name.len;
        pconf.root_id.data = (const char *) ppc[i]->root_id.data;
        pconf.root_id.len = ppc[i]->root_id.len;
        pconf.config.data = (const char *) ppc[i]->config.data;
        pconf.config.len = ppc[i]->config.len;
        pconf.host_data = root;

        err[0] = '\0';
        rc = pw_plugin_new(inst->vm, &pconf, &root->plugin, err,
                           sizeof(err));
        if (rc == PW_OK) {
            continue;
        }

        root->plugin = NULL;

        if (pw_vm_failed(inst->vm)) {
            ngx_pw_backoff(m);
            ngx_pw_failure_log(m, log, "instance failed while starting",
                               err[0] ? err : pw_vm_fail_reason(inst->vm));
            ngx_pw_instance_destroy(inst);
            return NULL;
        }

        /* on_vm_start or on_configure said no: this root stays down (its
         * filters apply their failure policy), the others run */
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "[wasm] %V: plugin (root id \"%V\") failed to start: "
                      "%s", &m->name, &ppc[i]->root_id,
                      err[0] ? err : pw_strerror(rc));
    }

    if (m->current || m->failures) {
        m->restarts++;
        ngx_pw_host_metric((ngx_cycle_t *) ngx_cycle, "instance_restarts",
                           &m->name, 1);
    }

    ngx_log_error(NGX_LOG_INFO, log, 0, "[wasm] %V: instance started",
                  &m->name);

    return inst;
}


static void
ngx_pw_instance_destroy(ngx_pw_instance_t *inst)
{
    ngx_uint_t  i;

    /* root on_done/on_delete may still call host functions: the roots
     * stay valid until the VM is gone */
    pw_vm_free(inst->vm);

    ngx_pw_host_metric((ngx_cycle_t *) ngx_cycle, "instances",
                       &inst->module->name, -1);

    for (i = 0; i < inst->nroots; i++) {
        if (inst->roots[i].tick.timer_set) {
            ngx_del_timer(&inst->roots[i].tick);
        }
        if (inst->roots[i].tick.posted) {
            ngx_delete_posted_event(&inst->roots[i].tick);
        }
    }

    ngx_free(inst);
}


NGX_PW_HOT ngx_pw_instance_t *
ngx_pw_instance_acquire(ngx_pw_module_t *m, ngx_uint_t per_request,
    ngx_log_t *log)
{
    ngx_pw_instance_t  *inst;

    if (!per_request && m->current) {
        m->current->refs++;
        return m->current;
    }

    if (m->backoff && (ngx_msec_int_t) (m->next_start - ngx_current_msec)
                      > 0)
    {
        ngx_pw_failure_log(m, log, "not started",
                           "backing off after repeated failures");
        return NULL;
    }

    inst = ngx_pw_instance_start(m, log);
    if (inst == NULL) {
        return NULL;
    }

    inst->refs++;           /* calls made while starting may hold some */

    if (per_request) {
        inst->per_request = 1;

    } else {
        m->current = inst;
        inst->refs++;
    }

    return inst;
}


ngx_int_t
ngx_pw_instance_take_ref(ngx_pw_instance_t *inst)
{
    ngx_uint_t           i;
    ngx_pw_module_t     *m;
    ngx_pw_core_conf_t  *pcf;

    pcf = ngx_pw_core_conf(ngx_cycle);
    m = pcf ? pcf->modules.elts : NULL;

    for (i = 0; m && i < pcf->modules.nelts; i++) {
        if (m[i].current == inst) {
            inst->refs++;
            return NGX_OK;
        }
    }

    return NGX_DECLINED;
}


NGX_PW_HOT void
ngx_pw_instance_release(ngx_pw_instance_t *inst)
{
    if (--inst->refs == 0) {
        ngx_pw_instance_destroy(inst);
    }
}


/* after every call into an instance: cheap unless something happened */
ngx_uint_t
ngx_pw_instance_look(ngx_pw_instance_t *inst, ngx_log_t *log)
{
    uint64_t  errors;

    inst->events_seen = *inst->events;

    if (inst->failed) {
        return 1;
    }

    errors = pw_vm_hostcall_errors(inst->vm);
    if (errors != inst->hostcall_errors) {
        ngx_pw_host_metric((ngx_cycle_t *) ngx_cycle, "hostcall_errors",
                           &inst->module->name,
                           (int64_t) (errors - inst->hostcall_errors));
        inst->hostcall_errors = errors;
    }

    if (!pw_vm_failed(inst->vm)) {
        return 0;
    }

    ngx_pw_instance_failed(inst, log);

    return 1;
}


/* out of line: its message buffer stays off the per-request path */
static void __attribute__((noinline))
ngx_pw_instance_failed(ngx_pw_instance_t *inst, ngx_log_t *log)
{
    const char         *reason;
    const pw_trap_t    *trap;
    ngx_pw_module_t    *m;
    u_char              buf[1024], *p;

    inst->failed = 1;
    m = inst->module;

    ngx_pw_backoff(m);

    reason = pw_vm_fail_reason(inst->vm);
    trap = pw_vm_last_trap(inst->vm);
    if (trap && trap->backtrace[0]) {
        p = ngx_snprintf(buf, sizeof(buf) - 1, "%s\n%s",
                         reason ? reason : "failed", trap->backtrace);
        *p = '\0';
        reason = (const char *) buf;
    }

    ngx_pw_failure_log(m, log, "plugin failed, instance replaced",
                       reason ? reason : "failed");

    if (m->current == inst) {
        m->current = NULL;
        ngx_pw_instance_release(inst);
    }
}


static void
ngx_pw_tick_handler(ngx_event_t *ev)
{
    ngx_pw_root_t      *root = ev->data;
    ngx_pw_instance_t  *inst;

    inst = root->inst;
    if (inst->failed || root->plugin == NULL) {
        return;
    }

    inst->refs++;

    (void) pw_plugin_tick(root->plugin);

    /* ticks go on while a worker drains: a paused request may wait for
     * one (the timer is cancelable: it does not hold the worker) */
    if (!ngx_pw_instance_check(inst, ngx_cycle->log)
        && root->tick_period && !root->tick.timer_set)
    {
        ngx_add_timer(&root->tick, root->tick_period);
    }

    ngx_pw_instance_release(inst);
}
