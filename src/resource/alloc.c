/*  alloc: see alloc.h. */
#include "alloc.h"
#include "clock.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct allocs_t {
    alloc_t **buckets;
    size_t nbuckets, count;
    double held_cpu, held_memory;
    double held_vram[STATS_MAX_GPUS];
    double earliest;            /* no lease ends before this (0: none held) */
};

alloc_kind_t alloc_kind(const char *type)
{
    if (!type)
        return ALLOC_KIND_OTHER;
    if (!strcasecmp(type, "cpu") || !strcasecmp(type, "cpu_cores"))
        return ALLOC_KIND_CPU;
    if (!strcasecmp(type, "memory") || !strcasecmp(type, "ram"))
        return ALLOC_KIND_MEMORY;
    if (!strcasecmp(type, "gpu") || !strcasecmp(type, "vram") || !strcasecmp(type, "gpu_memory"))
        return ALLOC_KIND_VRAM;
    return ALLOC_KIND_OTHER;
}

alloc_t *alloc_new(const char *id)
{
    alloc_t *alloc = calloc(1, sizeof *alloc);
    alloc->id = strdup(id);
    alloc->device = -1;
    return alloc;
}

void alloc_free(alloc_t *alloc)
{
    if (!alloc)
        return;
    free(alloc->id);
    free(alloc->owner);
    json_decref(alloc->type);
    json_decref(alloc->amount);
    free(alloc);
}

allocs_t *allocs_new(void)
{
    allocs_t *self = calloc(1, sizeof *self);
    self->nbuckets = 64;
    self->buckets = calloc(self->nbuckets, sizeof *self->buckets);
    return self;
}

void allocs_destroy(allocs_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    allocs_t *self = *self_p;
    for (size_t i = 0; i < self->nbuckets; i++)
        for (alloc_t *a = self->buckets[i], *next; a; a = next) {
            next = a->next;
            alloc_free(a);
        }
    free(self->buckets);
    free(self);
    *self_p = NULL;
}

size_t allocs_count(allocs_t *self)
{
    return self->count;
}

static uint64_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static void grow(allocs_t *self)
{
    size_t n = self->nbuckets * 2;
    alloc_t **buckets = calloc(n, sizeof *buckets);
    for (size_t i = 0; i < self->nbuckets; i++)
        for (alloc_t *a = self->buckets[i], *next; a; a = next) {
            next = a->next;
            size_t b = hash(a->id) & (n - 1);
            a->next = buckets[b];
            buckets[b] = a;
        }
    free(self->buckets);
    self->buckets = buckets;
    self->nbuckets = n;
}

alloc_t *allocs_find(allocs_t *self, const char *id)
{
    for (alloc_t *a = self->buckets[hash(id) & (self->nbuckets - 1)]; a; a = a->next)
        if (!strcmp(a->id, id))
            return a;
    return NULL;
}

static void account(allocs_t *self, alloc_t *a, double sign)
{
    if (a->kind == ALLOC_KIND_CPU)
        self->held_cpu += sign * a->quantity;
    else if (a->kind == ALLOC_KIND_MEMORY)
        self->held_memory += sign * a->quantity;
    else if (a->kind == ALLOC_KIND_VRAM && a->device >= 0 && a->device < STATS_MAX_GPUS)
        self->held_vram[a->device] += sign * a->quantity;
}

void allocs_add(allocs_t *self, alloc_t *alloc)
{
    if (self->count + 1 > self->nbuckets)
        grow(self);
    size_t b = hash(alloc->id) & (self->nbuckets - 1);
    alloc->next = self->buckets[b];
    self->buckets[b] = alloc;
    self->count++;
    account(self, alloc, 1.0);
    if (alloc->expires_mono > 0 && (self->earliest == 0 || alloc->expires_mono < self->earliest))
        self->earliest = alloc->expires_mono;
}

alloc_t *allocs_remove(allocs_t *self, const char *id)
{
    alloc_t **link = &self->buckets[hash(id) & (self->nbuckets - 1)];
    for (; *link; link = &(*link)->next)
        if (!strcmp((*link)->id, id)) {
            alloc_t *a = *link;
            *link = a->next;
            a->next = NULL;
            self->count--;
            account(self, a, -1.0);
            return a;
        }
    return NULL;
}

double allocs_held(allocs_t *self, alloc_kind_t kind, int device)
{
    if (kind == ALLOC_KIND_CPU)
        return self->held_cpu > 0 ? self->held_cpu : 0.0;
    if (kind == ALLOC_KIND_MEMORY)
        return self->held_memory > 0 ? self->held_memory : 0.0;
    if (kind == ALLOC_KIND_VRAM && device >= 0 && device < STATS_MAX_GPUS)
        return self->held_vram[device] > 0 ? self->held_vram[device] : 0.0;
    return 0.0;
}

/* Removes every entry `drop` selects; their ids go to `released`. */
static size_t sweep(allocs_t *self, bool (*drop)(alloc_t *, const void *),
                    const void *arg, json_t *released)
{
    size_t n = 0;
    for (size_t i = 0; i < self->nbuckets; i++) {
        alloc_t **link = &self->buckets[i];
        while (*link) {
            alloc_t *a = *link;
            if (!drop(a, arg)) {
                link = &a->next;
                continue;
            }
            *link = a->next;
            self->count--;
            account(self, a, -1.0);
            if (released)
                json_array_append_new(released, json_string(a->id));
            alloc_free(a);
            n++;
        }
    }
    return n;
}

static bool lease_over(alloc_t *a, const void *now)
{
    return a->expires_mono > 0 && a->expires_mono <= *(const double *)now;
}

static bool owned_by(alloc_t *a, const void *owner)
{
    return a->owner && !strcmp(a->owner, owner);
}

void allocs_set_expiry(allocs_t *self, alloc_t *alloc, double expires_mono)
{
    alloc->expires_mono = expires_mono;
    if (expires_mono > 0 && (self->earliest == 0 || expires_mono < self->earliest))
        self->earliest = expires_mono;
}

/* Soonest lease end among what is left (0: none). */
static double soonest(allocs_t *self)
{
    double first = 0;
    for (size_t i = 0; i < self->nbuckets; i++)
        for (alloc_t *a = self->buckets[i]; a; a = a->next)
            if (a->expires_mono > 0 && (first == 0 || a->expires_mono < first))
                first = a->expires_mono;
    return first;
}

/* Called before every allocation: with 10,000 live entries a sweep is
 * only worth it once some lease can have ended. */
size_t allocs_expire(allocs_t *self, double now_mono, json_t *released)
{
    if (self->earliest == 0 || now_mono < self->earliest)
        return 0;
    size_t n = sweep(self, lease_over, &now_mono, released);
    self->earliest = soonest(self);
    return n;
}

size_t allocs_release_owner(allocs_t *self, const char *owner, json_t *released)
{
    return sweep(self, owned_by, owner, released);
}

static json_t *alloc_json(alloc_t *a)
{
    char ts[40];
    clock_iso_local(a->allocated_at, ts, sizeof ts);
    json_t *entry = json_pack("{s:O, s:O, s:s, s:s}",
                              "type", a->type ? a->type : json_null(),
                              "amount", a->amount, "allocated_at", ts, "status", "active");
    if (a->kind == ALLOC_KIND_VRAM)
        json_object_set_new(entry, "device", json_integer(a->device));
    if (a->owner)
        json_object_set_new(entry, "owner", json_string(a->owner));
    if (a->lease_s > 0) {
        double left = a->expires_mono - clock_mono();
        json_object_set_new(entry, "lease_s", json_real(a->lease_s));
        clock_iso_local(clock_wall() + (left > 0 ? left : 0), ts, sizeof ts);
        json_object_set_new(entry, "expires_at", json_string(ts));
    }
    return entry;
}

json_t *allocs_json(allocs_t *self)
{
    json_t *all = json_object();
    for (size_t i = 0; i < self->nbuckets; i++)
        for (alloc_t *a = self->buckets[i]; a; a = a->next)
            json_object_set_new(all, a->id, alloc_json(a));
    return all;
}

static double room_on_device(allocs_t *self, const gpu_device_t *d, double limit_percent)
{
    double total = (double)d->mem_total_bytes / STATS_MIB;
    double used = (double)d->mem_used_bytes / STATS_MIB;
    return total * limit_percent / 100.0 - used - allocs_held(self, ALLOC_KIND_VRAM, d->index);
}

static int admit_vram(allocs_t *self, double quantity, const stats_sample_t *sample,
                      double limit_percent, int *device, double *room_out)
{
    if (sample->ngpu == 0)
        return -1;
    int best = -1;
    double best_room = 0;
    for (int i = 0; i < sample->ngpu; i++) {
        if (*device >= 0 && sample->gpus[i].index != *device)
            continue;
        double room = room_on_device(self, &sample->gpus[i], limit_percent);
        if (best < 0 || room > best_room) {
            best = sample->gpus[i].index;
            best_room = room;
        }
    }
    if (best < 0)
        return -1;
    *device = best;
    *room_out = best_room;
    return quantity <= best_room ? 1 : 0;
}

int allocs_admit(allocs_t *self, alloc_kind_t kind, double quantity, const stats_sample_t *sample,
                 const alloc_thresholds_t *limits, int *device, double *room_out)
{
    double room;
    *room_out = 0;
    if (kind == ALLOC_KIND_VRAM)
        return admit_vram(self, quantity, sample, limits->gpu, device, room_out);
    if (kind == ALLOC_KIND_MEMORY) {
        double total = (double)sample->memory_total / STATS_MIB;
        double used = (double)(sample->memory_total - sample->memory_available) / STATS_MIB;
        room = total * limits->memory / 100.0 - used - self->held_memory;
    } else if (kind == ALLOC_KIND_CPU) {
        double cores = sample->cpu_count > 0 ? sample->cpu_count : 1;
        room = cores * limits->cpu / 100.0 - cores * sample->cpu_percent / 100.0 - self->held_cpu;
    } else {
        return 1;
    }
    *room_out = room;
    return quantity <= room ? 1 : 0;
}
