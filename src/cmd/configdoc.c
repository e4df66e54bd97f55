/*  configdoc: writes the documentation of every configuration key from the
 *  key table (src/common/configkeys.c), so that the manual page, the example
 *  file the package installs and docs/configuration.md cannot say anything
 *  the loader does not do.  `make config-docs` writes them;
 *  tests/integration/test_config_table.py fails when a committed copy
 *  differs from what this prints.
 *
 *      configdoc man        man/keel.yaml.5
 *      configdoc yaml       deploy/keel.yaml (installed as /etc/keel/keel.yaml)
 *      configdoc markdown   the key table of docs/configuration.md
 *      configdoc json       the table itself, for the tests
 *
 *  Not installed: a build tool. */
#include "configkeys.h"
#include "service.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The values the packaged /etc/keel/keel.yaml sets: the directories its
 * systemd units create (StateDirectory, LogsDirectory) and the one
 * keelctl certs generate writes to. */
static const struct { const char *key, *value; } packaged[] = {
    { "data_dir", "/var/lib/keel" },
    { "log_file", "/var/log/keel/keel.log" },
    { "certificates_dir", "/etc/keel/certificates" },
};

static const configkey_t *keys;
static size_t nkeys;

static const char *leaf(const char *name)
{
    const char *dot = strrchr(name, '.');
    return dot ? dot + 1 : name;
}

static int depth(const char *name)
{
    int d = 0;
    for (const char *p = name; *p; p++)
        d += *p == '.';
    return d;
}

static bool is_item_key(const configkey_t *k)
{
    return strstr(k->name, "[]") != NULL;
}

/* A mapping that only groups other keys ("core", "core.registry"). */
static bool is_group(const configkey_t *k)
{
    return k->type == CK_MAPPING && !strchr(k->name, '*') && !is_item_key(k)
           && configkeys_has_children(k->name);
}

/* "integer, 1..65535, default 300"; choices as "a | b | c", which wrap. */
static void describe(const configkey_t *k, char *buf, size_t len)
{
    int n = snprintf(buf, len, "%s", configkeys_type_name(k->type));
    if (k->range && (size_t)n + 2 < len) {
        n += snprintf(buf + n, len - (size_t)n, ", ");
        for (const char *p = k->range; *p && (size_t)n + 4 < len; p++)
            n += *p == '|' ? snprintf(buf + n, len - (size_t)n, " | ")
                           : snprintf(buf + n, len - (size_t)n, "%c", *p);
    }
    if (k->def && (size_t)n < len)
        snprintf(buf + n, len - (size_t)n, ", default %s",
                 *k->def ? k->def : "\"\" (empty)");
}

/* ---- YAML -------------------------------------------------------------- */

/* Whether a string needs quotes to read back as the same string. */
static bool needs_quotes(const char *s)
{
    if (!*s || strpbrk(s, ":#{}[],&*!|>'\"%@`") || s[0] == ' ' || s[0] == '-' || s[0] == '~')
        return true;
    static const char *words[] = { "true", "false", "yes", "no", "on", "off", "null" };
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (!strcasecmp(s, words[i]))
            return true;
    char *end;
    strtod(s, &end);
    return *end == '\0';
}

static void yaml_value(const configkey_t *k, const char *value, FILE *out)
{
    if (k->type == CK_STRING && needs_quotes(value))
        fprintf(out, "\"%s\"", value);
    else
        fputs(value, out);
}

static const char *packaged_value(const char *name)
{
    for (size_t i = 0; i < sizeof packaged / sizeof packaged[0]; i++)
        if (!strcmp(packaged[i].key, name))
            return packaged[i].value;
    return NULL;
}

/* Wraps `text` into comment lines at `indent`, about 92 columns wide;
 * lines after the first are indented `hang` more. */
static void yaml_comment_hanging(int indent, int hang, const char *text, FILE *out)
{
    const char *p = text;
    bool first = true;
    while (*p) {
        int lead = first ? 0 : hang;
        int width = 92 - indent - 2 - lead;
        size_t len = strlen(p);
        size_t cut = len;
        if ((int)len > width) {
            cut = (size_t)width;
            while (cut > 0 && p[cut] != ' ')
                cut--;
            if (cut == 0)
                cut = (size_t)width;
        }
        fprintf(out, "%*s# %*s%.*s\n", indent, "", lead, "", (int)cut, p);
        p += cut;
        while (*p == ' ')
            p++;
        first = false;
    }
}

static void yaml_comment(int indent, const char *text, FILE *out)
{
    yaml_comment_hanging(indent, 0, text, out);
}

/* The name a "*" entry is shown with: its first choice, else "name". */
static void example_name(const configkey_t *k, char *buf, size_t len)
{
    if (k->range)
        snprintf(buf, len, "%.*s", (int)strcspn(k->range, "|"), k->range);
    else
        snprintf(buf, len, "name");
}

static void print_yaml(FILE *out)
{
    fputs("# Keel's configuration (keel.yaml(5)), read by every keeld and keelctl given\n"
          "# --config.  Every key is optional: each one is shown below with its default,\n"
          "# commented out; remove the '#' to change it.  Environment variables and keeld's\n"
          "# flags override this file.  keeld refuses an unknown key or a value out of range,\n"
          "# naming the file, the line and the dotted key; check the file with\n"
          "#     keeld all --check --config /etc/keel/keel.yaml\n"
          "# and apply it with `systemctl reload keel-all` (or keel@SERVICE): SIGHUP.\n"
          "#\n"
          "# Generated from the key table of the source (src/common/configkeys.c) by\n"
          "# `make config-docs`.\n", out);
    for (size_t i = 0; i < nkeys; i++) {
        const configkey_t *k = &keys[i];
        if (is_item_key(k))
            continue;
        int indent = 2 * depth(k->name);
        char about[1024];
        describe(k, about, sizeof about);
        fputc('\n', out);
        if (!strcmp(leaf(k->name), "*")) {
            /* modules.*: shown once, under the name of its first choice. */
            char example[64];
            example_name(k, example, sizeof example);
            yaml_comment(indent, k->meaning, out);
            yaml_comment(indent, about, out);
            if (k->type == CK_MAPPING)
                fprintf(out, "%*s#%s:\n", indent, "", example);
            else
                fprintf(out, "%*s#%s: \"\"\n", indent, "", example);
            continue;
        }
        yaml_comment(indent, k->meaning, out);
        if (is_group(k)) {
            fprintf(out, "%*s%s:\n", indent, "", leaf(k->name));
            continue;
        }
        yaml_comment(indent, about, out);
        if (k->type == CK_LIST) {
            char items[160];
            snprintf(items, sizeof items, "%s[]", k->name);
            yaml_comment(indent, "Each item is a mapping of:", out);
            for (size_t j = 0; j < nkeys; j++) {
                if (strncmp(keys[j].name, items, strlen(items)) != 0
                    || keys[j].name[strlen(items)] != '.' || strchr(keys[j].name + strlen(items) + 1, '.'))
                    continue;
                char sub[256], text[1024];
                describe(&keys[j], sub, sizeof sub);
                snprintf(text, sizeof text, "  %s (%s): %s", leaf(keys[j].name), sub, keys[j].meaning);
                yaml_comment_hanging(indent, 4, text, out);
            }
        }
        const char *mine = packaged_value(k->name);
        if (mine) {
            fprintf(out, "%*s%s: ", indent, "", leaf(k->name));
            yaml_value(k, mine, out);
            fputc('\n', out);
        } else if (k->def) {
            fprintf(out, "%*s#%s: ", indent, "", leaf(k->name));
            yaml_value(k, k->def, out);
            fputc('\n', out);
        } else {
            fprintf(out, "%*s#%s:\n", indent, "", leaf(k->name));
        }
    }
}

/* ---- manual page -------------------------------------------------------- */

/* troff text within a line: backslashes escaped, option dashes as minus signs. */
static void roff_inline(const char *text, FILE *out)
{
    for (const char *p = text; *p; p++) {
        if (*p == '\\')
            fputs("\\e", out);
        else if (*p == '-' && (p == text || p[-1] == ' ' || p[-1] == '-' || p[1] == '-'))
            fputs("\\-", out);
        else
            fputc(*p, out);
    }
}

/* The same at the start of a line, which must not read as a request. */
static void roff(const char *text, FILE *out)
{
    if (*text == '.' || *text == '\'')
        fputs("\\&", out);
    roff_inline(text, out);
}

static void print_man(FILE *out)
{
    fprintf(out, ".\\\" Generated from src/common/configkeys.c by `make config-docs`: do not edit.\n"
                 ".TH KEEL.YAML 5 \"\" \"Keel %s\" \"File Formats\"\n", KEEL_VERSION);
    fputs(".SH NAME\n"
          "keel.yaml \\- configuration of the Keel services\n"
          ".SH SYNOPSIS\n"
          ".B /etc/keel/keel.yaml\n"
          ".SH DESCRIPTION\n"
          "Every\n.BR keeld (8)\nand\n.BR keelctl (1)\n"
          "reads its configuration from the built\\-in defaults, then the YAML file named by\n"
          ".B \\-\\-config\n"
          "or\n.BR KEEL_CONFIG ,\n"
          "then the environment, then its flags: each layer overrides the one before.\n"
          "Every key is optional.\n"
          ".PP\n"
          "Mappings merge key by key; a list or a scalar replaces the default;\n"
          ".B null\n"
          "(or a key with no value) puts a key back to its default.\n"
          "An unknown key at any depth, a value of the wrong type and a value out of its\n"
          "range are refused with the file, the line and the dotted key, for example\n"
          ".PP\n"
          ".RS\n.nf\n"
          "keel.yaml:2: unknown key 'security.lockout.windw_s' (did you mean 'window_s'?)\n"
          ".fi\n.RE\n"
          ".PP\n"
          "and keeld does not start; on\n.B SIGHUP\n"
          "a refused file leaves the running configuration as it was.\n"
          "Check a file with\n"
          ".BR \"keeld all \\-\\-check \\-\\-config \" FILE .\n"
          ".PP\n"
          "Below, each key is given with its type, its allowed range and its default.\n"
          "A key with no default is unset unless written; its description says what\n"
          "the service does then.\n"
          "Keys named\n.I name\\fB[]\\fP.key\n"
          "are the keys of each item of a list;\n"
          ".I <name>\n"
          "stands for a mapping key of the given choices.\n"
          "A\n.I port\n"
          "is moved by\n.BR port_offset ,\n"
          "and must stay at most 65535 once moved.\n", out);
    for (size_t i = 0; i < nkeys; i++) {
        const configkey_t *k = &keys[i];
        if (depth(k->name) == 0 && is_group(k)) {
            fputs(".SS ", out);
            roff(k->name, out);
            fputs("\n", out);
            roff(k->meaning, out);
            fputc('\n', out);
            continue;
        }
        if (i == 0)
            fputs(".SS Every service\n", out);
        if (is_group(k)) {
            fputs(".TP\n.B ", out);
            roff(k->name, out);
            fputs("\n", out);
            roff(k->meaning, out);
            fputc('\n', out);
            continue;
        }
        char about[1024];
        describe(k, about, sizeof about);
        fputs(".TP\n.B ", out);
        char name[200];
        snprintf(name, sizeof name, "%s", k->name);
        char *star = strstr(name, "*");
        if (star) {
            *star = '\0';
            roff(name, out);
            fputs("\\fI<name>\\fB", out);
            roff_inline(star + 1, out);
        } else {
            roff(name, out);
        }
        fputs("\n(", out);
        roff(about, out);
        fputs(")\n", out);
        roff(k->meaning, out);
        fputc('\n', out);
    }
    fputs(".SH ENVIRONMENT\n"
          ".TP\n.B KEEL_CONFIG\nthe file, when no \\-\\-config is given\n"
          ".TP\n.B PORT_OFFSET\nport_offset\n"
          ".TP\n.B KEEL_DATA_DIR\ndata_dir\n"
          ".TP\n.B KEEL_BIND\nbind\n"
          ".TP\n.B SECURE_ZMQ\nsecure_zmq (1 or 0)\n"
          ".TP\n.B KEEL_LOG_LEVEL\nlog_level\n"
          ".SH FILES\n"
          ".TP\n.I /etc/keel/keel.yaml\n"
          "the configuration the packaged units give keeld, every key in it shown with its default\n"
          ".SH SEE ALSO\n"
          ".BR keeld (8),\n"
          ".BR keelctl (1)\n", out);
}

/* ---- markdown ----------------------------------------------------------- */

static void md(const char *text, FILE *out)
{
    for (const char *p = text; *p; p++) {
        if (*p == '|' || *p == '<')
            fputc('\\', out);
        fputc(*p, out);
    }
}

static void print_markdown(FILE *out)
{
    fputs("| key | type | range | default | meaning |\n"
          "|---|---|---|---|---|\n", out);
    for (size_t i = 0; i < nkeys; i++) {
        const configkey_t *k = &keys[i];
        if (is_group(k))
            continue;
        fputs("| `", out);
        fputs(k->name, out);
        fprintf(out, "` | %s | ", configkeys_type_name(k->type));
        if (k->range) {
            fputc('`', out);
            for (const char *p = k->range; *p; p++) {
                if (*p == '|')
                    fputc('\\', out);      /* a bare | would end the table cell */
                fputc(*p, out);
            }
            fputc('`', out);
        }
        fputs(" | ", out);
        if (k->def) {
            fputc('`', out);
            fputs(*k->def ? k->def : "\"\"", out);
            fputc('`', out);
        }
        fputs(" | ", out);
        md(k->meaning, out);
        fputs(" |\n", out);
    }
}

/* ---- JSON ---------------------------------------------------------------- */

static void print_json(FILE *out)
{
    json_t *all = json_array();
    for (size_t i = 0; i < nkeys; i++) {
        const configkey_t *k = &keys[i];
        json_array_append_new(all, json_pack("{s:s, s:s, s:o, s:s?, s:s}", "name", k->name,
                                             "type", configkeys_type_name(k->type),
                                             "default", configkeys_default(k) ?: json_null(),
                                             "range", k->range, "meaning", k->meaning));
    }
    json_dumpf(all, out, JSON_INDENT(1));
    fputc('\n', out);
    json_decref(all);
}

int main(int argc, char **argv)
{
    keys = configkeys_all(&nkeys);
    if (argc == 2 && !strcmp(argv[1], "man"))
        print_man(stdout);
    else if (argc == 2 && !strcmp(argv[1], "yaml"))
        print_yaml(stdout);
    else if (argc == 2 && !strcmp(argv[1], "markdown"))
        print_markdown(stdout);
    else if (argc == 2 && !strcmp(argv[1], "json"))
        print_json(stdout);
    else {
        fprintf(stderr, "usage: configdoc man|yaml|markdown|json\n");
        return 2;
    }
    return 0;
}
