/*  rates: see rates.h.
 *
 *  Each key has a ring of nbuckets slots; a slot remembers which bucket
 *  (floor(time / bucket_s)) it holds, so a slot left over from an earlier
 *  lap of the ring is recognised as stale and counts as zero.  Nothing is
 *  ever swept: staleness is decided when a slot is read or reused. */
#include "rates.h"

#include <math.h>
#include <stdbool.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *key;
    int32_t *counts;
    int64_t *stamps;
    unsigned char *ranks;
} entry_t;

struct rates_t {
    pthread_mutex_t lock;
    double bucket_s;
    int nbuckets;
    size_t max_keys, used, cap;
    entry_t *slots;
};

rates_t *rates_new(double bucket_s, int nbuckets, size_t max_keys)
{
    rates_t *self = calloc(1, sizeof *self);
    pthread_mutex_init(&self->lock, NULL);
    self->bucket_s = bucket_s > 0 ? bucket_s : 1;
    self->nbuckets = nbuckets > 0 ? nbuckets : 1;
    self->max_keys = max_keys ? max_keys : 1;
    self->cap = 64;
    while (self->cap < self->max_keys * 2 + 2)
        self->cap *= 2;
    self->slots = calloc(self->cap, sizeof *self->slots);
    return self;
}

void rates_destroy(rates_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    rates_t *self = *self_p;
    for (size_t i = 0; i < self->cap; i++) {
        free(self->slots[i].key);
        free(self->slots[i].counts);
        free(self->slots[i].stamps);
        free(self->slots[i].ranks);
    }
    free(self->slots);
    pthread_mutex_destroy(&self->lock);
    free(self);
    *self_p = NULL;
}

static uint64_t hash_key(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
    return h;
}

/* The entry of key, made if there is room; "(other)" once full. */
static entry_t *lookup(rates_t *self, const char *key)
{
    size_t i = hash_key(key) & (self->cap - 1);
    while (self->slots[i].key && strcmp(self->slots[i].key, key) != 0)
        i = (i + 1) & (self->cap - 1);
    entry_t *e = &self->slots[i];
    if (e->key)
        return e;
    bool other = strcmp(key, "(other)") == 0;
    if (!other && self->used + 1 >= self->max_keys)
        return lookup(self, "(other)");     /* the last place is kept for "(other)" */
    if (self->used >= self->max_keys)
        return NULL;
    e->key = strdup(key);
    e->counts = calloc((size_t)self->nbuckets, sizeof *e->counts);
    e->stamps = malloc((size_t)self->nbuckets * sizeof *e->stamps);
    e->ranks = calloc((size_t)self->nbuckets, 1);
    for (int b = 0; b < self->nbuckets; b++)
        e->stamps[b] = -1;
    self->used++;
    return e;
}

void rates_add(rates_t *self, const char *key, double now, long count, int rank)
{
    int64_t bucket = (int64_t)floor(now / self->bucket_s);
    int slot = (int)(bucket % self->nbuckets);
    pthread_mutex_lock(&self->lock);
    entry_t *e = lookup(self, key);
    if (e) {
        if (e->stamps[slot] != bucket) {
            e->stamps[slot] = bucket;
            e->counts[slot] = 0;
            e->ranks[slot] = 0;
        }
        e->counts[slot] += (int32_t)count;
        if (rank > e->ranks[slot])
            e->ranks[slot] = (unsigned char)rank;
    }
    pthread_mutex_unlock(&self->lock);
}

json_t *rates_snapshot(rates_t *self, double now, double window_s)
{
    int64_t current = (int64_t)floor(now / self->bucket_s);
    int64_t span = (int64_t)ceil(window_s / self->bucket_s);
    if (span > self->nbuckets)
        span = self->nbuckets;
    if (span < 1)
        span = 1;
    json_t *out = json_object();
    pthread_mutex_lock(&self->lock);
    for (size_t i = 0; i < self->cap; i++) {
        entry_t *e = &self->slots[i];
        if (!e->key)
            continue;
        long count = 0;
        int rank = 0;
        for (int b = 0; b < self->nbuckets; b++)
            if (e->stamps[b] > current - span && e->stamps[b] <= current) {
                count += e->counts[b];
                if (e->ranks[b] > rank)
                    rank = e->ranks[b];
            }
        if (count > 0)
            json_object_set_new(out, e->key, json_pack("{s:I, s:i}", "count", (json_int_t)count,
                                                       "rank", rank));
    }
    pthread_mutex_unlock(&self->lock);
    return out;
}
