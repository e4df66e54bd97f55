/*  vram_policy: see vram_policy.h. */
#include "vram_policy.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *name;
    double key1, key2;
} ranked_t;

static int by_keys_asc(const void *a, const void *b)
{
    const ranked_t *x = a, *y = b;
    if (x->key1 != y->key1)
        return x->key1 < y->key1 ? -1 : 1;
    if (x->key2 != y->key2)
        return x->key2 < y->key2 ? -1 : 1;
    return strcmp(x->name, y->name);
}

static double number(json_t *entry, const char *key, double fallback)
{
    json_t *v = json_object_get(entry, key);
    return json_is_number(v) ? json_number_value(v) : fallback;
}

static bool on_device(json_t *entry, const char *device)
{
    if (!device)
        return true;
    const char *d = json_string_value(json_object_get(entry, "device"));
    return d && !strcmp(d, device);
}

static json_t *names(ranked_t *items, size_t n, size_t limit)
{
    json_t *out = json_array();
    for (size_t i = 0; i < n && i < limit; i++)
        json_array_append_new(out, json_string(items[i].name));
    return out;
}

json_t *vram_pick_critical(json_t *models, const char *device, const char *size_key)
{
    size_t n = 0;
    ranked_t *items = calloc(json_object_size(models) + 1, sizeof *items);
    const char *name;
    json_t *entry;
    json_object_foreach(models, name, entry)
        if (on_device(entry, device))
            items[n++] = (ranked_t){ name, -number(entry, size_key, 0), 0 };
    qsort(items, n, sizeof *items, by_keys_asc);
    json_t *out = names(items, n, 2);
    free(items);
    return out;
}

json_t *vram_idle(json_t *models, const char *device, double now, double idle_timeout)
{
    size_t n = 0;
    ranked_t *items = calloc(json_object_size(models) + 1, sizeof *items);
    const char *name;
    json_t *entry;
    json_object_foreach(models, name, entry) {
        double last = number(entry, "last_used", 0);
        if (on_device(entry, device) && now - last > idle_timeout)
            items[n++] = (ranked_t){ name, last, 0 };
    }
    qsort(items, n, sizeof *items, by_keys_asc);
    json_t *out = names(items, n, n);
    free(items);
    return out;
}

const char *vram_predict_queue(json_t *queue, json_t *loaded)
{
    static const char *const map[][2] = {
        { "asr", "whisper-large-v3" },
        { "chat", "gpt-3.5-turbo" },
        { "image_generation", "stable-diffusion-xl" },
    };
    size_t i;
    json_t *task;
    json_array_foreach(queue, i, task) {
        const char *type = json_string_value(json_object_get(task, "task_type"));
        for (size_t k = 0; type && k < sizeof map / sizeof map[0]; k++)
            if (!strcmp(type, map[k][0]) && !json_object_get(loaded, map[k][1]))
                return map[k][1];
    }
    return NULL;
}

const char *vram_predict_pattern(json_t *patterns, json_t *loaded, double now, double window)
{
    const char *name;
    json_t *times;
    json_object_foreach(patterns, name, times) {
        size_t i, recent = 0;
        double latest = 0;
        json_t *t;
        json_array_foreach(times, i, t) {
            double at = json_number_value(t);
            if (now - at < window) {
                recent++;
                if (at > latest)
                    latest = at;
            }
        }
        double since = now - latest;
        if (recent > 10 && (double)recent / 3600.0 > 0.1 && since > 300 && since < 1800
            && !json_object_get(loaded, name))
            return name;
    }
    return NULL;
}

long vram_batch_size(double free_mb, double per_sample)
{
    if (per_sample <= 0)
        return 1;
    double optimal = floor(free_mb * 0.8 / per_sample);
    return optimal < 1 ? 1 : (long)optimal;
}

double vram_fragmentation(double used_mb, double models_mb)
{
    if (used_mb <= 0)
        return 0.0;
    double loose = used_mb - models_mb;
    return loose > 0 ? loose / used_mb : 0.0;
}

double vram_models_mb(json_t *models, const char *device, const char *size_key)
{
    double sum = 0;
    const char *name;
    json_t *entry;
    json_object_foreach(models, name, entry)
        if (on_device(entry, device))
            sum += number(entry, size_key, 0);
    return sum;
}

/* low 0, medium 1, high 2; numbers as given; pinned models are skipped. */
static double priority_rank(json_t *entry)
{
    json_t *p = json_object_get(entry, "priority");
    if (json_is_number(p))
        return json_number_value(p);
    const char *s = json_string_value(p);
    if (s && !strcmp(s, "low"))
        return 0;
    if (s && !strcmp(s, "high"))
        return 2;
    return 1;
}

static bool pinned(json_t *entry)
{
    const char *p = json_string_value(json_object_get(entry, "priority"));
    return json_is_true(json_object_get(entry, "pinned")) || (p && !strcmp(p, "critical"));
}

json_t *vram_make_room(json_t *models, double need_mb, const char *size_key, double *freed_out)
{
    size_t n = 0;
    ranked_t *items = calloc(json_object_size(models) + 1, sizeof *items);
    const char *name;
    json_t *entry;
    json_object_foreach(models, name, entry)
        if (!pinned(entry))
            items[n++] = (ranked_t){ name, priority_rank(entry), number(entry, "last_used", 0) };
    qsort(items, n, sizeof *items, by_keys_asc);
    double freed = 0;
    size_t take = 0;
    while (take < n && freed < need_mb)
        freed += number(json_object_get(models, items[take++].name), size_key, 0);
    json_t *out = freed >= need_mb ? names(items, take, take) : json_array();
    *freed_out = freed >= need_mb ? freed : 0;
    free(items);
    return out;
}
