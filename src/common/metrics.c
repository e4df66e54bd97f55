/*  metrics: see metrics.h.  Families are kept in declaration order (the
 *  order of /metrics), each with its series in first-seen order; a single
 *  open-addressing hash over "family\0labels" finds a series in O(1), so a
 *  request's two updates cost two hash lookups under one mutex.
 *  Collectors are called before the lock is taken, so they may update
 *  metrics themselves. */
#include "metrics.h"
#include "log.h"

#include <ctype.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_BUCKETS 32

typedef struct series_t {
    struct family_t *family;
    char *labels;
    double value;                   /* counter / gauge; histogram sum */
    unsigned long long count;       /* histogram observations */
    unsigned long long *buckets;    /* per bucket, not cumulative */
    struct series_t *next;          /* family order */
} series_t;

typedef struct family_t {
    char *name, *help;
    metric_type_t type;
    double bounds[MAX_BUCKETS];
    size_t nbounds;
    series_t *first, *last;
    struct family_t *next;
} family_t;

typedef struct {
    metrics_collector_fn *fn;
    void *arg;
} collector_t;

struct metrics_t {
    pthread_mutex_t lock;
    family_t *first, *last;
    series_t **slots;               /* hash of series */
    size_t nslots, nseries;
    collector_t collectors[16];
    size_t ncollectors;
};

static const double latency_bounds[] = {
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
    0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10
};

metrics_t *metrics_new(void)
{
    metrics_t *self = calloc(1, sizeof *self);
    pthread_mutex_init(&self->lock, NULL);
    self->nslots = 256;
    self->slots = calloc(self->nslots, sizeof *self->slots);
    return self;
}

static void free_family(family_t *f)
{
    series_t *s = f->first;
    while (s) {
        series_t *next = s->next;
        free(s->labels);
        free(s->buckets);
        free(s);
        s = next;
    }
    free(f->name);
    free(f->help);
    free(f);
}

void metrics_destroy(metrics_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    metrics_t *self = *self_p;
    family_t *f = self->first;
    while (f) {
        family_t *next = f->next;
        free_family(f);
        f = next;
    }
    free(self->slots);
    pthread_mutex_destroy(&self->lock);
    free(self);
    *self_p = NULL;
}

static bool valid_name(const char *name)
{
    if (!name || !(isalpha((unsigned char)*name) || *name == '_' || *name == ':'))
        return false;
    for (const char *p = name; *p; p++)
        if (!(isalnum((unsigned char)*p) || *p == '_' || *p == ':'))
            return false;
    return true;
}

static family_t *find_family(metrics_t *self, const char *name)
{
    for (family_t *f = self->first; f; f = f->next)
        if (strcmp(f->name, name) == 0)
            return f;
    return NULL;
}

int metrics_declare(metrics_t *self, const char *name, const char *help,
                    metric_type_t type, const double *buckets, size_t nbuckets)
{
    if (!valid_name(name) || nbuckets > MAX_BUCKETS)
        return -1;
    pthread_mutex_lock(&self->lock);
    family_t *f = find_family(self, name);
    int rc = 0;
    if (f) {
        rc = f->type == type ? 0 : -1;
    } else {
        f = calloc(1, sizeof *f);
        f->name = strdup(name);
        f->help = strdup(help ? help : name);
        f->type = type;
        if (type == METRIC_HISTOGRAM) {
            if (!buckets) {
                buckets = latency_bounds;
                nbuckets = sizeof latency_bounds / sizeof latency_bounds[0];
            }
            memcpy(f->bounds, buckets, nbuckets * sizeof *buckets);
            f->nbounds = nbuckets;
        }
        if (self->last)
            self->last->next = f;
        else
            self->first = f;
        self->last = f;
    }
    pthread_mutex_unlock(&self->lock);
    return rc;
}

char *metrics_labels(char *buf, size_t len, ...)
{
    va_list ap;
    va_start(ap, len);
    size_t n = 0;
    buf[0] = '\0';
    const char *key;
    while ((key = va_arg(ap, const char *)) != NULL) {
        const char *value = va_arg(ap, const char *);
        if (!value)
            value = "";
        if (n && n + 1 < len)
            buf[n++] = ',';
        n += snprintf(buf + n, n < len ? len - n : 0, "%s=\"", key);
        for (const char *p = value; *p && n + 3 < len; p++) {
            if (*p == '\\' || *p == '"') {
                buf[n++] = '\\';
                buf[n++] = *p;
            } else if (*p == '\n') {
                buf[n++] = '\\';
                buf[n++] = 'n';
            } else {
                buf[n++] = *p;
            }
        }
        if (n + 1 < len)
            buf[n++] = '"';
        buf[n < len ? n : len - 1] = '\0';
    }
    va_end(ap);
    return buf;
}

static size_t hash_key(const char *name, const char *labels)
{
    size_t h = 1469598103934665603ULL;
    for (const char *p = name; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    h = (h ^ 0xff) * 1099511628211ULL;
    for (const char *p = labels; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    return h;
}

static void rehash(metrics_t *self)
{
    size_t nslots = self->nslots * 2;
    series_t **slots = calloc(nslots, sizeof *slots);
    for (size_t i = 0; i < self->nslots; i++) {
        series_t *s = self->slots[i];
        if (!s)
            continue;
        size_t j = hash_key(s->family->name, s->labels) & (nslots - 1);
        while (slots[j])
            j = (j + 1) & (nslots - 1);
        slots[j] = s;
    }
    free(self->slots);
    self->slots = slots;
    self->nslots = nslots;
}

/* Finds or creates a series; NULL when the family is undeclared. */
static series_t *lookup(metrics_t *self, const char *name, const char *labels, bool create)
{
    if (!labels)
        labels = "";
    size_t j = hash_key(name, labels) & (self->nslots - 1);
    for (series_t *s; (s = self->slots[j]) != NULL; j = (j + 1) & (self->nslots - 1))
        if (strcmp(s->labels, labels) == 0 && strcmp(s->family->name, name) == 0)
            return s;
    if (!create)
        return NULL;
    family_t *f = find_family(self, name);
    if (!f) {
        log_error("metrics", "series of undeclared family %s", name);
        return NULL;
    }
    series_t *s = calloc(1, sizeof *s);
    s->family = f;
    s->labels = strdup(labels);
    if (f->type == METRIC_HISTOGRAM)
        s->buckets = calloc(f->nbounds, sizeof *s->buckets);
    if (f->last)
        f->last->next = s;
    else
        f->first = s;
    f->last = s;
    self->slots[j] = s;
    if (++self->nseries * 2 > self->nslots)
        rehash(self);
    return s;
}

void metrics_add(metrics_t *self, const char *name, const char *labels, double delta)
{
    pthread_mutex_lock(&self->lock);
    series_t *s = lookup(self, name, labels, true);
    if (s)
        s->value += delta;
    pthread_mutex_unlock(&self->lock);
}

metrics_series_t *metrics_series(metrics_t *self, const char *name, const char *labels)
{
    pthread_mutex_lock(&self->lock);
    series_t *s = lookup(self, name, labels, true);
    pthread_mutex_unlock(&self->lock);
    return s;
}

void metrics_series_add(metrics_t *self, metrics_series_t *series, double delta)
{
    if (!series)
        return;
    pthread_mutex_lock(&self->lock);
    series->value += delta;
    pthread_mutex_unlock(&self->lock);
}

static void observe(series_t *s, double value)
{
    if (!s || !s->buckets)
        return;
    s->value += value;
    s->count++;
    for (size_t i = 0; i < s->family->nbounds; i++)
        if (value <= s->family->bounds[i]) {
            s->buckets[i]++;
            break;
        }
}

void metrics_series_count(metrics_t *self, metrics_series_t *counter, metrics_series_t *histogram,
                          double value)
{
    pthread_mutex_lock(&self->lock);
    if (counter)
        counter->value += 1;
    observe(histogram, value);
    pthread_mutex_unlock(&self->lock);
}

void metrics_set(metrics_t *self, const char *name, const char *labels, double value)
{
    pthread_mutex_lock(&self->lock);
    series_t *s = lookup(self, name, labels, true);
    if (s)
        s->value = value;
    pthread_mutex_unlock(&self->lock);
}

void metrics_observe(metrics_t *self, const char *name, const char *labels, double value)
{
    pthread_mutex_lock(&self->lock);
    observe(lookup(self, name, labels, true), value);
    pthread_mutex_unlock(&self->lock);
}

double metrics_value(metrics_t *self, const char *name, const char *labels)
{
    pthread_mutex_lock(&self->lock);
    series_t *s = lookup(self, name, labels, false);
    double v = s ? (s->buckets ? (double)s->count : s->value) : 0;
    pthread_mutex_unlock(&self->lock);
    return v;
}

double metrics_sum(metrics_t *self, const char *name, const char *filter)
{
    double sum = 0;
    pthread_mutex_lock(&self->lock);
    family_t *f = find_family(self, name);
    for (series_t *s = f ? f->first : NULL; s; s = s->next)
        if (!filter || strstr(s->labels, filter))
            sum += s->buckets ? (double)s->count : s->value;
    pthread_mutex_unlock(&self->lock);
    return sum;
}

void metrics_reset(metrics_t *self, const char *name)
{
    pthread_mutex_lock(&self->lock);
    family_t *f = find_family(self, name);
    if (f && f->type == METRIC_GAUGE)
        for (series_t *s = f->first; s; s = s->next)
            s->value = NAN;     /* NaN series are skipped at render */
    pthread_mutex_unlock(&self->lock);
}

void metrics_add_collector(metrics_t *self, metrics_collector_fn *fn, void *arg)
{
    pthread_mutex_lock(&self->lock);
    if (self->ncollectors < sizeof self->collectors / sizeof self->collectors[0])
        self->collectors[self->ncollectors++] = (collector_t){ fn, arg };
    pthread_mutex_unlock(&self->lock);
}

static void put_number(FILE *out, double v)
{
    if (isinf(v))
        fputs(v > 0 ? "+Inf" : "-Inf", out);
    else if (v == floor(v) && fabs(v) < 1e15)
        fprintf(out, "%.0f", v);
    else
        fprintf(out, "%.17g", v);
}

static void put_help(FILE *out, const char *help)
{
    for (const char *p = help; *p; p++) {
        if (*p == '\\')
            fputs("\\\\", out);
        else if (*p == '\n')
            fputs("\\n", out);
        else
            fputc(*p, out);
    }
}

static void render_histogram(FILE *out, family_t *f, series_t *s)
{
    const char *sep = *s->labels ? "," : "";
    unsigned long long cumulative = 0;
    for (size_t i = 0; i < f->nbounds; i++) {
        cumulative += s->buckets[i];
        fprintf(out, "%s_bucket{%s%sle=\"%g\"} %llu\n", f->name, s->labels, sep,
                f->bounds[i], cumulative);
    }
    fprintf(out, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", f->name, s->labels, sep, s->count);
    fprintf(out, "%s_sum%s%s%s ", f->name, *s->labels ? "{" : "", s->labels, *s->labels ? "}" : "");
    put_number(out, s->value);
    fprintf(out, "\n%s_count%s%s%s %llu\n", f->name, *s->labels ? "{" : "", s->labels,
            *s->labels ? "}" : "", s->count);
}

char *metrics_render(metrics_t *self, size_t *len_out)
{
    pthread_mutex_lock(&self->lock);
    size_t ncollectors = self->ncollectors;
    collector_t collectors[16];
    memcpy(collectors, self->collectors, sizeof collectors);
    pthread_mutex_unlock(&self->lock);
    for (size_t i = 0; i < ncollectors; i++)
        collectors[i].fn(self, collectors[i].arg);

    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    static const char *type_names[] = { "counter", "gauge", "histogram" };
    pthread_mutex_lock(&self->lock);
    for (family_t *f = self->first; f; f = f->next) {
        fprintf(out, "# HELP %s ", f->name);
        put_help(out, f->help);
        fprintf(out, "\n# TYPE %s %s\n", f->name, type_names[f->type]);
        for (series_t *s = f->first; s; s = s->next) {
            if (f->type == METRIC_HISTOGRAM) {
                render_histogram(out, f, s);
                continue;
            }
            if (isnan(s->value))
                continue;
            if (*s->labels)
                fprintf(out, "%s{%s} ", f->name, s->labels);
            else
                fprintf(out, "%s ", f->name);
            put_number(out, s->value);
            fputc('\n', out);
        }
    }
    pthread_mutex_unlock(&self->lock);
    fclose(out);
    if (len_out)
        *len_out = len;
    return text;
}
