/* vc_conf.c -- see vc_conf.h. */
#include "vc_conf.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const vc_conf_opt *conf_find(const vc_conf_table *t, const char *name)
{
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->opts[i].name, name) == 0)
            return &t->opts[i];
    return NULL;
}

static int parse_bool(const char *v, int *out)
{
    if (!strcasecmp(v, "1") || !strcasecmp(v, "true") || !strcasecmp(v, "yes") || !strcasecmp(v, "on"))
        *out = 1;
    else if (!strcmp(v, "") || !strcasecmp(v, "0") || !strcasecmp(v, "false") || !strcasecmp(v, "no") ||
             !strcasecmp(v, "off"))
        *out = 0;
    else
        return -1;
    return 0;
}

static int conf_apply(const vc_conf_opt *o, void *cfg, const char *value, char *errstr, size_t errstr_size)
{
    char *p = (char *)cfg + o->offset;

    switch (o->type) {
    case VC_CONF_STR: {
        char *s = strdup(value);

        if (s == NULL) {
            snprintf(errstr, errstr_size, "out of memory");
            return -1;
        }
        free(*(char **)p);
        *(char **)p = s;
        return 0;
    }
    case VC_CONF_BOOL: {
        int b;

        if (parse_bool(value, &b)) {
            snprintf(errstr, errstr_size, "--%s (%s): '%s' is not a boolean", o->name, o->env, value);
            return -1;
        }
        *(int *)p = b;
        return 0;
    }
    case VC_CONF_INT:
    case VC_CONF_I64: {
        char *end;
        long long v;

        errno = 0;
        v = strtoll(value, &end, 10);
        if (errno || end == value || *end || v < o->min || v > o->max) {
            snprintf(errstr, errstr_size, "--%s (%s): '%s' is not an integer in [%" PRId64 ", %" PRId64 "]",
                     o->name, o->env, value, o->min, o->max);
            return -1;
        }
        if (o->type == VC_CONF_INT)
            *(int *)p = (int)v;
        else
            *(int64_t *)p = (int64_t)v;
        return 0;
    }
    }
    snprintf(errstr, errstr_size, "--%s: bad option type", o->name);
    return -1;
}

void vc_conf_init(const vc_conf_table *t, void *cfg)
{
    char err[256]; /* defaults are the table's own and never fail */

    for (size_t i = 0; i < t->n; i++) {
        char *p = (char *)cfg + t->opts[i].offset;

        switch (t->opts[i].type) {
        case VC_CONF_STR: *(char **)p = NULL; break;
        case VC_CONF_INT:
        case VC_CONF_BOOL: *(int *)p = 0; break;
        case VC_CONF_I64: *(int64_t *)p = 0; break;
        }
        (void)conf_apply(&t->opts[i], cfg, t->opts[i].def, err, sizeof(err));
    }
}

void vc_conf_free(const vc_conf_table *t, void *cfg)
{
    if (cfg == NULL)
        return;
    for (size_t i = 0; i < t->n; i++)
        if (t->opts[i].type == VC_CONF_STR) {
            char **s = (char **)((char *)cfg + t->opts[i].offset);

            free(*s);
            *s = NULL;
        }
}

int vc_conf_set(const vc_conf_table *t, void *cfg, const char *name, const char *value, char *errstr,
                size_t errstr_size)
{
    const vc_conf_opt *o = conf_find(t, name);

    if (o == NULL) {
        snprintf(errstr, errstr_size, "unknown option --%s (see --help)", name);
        return -1;
    }
    return conf_apply(o, cfg, value, errstr, errstr_size);
}

int vc_conf_load_env(const vc_conf_table *t, void *cfg, char *errstr, size_t errstr_size)
{
    for (size_t i = 0; i < t->n; i++) {
        const char *v = getenv(t->opts[i].env);

        if (v != NULL && conf_apply(&t->opts[i], cfg, v, errstr, errstr_size))
            return -1;
    }
    return 0;
}

int vc_conf_load_args(const vc_conf_table *t, void *cfg, int argc, char **argv, int first,
                      int stop_at_positional, int *help, char *errstr, size_t errstr_size)
{
    if (help)
        *help = 0;
    for (int i = first; i < argc; i++) {
        const char *a = argv[i], *eq, *value;
        const vc_conf_opt *o;
        char name[64];
        size_t n;

        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            if (help)
                *help = 1;
            continue;
        }
        if (strncmp(a, "--", 2) != 0) {
            if (stop_at_positional)
                return i;
            snprintf(errstr, errstr_size, "unexpected argument '%s' (see --help)", a);
            return -1;
        }
        a += 2;
        eq = strchr(a, '=');
        n = eq ? (size_t)(eq - a) : strlen(a);
        if (n >= sizeof(name)) {
            snprintf(errstr, errstr_size, "unknown option --%.20s... (see --help)", a);
            return -1;
        }
        memcpy(name, a, n);
        name[n] = '\0';
        o = conf_find(t, name);
        if (o == NULL) {
            snprintf(errstr, errstr_size, "unknown option --%s (see --help)", name);
            return -1;
        }
        if (eq)
            value = eq + 1;
        else if (o->type == VC_CONF_BOOL)
            value = "1";
        else if (i + 1 < argc)
            value = argv[++i];
        else {
            snprintf(errstr, errstr_size, "--%s needs a value", name);
            return -1;
        }
        if (conf_apply(o, cfg, value, errstr, errstr_size))
            return -1;
    }
    return stop_at_positional ? argc : 0;
}

void vc_conf_usage(const vc_conf_table *t, FILE *out)
{
    for (size_t i = 0; i < t->n; i++) {
        const vc_conf_opt *o = &t->opts[i];

        fprintf(out, "  --%-28s %-30s %s (default: %s)\n", o->name, o->env, o->help,
                o->type == VC_CONF_STR && !o->def[0] ? "none" : o->def);
    }
}
