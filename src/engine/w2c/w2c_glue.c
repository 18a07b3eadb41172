/*
 * Writes the glue of one plugin object (see w2c_glue.h).
 *
 * wasm2c's header declares each import and export after a comment that
 * names it ("import: 'env' 'proxy_log'"), in the module's order; the
 * declarations give the C symbols and types. Our reader's view of the
 * module must agree, name by name and signature by signature, or the
 * build stops.
 */

#include <stdlib.h>
#include <string.h>

#include <pw/pw_engine.h>

#include "w2c_glue.h"

#define PW__W2C_LINE_MAX 4096

const char pw__w2c_glue_version[] = "2026-11-24.3";

typedef struct {
    char ret[64];
    char sym[PW__W2C_LINE_MAX];
    char params[PW__W2C_LINE_MAX];  /* after the instance pointer */
    int func;
} pw__w2c_decl_t;

/* the next line of *p, without its newline, into buf */
static int
pw__w2c_line(const char **p, char *buf, size_t len)
{
    const char *s = *p, *nl;
    size_t n;

    if (*s == '\0') {
        return 0;
    }
    nl = strchr(s, '\n');
    n = nl ? (size_t) (nl - s) : strlen(s);
    *p = nl ? nl + 1 : s + n;
    if (n >= len) {
        n = len - 1;
    }
    memcpy(buf, s, n);
    buf[n] = '\0';
    return 1;
}

static int
pw__w2c_kind(const char *ctype)
{
    if (strcmp(ctype, "u32") == 0) {
        return PW_I32;
    }
    if (strcmp(ctype, "u64") == 0) {
        return PW_I64;
    }
    if (strcmp(ctype, "f32") == 0) {
        return PW_F32;
    }
    if (strcmp(ctype, "f64") == 0) {
        return PW_F64;
    }
    return 0;
}

static void
pw__w2c_trim(char *s)
{
    size_t n;

    while (*s == ' ') {
        memmove(s, s + 1, strlen(s));
    }
    n = strlen(s);
    while (n > 0 && s[n - 1] == ' ') {
        s[--n] = '\0';
    }
}

/* "RET SYM(FIRST, T, T);" */
static int
pw__w2c_parse_decl(const char *line, pw__w2c_decl_t *d)
{
    const char *open, *close, *sp, *comma;
    size_t n;

    memset(d, 0, sizeof(*d));
    open = strchr(line, '(');
    if (open == NULL) {
        return 0;                   /* not a function */
    }
    close = strrchr(line, ')');
    sp = open;
    while (sp > line && sp[-1] != ' ' && sp[-1] != '*') {
        sp--;
    }
    if (close == NULL || sp == line) {
        return -1;
    }
    n = (size_t) (sp - line);
    if (n >= sizeof(d->ret)) {
        return -1;
    }
    memcpy(d->ret, line, n);
    pw__w2c_trim(d->ret);
    memcpy(d->sym, sp, (size_t) (open - sp));
    comma = memchr(open, ',', (size_t) (close - open));
    if (comma != NULL) {
        memcpy(d->params, comma + 1, (size_t) (close - comma - 1));
    }
    d->func = 1;
    return 1;
}

#define PW__W2C_MULTI "struct wasm_multi_"

static int
pw__w2c_multi_kind(char letter)
{
    switch (letter) {
    case 'i':
        return PW_I32;
    case 'j':
        return PW_I64;
    case 'f':
        return PW_F32;
    case 'd':
        return PW_F64;
    default:
        return 0;
    }
}

/* the kinds of a declaration as a signature, or -1 if not supported */
static int
pw__w2c_decl_sig(const pw__w2c_decl_t *d, char *sig)
{
    char buf[PW__W2C_LINE_MAX], *tok, *save;
    const char *p;
    size_t n;
    int k;

    n = 0;
    snprintf(buf, sizeof(buf), "%s", d->params);
    for (tok = strtok_r(buf, ",", &save); tok != NULL;
         tok = strtok_r(NULL, ",", &save))
    {
        pw__w2c_trim(tok);
        k = pw__w2c_kind(tok);
        if (k == 0 || n + 2 >= PW_SIG_MAX) {
            return -1;
        }
        sig[n++] = (char) k;
    }
    sig[n++] = ':';
    if (strncmp(d->ret, PW__W2C_MULTI, sizeof(PW__W2C_MULTI) - 1) == 0) {
        /* several results: a struct, one letter per field */
        for (p = d->ret + sizeof(PW__W2C_MULTI) - 1; *p; p++) {
            k = pw__w2c_multi_kind(*p);
            if (k == 0 || n + 1 >= PW_SIG_MAX) {
                return -1;
            }
            sig[n++] = (char) k;
        }
    } else if (strcmp(d->ret, "void") != 0) {
        k = pw__w2c_kind(d->ret);
        if (k == 0) {
            return -1;
        }
        sig[n++] = (char) k;
    }
    sig[n] = '\0';
    return 0;
}

/* the letter wasm2c names a struct wasm_multi_ field with */
static char
pw__w2c_multi_letter(char kind)
{
    switch (kind) {
    case PW_I64:
        return 'j';
    case PW_F32:
        return 'f';
    case PW_F64:
        return 'd';
    default:
        return 'i';
    }
}

static const char *
pw__w2c_ctype(char kind)
{
    switch (kind) {
    case PW_I64:
        return "u64";
    case PW_F32:
        return "f32";
    case PW_F64:
        return "f64";
    default:
        return "u32";
    }
}

static const char *
pw__w2c_field(char kind)
{
    switch (kind) {
    case PW_I64:
        return "i64";
    case PW_F32:
        return "f32";
    case PW_F64:
        return "f64";
    default:
        return "i32";
    }
}

/* a C string literal of any bytes */
static void
pw__w2c_cstr(FILE *out, const char *s)
{
    const unsigned char *p;

    fputc('"', out);
    for (p = (const unsigned char *) s; *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')
            || (*p >= '0' && *p <= '9') || *p == '_' || *p == '.'
            || *p == '-' || *p == ' ')
        {
            fputc(*p, out);
        } else {
            fprintf(out, "\\%03o", *p);
        }
    }
    fputc('"', out);
}

/* does the rest of an import or export comment name these? */
static int
pw__w2c_names(const char *rest, const char *a, const char *b)
{
    char want[PW__W2C_LINE_MAX];

    if (b != NULL) {
        snprintf(want, sizeof(want), " '%s' '%s' */", a, b);
    } else {
        snprintf(want, sizeof(want), " '%s' */", a);
    }
    return strcmp(rest, want) == 0;
}

static void
pw__w2c_import_fn(FILE *out, const pw__w2c_decl_t *d, const char *tag,
    unsigned idx, const char *sig)
{
    const char *colon = strchr(sig, ':');
    unsigned i, np, nr;

    np = (unsigned) (colon - sig);
    fprintf(out, "%s\n%s(struct %s *pw_e", d->ret, d->sym, tag);
    for (i = 0; i < np; i++) {
        fprintf(out, ", %s p%u", pw__w2c_ctype(sig[i]), i);
    }
    nr = (unsigned) strlen(colon + 1);
    fprintf(out, ")\n{\n    pw_w2c_val_t a[%u], r[%u];\n", np ? np : 1,
            nr ? nr : 1);
    if (nr > 1) {
        fprintf(out, "    %s res;\n", d->ret);
    }
    fprintf(out, "\n");
    for (i = 0; i < np; i++) {
        fprintf(out, "    a[%u].kind = %d;\n    a[%u].of.%s = p%u;\n", i,
                sig[i], i, pw__w2c_field(sig[i]), i);
    }
    for (i = 0; i < nr; i++) {
        fprintf(out, "    r[%u].kind = %d;\n", i, colon[1 + i]);
    }
    fprintf(out, "    pw_rt_hostcall((pw_w2c_env_t *) pw_e, %u, a, r);\n",
            idx);
    if (nr == 1) {
        fprintf(out, "    return (%s) r[0].of.%s;\n", d->ret,
                pw__w2c_field(colon[1]));
    } else if (nr > 1) {
        for (i = 0; i < nr; i++) {
            fprintf(out, "    res.%c%u = r[%u].of.%s;\n",
                    pw__w2c_multi_letter(colon[1 + i]), i, i,
                    pw__w2c_field(colon[1 + i]));
        }
        fprintf(out, "    return res;\n");
    } else {
        fprintf(out, "    (void) r;\n");
    }
    fprintf(out, "}\n\n");
}

static void
pw__w2c_thunk(FILE *out, const pw__w2c_decl_t *d, unsigned idx,
    const char *sig)
{
    const char *colon = strchr(sig, ':');
    unsigned i, np, nr;

    np = (unsigned) (colon - sig);
    nr = (unsigned) strlen(colon + 1);
    fprintf(out, "static void\npw_x%u(void *m, const pw_w2c_val_t *a, "
            "pw_w2c_val_t *r)\n{\n", idx);
    if (nr > 1) {
        fprintf(out, "    %s res;\n\n", d->ret);
    }
    fprintf(out, "    (void) a;\n    (void) r;\n    ");
    if (nr == 1) {
        fprintf(out, "r[0].of.%s = ", pw__w2c_field(colon[1]));
    } else if (nr > 1) {
        fprintf(out, "res = ");
    }
    fprintf(out, "%s((Z_pwmod_instance_t *) m", d->sym);
    for (i = 0; i < np; i++) {
        fprintf(out, ", a[%u].of.%s", i, pw__w2c_field(sig[i]));
    }
    fprintf(out, ");\n");
    for (i = 0; i < nr && nr > 1; i++) {
        fprintf(out, "    r[%u].of.%s = res.%c%u;\n", i,
                pw__w2c_field(colon[1 + i]),
                pw__w2c_multi_letter(colon[1 + i]), i);
    }
    fprintf(out, "}\n\n");
}

/* Whether sig has only i32 parameters and no result or one i32. */
static int
pw__w2c_sig32(const char *sig)
{
    const char *colon = strchr(sig, ':');

    return strspn(sig, "i") == (size_t) (colon - sig)
           && (colon[1] == '\0' || strcmp(colon + 1, "i") == 0);
}

/* The export's thunk for pw_w2c_thunk32_t, when its signature allows. */
static void
pw__w2c_thunk32(FILE *out, const pw__w2c_decl_t *d, unsigned idx,
    const char *sig)
{
    const char *colon = strchr(sig, ':');
    unsigned i, np;

    if (!pw__w2c_sig32(sig)) {
        return;
    }
    np = (unsigned) (colon - sig);
    fprintf(out, "static void\npw_y%u(void *m, const uint32_t *a, "
            "uint32_t *r)\n{\n    (void) a;\n    (void) r;\n    ", idx);
    if (colon[1] != '\0') {
        fprintf(out, "r[0] = ");
    }
    fprintf(out, "%s((Z_pwmod_instance_t *) m", d->sym);
    for (i = 0; i < np; i++) {
        fprintf(out, ", a[%u]", i);
    }
    fprintf(out, ");\n}\n\n");
}

int
pw__w2c_glue(const char *hdr, const pw_wasm_info_t *info, FILE *out,
    char *err, size_t errlen)
{
    static const char prefix_i[] = "/* import:";
    static const char prefix_e[] = "/* export:";
    static const char inst_fn[] = "void Z_pwmod_instantiate(";
    char line[PW__W2C_LINE_MAX], decl[PW__W2C_LINE_MAX], sig[PW_SIG_MAX];
    char tags[8][128], *tok, *save, *s;
    const char *p;
    pw__w2c_decl_t d;
    unsigned ni, ne, nfe, ntags, i, has_memory;
    unsigned *fexp;
    int r;

    for (i = 0; i < info->nimports; i++) {
        if (info->imports[i].kind != PW_EXTERN_FUNC) {
            snprintf(err, errlen, "import %s.%s: the w2c engine runs only "
                     "modules that import functions", info->imports[i].module,
                     info->imports[i].name);
            return PW_ELINK;
        }
    }

    fexp = calloc(info->nexports + 1, sizeof(*fexp));
    if (fexp == NULL) {
        snprintf(err, errlen, "out of memory");
        return PW_ENOMEM;
    }

    fprintf(out, "#include \"m.h\"\n\n%s\n%s\n", pw__w2c_abi_text,
            pw__w2c_rt_text);

    /* the import modules' instance types, from instantiate's parameters */
    ntags = 0;
    for (p = hdr; pw__w2c_line(&p, line, sizeof(line));) {
        if (strncmp(line, inst_fn, sizeof(inst_fn) - 1) != 0) {
            continue;
        }
        s = line + sizeof(inst_fn) - 1;
        for (tok = strtok_r(s, ",);", &save); tok != NULL;
             tok = strtok_r(NULL, ",);", &save))
        {
            pw__w2c_trim(tok);
            if (strncmp(tok, "struct ", 7) == 0 && ntags < 8) {
                snprintf(tags[ntags], sizeof(tags[ntags]), "%s", tok + 7);
                s = strchr(tags[ntags], '*');
                if (s != NULL) {
                    *s = '\0';
                }
                pw__w2c_trim(tags[ntags]);
                fprintf(out, "struct %s {\n    pw_w2c_env_t pw;\n};\n\n",
                        tags[ntags]);
                ntags++;
            }
        }
    }

    ni = ne = nfe = has_memory = 0;
    for (p = hdr; pw__w2c_line(&p, line, sizeof(line));) {
        int imp = strncmp(line, prefix_i, sizeof(prefix_i) - 1) == 0;
        int exp = strncmp(line, prefix_e, sizeof(prefix_e) - 1) == 0;

        if (!imp && !exp) {
            continue;
        }
        if (!pw__w2c_line(&p, decl, sizeof(decl))) {
            goto unexpected;
        }
        r = pw__w2c_parse_decl(decl, &d);
        if (r < 0) {
            goto unexpected;
        }

        if (imp) {
            const pw_wasm_import_t *im;

            /* wasm2c sorts imports by name */
            for (i = 0; i < info->nimports; i++) {
                if (pw__w2c_names(line + sizeof(prefix_i) - 1,
                                  info->imports[i].module,
                                  info->imports[i].name))
                {
                    break;
                }
            }
            if (i == info->nimports) {
                goto unexpected;
            }
            im = &info->imports[i];
            ni++;
            if (!r) {
                goto unexpected;    /* every import is a function (above) */
            }
            if (pw__w2c_decl_sig(&d, sig) != 0
                || strcmp(sig, im->sig) != 0)
            {
                snprintf(err, errlen, "import %s.%s: signature %s is not "
                         "supported by the w2c engine", im->module, im->name,
                         im->sig);
                free(fexp);
                return PW_ELINK;
            }
            /* the instance pointer's type names the import module */
            s = strstr(decl, "(struct ");
            if (s == NULL) {
                goto unexpected;
            }
            snprintf(line, sizeof(line), "%s", s + 8);
            s = strchr(line, '*');
            if (s == NULL) {
                goto unexpected;
            }
            *s = '\0';
            pw__w2c_trim(line);
            pw__w2c_import_fn(out, &d, line, i, sig);
            continue;
        }

        {
            const pw_wasm_export_t *ex;

            for (i = 0; i < info->nexports; i++) {
                if (pw__w2c_names(line + sizeof(prefix_e) - 1,
                                  info->exports[i].name, NULL))
                {
                    break;
                }
            }
            if (i == info->nexports) {
                goto unexpected;
            }
            ex = &info->exports[i];
            ne++;
            if (ex->kind == PW_EXTERN_MEMORY
                && strcmp(ex->name, "memory") == 0)
            {
                fprintf(out, "static void\npw_memory(void *m, uint8_t **base, "
                        "size_t *size)\n{\n    wasm_rt_memory_t *mem = "
                        "%s((Z_pwmod_instance_t *) m);\n\n"
                        "    *base = mem->data;\n    *size = mem->size;\n}\n\n",
                        d.sym);
                has_memory = 1;
                continue;
            }
            if (ex->kind != PW_EXTERN_FUNC) {
                continue;
            }
            if (pw__w2c_decl_sig(&d, sig) != 0
                || strcmp(sig, ex->sig) != 0)
            {
                snprintf(err, errlen, "export %s: signature %s is not "
                         "supported by the w2c engine", ex->name, ex->sig);
                free(fexp);
                return PW_ELINK;
            }
            fexp[nfe] = i;
            pw__w2c_thunk(out, &d, nfe, sig);
            pw__w2c_thunk32(out, &d, nfe++, sig);
        }
    }
    if (ni != info->nimports || ne != info->nexports) {
        goto unexpected;
    }

    /* descriptor tables */
    fprintf(out, "static const pw_w2c_import_decl_t pw_imports[] = {\n");
    for (i = 0; i < info->nimports; i++) {
        fprintf(out, "    { ");
        pw__w2c_cstr(out, info->imports[i].module);
        fprintf(out, ", ");
        pw__w2c_cstr(out, info->imports[i].name);
        fprintf(out, ", \"%s\" },\n", info->imports[i].sig);
    }
    fprintf(out, "    { 0, 0, 0 }\n};\n\n"
            "static const pw_w2c_export_t pw_exports[] = {\n");
    for (i = 0; i < nfe; i++) {
        fprintf(out, "    { ");
        pw__w2c_cstr(out, info->exports[fexp[i]].name);
        fprintf(out, ", \"%s\", pw_x%u, ", info->exports[fexp[i]].sig, i);
        if (pw__w2c_sig32(info->exports[fexp[i]].sig)) {
            fprintf(out, "pw_y%u },\n", i);
        } else {
            fprintf(out, "0 },\n");
        }
    }
    fprintf(out, "    { 0, 0, 0, 0 }\n};\n\n");

    fprintf(out,
        "static void\npw_run_init(void *a, void *b)\n{\n"
        "    Z_pwmod_init_module();\n}\n\n"
        "static int\npw_init_module(const char **msg)\n{\n"
        "    return pw_rt_enter(pw_run_init, 0, 0, msg);\n}\n\n"
        "static void\npw_run_instantiate(void *m, void *env)\n{\n"
        "    Z_pwmod_instantiate((Z_pwmod_instance_t *) m");
    for (i = 0; i < ntags; i++) {
        fprintf(out, ", (struct %s *) env", tags[i]);
    }
    fprintf(out, ");\n}\n\n"
        "static int\npw_instantiate(void *m, pw_w2c_env_t *env, "
        "const char **msg)\n{\n"
        "    return pw_rt_enter(pw_run_instantiate, m, env, msg);\n}\n\n"
        "static void\npw_free(void *m)\n{\n"
        "    Z_pwmod_free((Z_pwmod_instance_t *) m);\n}\n\n");
    if (!has_memory) {
        fprintf(out, "static void\npw_memory(void *m, uint8_t **base, "
                "size_t *size)\n{\n    *base = 0;\n    *size = 0;\n}\n\n");
    }
    fprintf(out,
        "__attribute__((visibility(\"default\")))\n"
        "const pw_w2c_module_t pw_w2c_module = {\n"
        "    PW_W2C_ABI, sizeof(Z_pwmod_instance_t),\n"
        "    %u, pw_imports, %u, pw_exports, %u, &pw_rt_state,\n"
        "    pw_init_module, pw_instantiate, pw_free, pw_memory, pw_rt_call,\n"
        "    pw_rt_call32, pw_rt_seq32, pw_rt_set_max_pages,\n"
        "    pw_rt_interrupt\n};\n",
        (unsigned) info->nimports, nfe, has_memory);
    free(fexp);
    return PW_OK;

unexpected:
    snprintf(err, errlen, "wasm2c's output does not match the module "
             "(near \"%.80s\")", line);
    free(fexp);
    return PW_EENGINE;
}
