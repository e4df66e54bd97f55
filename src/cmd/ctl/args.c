/*  args: one parser for every keelctl command line.
 *
 *  Each command declares its options in a table (ctl_option_t) beside its
 *  code; the parser, the help and the bash completion all come from those
 *  tables, so a command cannot accept an option its help does not list.
 *  Options may come anywhere on the line, before or after the command,
 *  global or the command's own: `keelctl status --json --port-offset N`
 *  means what it says.
 *
 *  Built on getopt_long rather than argp or hand-written loops: it is the
 *  GNU syntax operators already type (--opt=value and --opt value, -abc,
 *  unambiguous prefixes, `--` ending the options), it is in every libc
 *  keelctl targets, and in return-in-order mode (an optstring beginning
 *  with '-') it hands back words and options in their order whatever
 *  POSIXLY_CORRECT says.  argp would own the help text and has no notion
 *  of subcommands; loops per command were what let `--help` run `reload`.
 *
 *  Two passes, because which options exist depends on the command, and
 *  which word is the command depends on which options take an argument:
 *    1. with the union of every table, leniently: find the words (the
 *       command, the subcommand) and whether --help or --version was given;
 *    2. with the global table plus the chosen command's, strictly: every
 *       unknown option or missing argument is a usage error (exit 2).
 *  --help anywhere prints the help of the command it follows and runs
 *  nothing, whatever else the line holds.  Option names are unique across
 *  tables or mean the same (--output, --machine), so pass 1 reads every
 *  line as pass 2 will. */
#include "ctl.h"
#include "service.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#define MAX_OPTIONS 128

static const ctl_option_t global_options[] = {
    { "json", 'j', NULL, "print one JSON document on stdout, for scripts" },
    { "host", 'H', "HOST", "where the services listen (default 127.0.0.1)" },
    { "port-offset", 'p', "N", "the services' PORT_OFFSET (default: $PORT_OFFSET, the configuration, 0)" },
    { "config", 'c', "FILE", "read this Keel configuration (default: $KEEL_CONFIG)" },
    { "data-dir", 'd', "DIR", "the data directory; `user` commands then edit its files offline" },
    { "timeout", 't', "MS", "how long to wait for a service's answer (default: per command)" },
    { "token", 0, "TOKEN", "an administrator's token (default: $KEEL_TOKEN)" },
    { "user", 'u', "NAME", "log in as NAME, the password on stdin's first line" },
    { "help", 'h', NULL, "show the help (after a command: that command's) and do nothing else" },
    { "version", 'V', NULL, "show keelctl's version" },
    { NULL, 0, NULL, NULL },
};

typedef struct {
    struct option longs[MAX_OPTIONS + 1];
    const ctl_option_t *opt[MAX_OPTIONS];
    int n;
    char shorts[2 * MAX_OPTIONS + 3];
} table_t;

/* ---- the option tables ---------------------------------------------------- */

static void table_init(table_t *t)
{
    memset(t, 0, sizeof *t);
    strcpy(t->shorts, "-:");    /* words in order; ':' for a missing argument */
}

static void table_add(table_t *t, const ctl_option_t *options)
{
    for (const ctl_option_t *o = options; o && o->name; o++) {
        bool known = false;
        for (int i = 0; i < t->n; i++)
            known |= strcmp(t->opt[i]->name, o->name) == 0;
        if (known || t->n == MAX_OPTIONS)
            continue;
        t->opt[t->n] = o;
        t->longs[t->n] = (struct option){ o->name, o->arg ? required_argument : no_argument, NULL, 1000 + t->n };
        if (o->short_name && !strchr(t->shorts + 2, o->short_name)) {
            size_t len = strlen(t->shorts);
            t->shorts[len] = o->short_name;
            if (o->arg)
                t->shorts[len + 1] = ':';
        }
        t->n++;
    }
}

static void table_add_all(table_t *t, const ctl_command_t *const *commands)
{
    for (size_t i = 0; commands && commands[i]; i++) {
        table_add(t, commands[i]->options);
        table_add_all(t, commands[i]->subcommands);
    }
}

static const ctl_option_t *by_short(const table_t *t, int c)
{
    for (int i = 0; i < t->n; i++)
        if (t->opt[i]->short_name == c)
            return t->opt[i];
    return NULL;
}

/* ---- help ----------------------------------------------------------------- */

static void print_options(FILE *out, const ctl_option_t *options)
{
    for (const ctl_option_t *o = options; o && o->name; o++) {
        char left[64];
        snprintf(left, sizeof left, "%c%c%s--%s%s%s", o->short_name ? '-' : ' ',
                 o->short_name ? o->short_name : ' ', o->short_name ? ", " : "  ", o->name,
                 o->arg ? " " : "", o->arg ? o->arg : "");
        fprintf(out, "  %-28s %s\n", left, o->help);
    }
}

static void print_usage_line(FILE *out, const char *lead, const char *path, const ctl_command_t *c)
{
    fprintf(out, "%s keelctl %s%s%s%s\n", lead, path, c->options ? " [OPTIONS]" : "",
            *c->operands ? " " : "", c->operands);
}

/* `parent` is the command above a subcommand, or NULL. */
static void command_help(FILE *out, const ctl_command_t *parent, const ctl_command_t *c, bool full)
{
    char path[64];
    snprintf(path, sizeof path, "%s%s%s", parent ? parent->name : "", parent ? " " : "", c->name);
    const char *lead = "usage:";
    if (c->run) {
        print_usage_line(out, lead, path, c);
        lead = "      ";
    }
    for (size_t i = 0; c->subcommands && c->subcommands[i]; i++) {
        char sub[96];
        snprintf(sub, sizeof sub, "%s %s", path, c->subcommands[i]->name);
        print_usage_line(out, lead, sub, c->subcommands[i]);
        lead = "      ";
    }
    if (!full) {
        fprintf(out, "`keelctl %s --help` says more.\n", path);
        return;
    }
    fprintf(out, "\n%s\n", c->description ? c->description : c->summary);
    if (c->options) {
        fprintf(out, "\noptions:\n");
        print_options(out, c->options);
    }
    if (c->subcommands) {
        fprintf(out, "\ncommands (`keelctl %s COMMAND --help` for each):\n", path);
        for (size_t i = 0; c->subcommands[i]; i++)
            fprintf(out, "  %-10s %s\n", c->subcommands[i]->name, c->subcommands[i]->summary);
    }
    fprintf(out, "\nGlobal options (`keelctl --help`) may come anywhere on the line.\n");
}

static void global_help(FILE *out, const ctl_command_t *const *commands, bool full)
{
    fprintf(out, "usage: keelctl [OPTIONS] COMMAND [ARGS]\n");
    if (!full) {
        fprintf(out, "`keelctl --help` lists the commands and options.\n");
        return;
    }
    fprintf(out, "Keel's command-line client.  Options may come anywhere on the line;\n"
                 "`keelctl COMMAND --help` describes a command.\n\ncommands:\n");
    for (size_t i = 0; commands[i]; i++)
        fprintf(out, "  %-10s %s\n", commands[i]->name, commands[i]->summary);
    fprintf(out, "\noptions:\n");
    print_options(out, global_options);
    fprintf(out, "\nenvironment: KEEL_CONFIG, KEEL_DATA_DIR, PORT_OFFSET, KEEL_TOKEN, SECURE_ZMQ,\n"
                 "             ZMQ_CERTIFICATES_DIR\n"
                 "exit codes:  0 done (status, health: everything up); 1 a problem found or a\n"
                 "             request refused; 2 a usage error; 3 a service did not answer;\n"
                 "             4 an administrator's token was needed or refused\n");
}

/* ---- the passes ------------------------------------------------------------ */

typedef struct {
    char **words;
    int nwords;
    const ctl_option_t **found;
    const char **values;
    int nfound;
} scan_t;

/* One getopt_long pass over argv.  Strict: the first unknown option or
 * missing argument is printed and fails the pass. */
static int scan(int argc, char **argv, table_t *t, bool strict, scan_t *s)
{
    s->nwords = s->nfound = 0;
    optind = 0;                 /* glibc: start afresh */
    opterr = 0;
    int c, index;
    while ((c = getopt_long(argc, argv, t->shorts, t->longs, &index)) != -1) {
        if (c == 1) {
            s->words[s->nwords++] = optarg;
            continue;
        }
        if (c == '?' || c == ':') {
            if (!strict)
                continue;
            const char *what = argv[optind - 1];
            char shortopt[3] = { '-', (char)optopt, '\0' };
            if (optopt && !(what[0] == '-' && what[1] == '-'))
                what = shortopt;
            fprintf(stderr, "keelctl: %s %s\n", c == ':' ? "missing the argument of" : "unknown option", what);
            return -1;
        }
        const ctl_option_t *o = c >= 1000 ? t->opt[c - 1000] : by_short(t, c);
        s->found[s->nfound] = o;
        s->values[s->nfound++] = o->arg ? optarg : "";
    }
    while (optind < argc)       /* after `--` */
        s->words[s->nwords++] = argv[optind++];
    return 0;
}

static bool was_given(const scan_t *s, const char *name)
{
    for (int i = 0; i < s->nfound; i++)
        if (strcmp(s->found[i]->name, name) == 0)
            return true;
    return false;
}

static const ctl_command_t *find_command(const ctl_command_t *const *list, const char *name)
{
    for (size_t i = 0; list && list[i]; i++)
        if (strcmp(list[i]->name, name) == 0)
            return list[i];
    return NULL;
}

/* Global options into ctl, then the configuration: defaults, file,
 * environment, flags. */
static int apply_globals(ctl_t *ctl, const scan_t *s)
{
    const char *config_path = getenv("KEEL_CONFIG"), *offset = NULL, *data_dir = NULL;
    const char *token = getenv("KEEL_TOKEN");
    for (int i = 0; i < s->nfound; i++) {
        const char *name = s->found[i]->name, *v = s->values[i];
        if (!strcmp(name, "json"))
            ctl->json = true;
        else if (!strcmp(name, "host"))
            ctl->host = v;
        else if (!strcmp(name, "port-offset"))
            offset = v;
        else if (!strcmp(name, "config"))
            config_path = v;
        else if (!strcmp(name, "data-dir"))
            data_dir = v;
        else if (!strcmp(name, "token"))
            token = v;
        else if (!strcmp(name, "user"))
            ctl->user = v;
        else if (!strcmp(name, "timeout")) {
            char *end;
            errno = 0;
            long ms = strtol(v, &end, 10);
            if (errno || *end || end == v || ms < 1 || ms > 600000) {
                fprintf(stderr, "keelctl: --timeout takes milliseconds, 1 to 600000\n");
                return CTL_USAGE;
            }
            ctl->timeout_ms = (int)ms;
        }
    }
    ctl->token = token && *token ? token : NULL;
    ctl->data_dir = data_dir;
    char err[512];
    if ((config_path && *config_path && config_load_file(ctl->config, config_path, err, sizeof err) < 0)
        || config_apply_env(ctl->config, err, sizeof err) < 0
        || (offset && config_set(ctl->config, "port_offset", offset, err, sizeof err) < 0)
        || (data_dir && config_set(ctl->config, "data_dir", data_dir, err, sizeof err) < 0)) {
        fprintf(stderr, "keelctl: %s\n", err);
        return CTL_USAGE;
    }
    return -1;
}

/* The command's own options into args. */
static int collect(const scan_t *s, const ctl_command_t *c, ctl_args_t *args)
{
    args->ngiven = 0;
    for (int i = 0; i < s->nfound; i++) {
        bool own = false;
        for (const ctl_option_t *o = c->options; o && o->name; o++)
            own |= o == s->found[i];
        if (!own)
            continue;
        if (args->ngiven == CTL_MAX_GIVEN) {
            fprintf(stderr, "keelctl: too many options\n");
            return CTL_USAGE;
        }
        args->given[args->ngiven].name = s->found[i]->name;
        args->given[args->ngiven++].value = s->values[i];
    }
    return -1;
}

static int parse_scanned(ctl_t *ctl, int argc, char **argv, const ctl_command_t *const *commands,
                         const ctl_command_t **command, ctl_args_t *args, scan_t *s)
{
    table_t *t = calloc(1, sizeof *t);
    table_init(t);
    table_add(t, global_options);
    table_add_all(t, commands);
    scan(argc, argv, t, false, s);
    bool help = was_given(s, "help");
    if (was_given(s, "version")) {
        printf("keelctl %s\n", KEEL_VERSION);
        free(t);
        return CTL_OK;
    }
    const ctl_command_t *parent = NULL, *c = s->nwords ? find_command(commands, s->words[0]) : NULL;
    int rc = -1;
    if (!c) {
        if (s->nwords && !help)
            fprintf(stderr, "keelctl: unknown command '%s'\n", s->words[0]);
        global_help(help ? stdout : stderr, commands, help);
        rc = help ? CTL_OK : CTL_USAGE;
    } else {
        const ctl_command_t *sub = s->nwords > 1 ? find_command(c->subcommands, s->words[1]) : NULL;
        if (sub) {
            parent = c;
            c = sub;
        }
        if (help || !c->run) {
            if (!help)
                fprintf(stderr, s->nwords > 1 ? "keelctl %s: unknown command '%s'\n"
                                              : "keelctl %s: which command?\n", c->name,
                        s->nwords > 1 ? s->words[1] : "");
            command_help(help ? stdout : stderr, parent, c, help);
            rc = help ? CTL_OK : CTL_USAGE;
        }
    }
    if (rc < 0) {
        table_init(t);
        table_add(t, global_options);
        table_add(t, c->options);
        int used = parent ? 2 : 1;
        if (scan(argc, argv, t, true, s) < 0 || (rc = collect(s, c, args)) >= 0) {
            rc = CTL_USAGE;
        } else if (s->nwords - used < c->min_operands) {
            fprintf(stderr, "keelctl: %s%s%s: missing %s\n", parent ? parent->name : "", parent ? " " : "",
                    c->name, c->operands);
            rc = CTL_USAGE;
        } else if (c->max_operands >= 0 && s->nwords - used > c->max_operands) {
            fprintf(stderr, "keelctl: %s%s%s: unexpected argument '%s'\n", parent ? parent->name : "",
                    parent ? " " : "", c->name, s->words[used + c->max_operands]);
            rc = CTL_USAGE;
        } else {
            args->argc = s->nwords - used;
            args->argv = s->words + used;
            *command = c;
            rc = apply_globals(ctl, s);
        }
        if (rc == CTL_USAGE && s->nwords >= used)
            command_help(stderr, parent, c, false);
    }
    free(t);
    return rc;
}

int ctl_args_parse(ctl_t *ctl, int argc, char **argv, const ctl_command_t *const *commands,
                   const ctl_command_t **command, ctl_args_t *args)
{
    memset(args, 0, sizeof *args);
    args->words = calloc((size_t)argc + 1, sizeof *args->words);
    scan_t s = { args->words, 0, calloc((size_t)argc + 1, sizeof *s.found),
                 calloc((size_t)argc + 1, sizeof *s.values), 0 };
    int rc = parse_scanned(ctl, argc, argv, commands, command, args, &s);
    free(s.found);
    free(s.values);
    return rc;
}

void ctl_args_release(ctl_args_t *args)
{
    free(args->words);
    args->words = NULL;
}

const char *ctl_option(const ctl_args_t *args, const char *name)
{
    const char *value = NULL;
    for (int i = 0; i < args->ngiven; i++)
        if (strcmp(args->given[i].name, name) == 0)
            value = args->given[i].value;
    return value;
}

int ctl_option_long(const ctl_args_t *args, const char *name, long fallback, long min, long max,
                    long *out)
{
    const char *text = ctl_option(args, name);
    *out = fallback;
    if (!text)
        return 0;
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || *end || end == text || v < min || v > max) {
        fprintf(stderr, "keelctl: --%s takes a number from %ld to %ld\n", name, min, max);
        return -1;
    }
    *out = v;
    return 0;
}
