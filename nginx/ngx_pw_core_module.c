/*
 * The wasm{} block: module declarations read and validated by the master,
 * and per worker the engine, compiled modules and instances.
 */
#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include "ngx_pw.h"


#define NGX_PW_BACKOFF_MIN    1000
#define NGX_PW_BACKOFF_MAX    60000
#define NGX_PW_LOG_INTERVAL   1000
#define NGX_PW_STORE_SIZE     (4 * 1024 * 1024)


static void *ngx_pw_core_create_conf(ngx_cycle_t *cycle);
static char *ngx_pw_core_init_conf(ngx_cycle_t *cycle, void *conf);
static char *ngx_pw_block(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
static char *ngx_pw_block_directive(ngx_conf_t *cf, ngx_command_t *dummy,
    void *conf);
static ngx_int_t ngx_pw_init_process(ngx_cycle_t *cycle);
static void ngx_pw_exit_process(ngx_cycle_t *cycle);
static ngx_pw_instance_t *ngx_pw_instance_start(ngx_pw_module_t *m,
    ngx_log_t *log);
static void ngx_pw_instance_destroy(ngx_pw_instance_t *inst);
static void ngx_pw_tick_handler(ngx_event_t *ev);


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
    NULL,                                  /* init module */
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

    pcf->max_call_time = NGX_CONF_UNSET_MSEC;

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


static char *
ngx_pw_core_init_conf(ngx_cycle_t *cycle, void *conf)
{
    ngx_pw_core_conf_t  *pcf = conf;

    ngx_uint_t             i;
    ngx_pw_module_t       *m;
    ngx_pw_plugin_conf_t  *pc, **ppc, **slot;

    ngx_conf_init_msec_value(pcf->max_call_time, 0);

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


static char *
ngx_pw_block(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char        *rv;
    ngx_conf_t   save;

    save = *cf;
    cf->handler = ngx_pw_block_directive;
    cf->handler_conf = (char *) ngx_pw_core_conf(cf->cycle);

    rv = ngx_conf_parse(cf, NULL);

    *cf = save;

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

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "wasm: unknown directive \"%V\"", &value[0]);

    return NGX_CONF_ERROR;
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
    pw_store_conf_t      sconf;

    pcf = ngx_pw_core_conf(cycle);
    if (pcf == NULL || !pcf->enabled) {
        return NGX_OK;
    }

    /* V8 lives in workers only (never the master, nor cache helpers) */
    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    pcf->cycle = cycle;

    ngx_memzero(&econf, sizeof(econf));
    econf.threads = 1;
    err[0] = '\0';

    rc = pw_engine_v8.init(&econf, &pcf->engine, err, sizeof(err));
    if (rc != PW_OK) {
        ngx_log_error(NGX_LOG_ALERT, cycle->log, 0,
                      "[wasm] cannot start V8: %s",
                      err[0] ? err : pw_strerror(rc));
        pcf->engine = NULL;
        return NGX_OK;
    }

    ngx_memzero(&sconf, sizeof(sconf));
    rc = pw_store_new(NGX_PW_STORE_SIZE, &sconf, &pcf->store);
    if (rc != PW_OK) {
        ngx_log_error(NGX_LOG_ALERT, cycle->log, 0,
                      "[wasm] cannot create the store: %s",
                      pw_strerror(rc));
        pcf->store = NULL;
    }

    m = pcf->modules.elts;
    for (i = 0; i < pcf->modules.nelts; i++) {
        err[0] = '\0';
        rc = pw_module_load(&pw_engine_v8, pcf->engine, m[i].bytes,
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

    if (pcf->store) {
        pw_store_free(pcf->store);
        pcf->store = NULL;
    }

    pw_engine_v8.destroy(pcf->engine);
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
    vconf.store = pcf->store;
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


ngx_pw_instance_t *
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

    inst->refs = 1;

    if (per_request) {
        inst->per_request = 1;

    } else {
        m->current = inst;
        inst->refs++;
    }

    return inst;
}


void
ngx_pw_instance_release(ngx_pw_instance_t *inst)
{
    if (--inst->refs == 0) {
        ngx_pw_instance_destroy(inst);
    }
}


ngx_uint_t
ngx_pw_instance_check(ngx_pw_instance_t *inst, ngx_log_t *log)
{
    const char         *reason;
    const pw_trap_t    *trap;
    ngx_pw_module_t    *m;
    u_char              buf[1024], *p;

    if (inst->failed) {
        return 1;
    }

    if (!pw_vm_failed(inst->vm)) {
        return 0;
    }

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

    return 1;
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

    if (!ngx_pw_instance_check(inst, ngx_cycle->log)
        && root->tick_period && !root->tick.timer_set
        && !ngx_exiting)
    {
        ngx_add_timer(&root->tick, root->tick_period);
    }

    ngx_pw_instance_release(inst);
}
