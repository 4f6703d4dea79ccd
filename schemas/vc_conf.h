/* vc_conf.h -- the option-table engine every service's config is built on.
 *
 * A service describes its config struct once, in a table of vc_conf_opt (name
 * of the flag, VC_* environment variable, type, offset in the struct, default
 * as text, range, help). Defaults, flags, environment variables and --help
 * all come from that table, through one setter, so they cannot disagree.
 * Not a contract between services, but shared code: it lives here so it is
 * written once. */
#ifndef VC_CONF_H
#define VC_CONF_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum {
    VC_CONF_STR,   /* char *, owned by the struct (vc_conf_free) */
    VC_CONF_INT,   /* int, within [min, max] */
    VC_CONF_I64,   /* int64_t, within [min, max] */
    VC_CONF_BOOL,  /* int 0/1: 1 true yes on / 0 false no off "" ; a bare --flag means 1 */
} vc_conf_type;

typedef struct {
    const char *name;   /* flag without "--" */
    const char *env;    /* environment variable */
    vc_conf_type type;
    size_t offset;      /* of the field in the config struct */
    const char *def;    /* default, as text */
    int64_t min, max;   /* VC_CONF_INT / VC_CONF_I64 range */
    const char *help;
} vc_conf_opt;

typedef struct {
    const vc_conf_opt *opts;
    size_t n;
} vc_conf_table;

/* Zero cfg's fields of the table and apply every default. */
void vc_conf_init(const vc_conf_table *t, void *cfg);
/* Free the strings the table's fields own; accepts NULL. */
void vc_conf_free(const vc_conf_table *t, void *cfg);

/* Set option name (the flag without dashes) from text. 0, or -1 with errstr
 * naming the flag and its variable for an unknown name or a bad value. */
int vc_conf_set(const vc_conf_table *t, void *cfg, const char *name, const char *value, char *errstr,
                size_t errstr_size);
/* Apply every variable of the table that the environment defines. */
int vc_conf_load_env(const vc_conf_table *t, void *cfg, char *errstr, size_t errstr_size);
/* Apply flags argv[first..argc): "--name value", "--name=value", a bare
 * boolean "--name". Sets *help on --help/-h. With stop_at_positional, the first
 * argument that is not a flag ends the scan and its index is returned (argc if
 * none); without, such an argument is an error. -1 with errstr on errors. */
int vc_conf_load_args(const vc_conf_table *t, void *cfg, int argc, char **argv, int first,
                      int stop_at_positional, int *help, char *errstr, size_t errstr_size);
/* One line per option: flag, variable, help, default. */
void vc_conf_usage(const vc_conf_table *t, FILE *out);

#endif
