/*  alloc: the table of live reservations and the admission arithmetic.
 *  The original ResourceManager only wrote a bookkeeping entry; here an
 *  allocation of cpu (cores), memory (MiB) or vram (MiB on one device)
 *  holds that much capacity until it is released, its lease runs out, or
 *  its owning agent is reported dead, and a new one is admitted only if it
 *  fits beside what is already held.  Other resource types keep the
 *  original bookkeeping-only behaviour.  Everything is compared in MiB.
 *
 *  A reservation is a promise for a load about to happen, so the used
 *  figure from /proc or NVML and the reservations are added up: counting a
 *  load twice for the moment between its start and its release errs on the
 *  safe side.  The table is a chained hash (10,000 live entries must cost
 *  no more than a handful); per-kind sums are kept as entries come and go.
 *  Not thread-safe: the manager holds its lock around every call. */
#ifndef KEEL_RS_ALLOC_H
#define KEEL_RS_ALLOC_H
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "stats.h"

typedef enum { ALLOC_KIND_OTHER, ALLOC_KIND_CPU, ALLOC_KIND_MEMORY, ALLOC_KIND_VRAM } alloc_kind_t;

typedef struct alloc_t {
    char *id;                   /* the key as JSON shows it ("null" for a null id) */
    json_t *type;               /* resource_type as sent */
    json_t *amount;             /* as sent (Python text in messages) */
    alloc_kind_t kind;
    double quantity;            /* cores or MiB for the capacity kinds */
    int device;                 /* vram: GPU index; -1 otherwise */
    double allocated_at;        /* unix seconds */
    double lease_s;             /* 0: no lease */
    double expires_mono;        /* 0: never */
    char *owner;                /* agent holding it, or NULL */
    struct alloc_t *next;
} alloc_t;

typedef struct {
    double cpu, memory, gpu;    /* percent */
} alloc_thresholds_t;

typedef struct allocs_t allocs_t;

alloc_kind_t alloc_kind(const char *type);
alloc_t *alloc_new(const char *id);
void alloc_free(alloc_t *alloc);

allocs_t *allocs_new(void);
void allocs_destroy(allocs_t **self_p);
size_t allocs_count(allocs_t *self);
alloc_t *allocs_find(allocs_t *self, const char *id);
void allocs_add(allocs_t *self, alloc_t *alloc);          /* takes it */
alloc_t *allocs_remove(allocs_t *self, const char *id);   /* caller frees */
/* Gives an entry in the table a new lease end. */
void allocs_set_expiry(allocs_t *self, alloc_t *alloc, double expires_mono);
/* Held quantity of a kind (device: vram only). */
double allocs_held(allocs_t *self, alloc_kind_t kind, int device);
/* Removes entries whose lease ran out by now_mono, or (owner != NULL) that
 * the owner holds; appends their ids to `released`.  Returns how many. */
size_t allocs_expire(allocs_t *self, double now_mono, json_t *released);
size_t allocs_release_owner(allocs_t *self, const char *owner, json_t *released);
/* {id: {type, amount, allocated_at, status, ...}} */
json_t *allocs_json(allocs_t *self);

/* Whether `quantity` of `kind` fits now.  For vram, *device is the GPU
 * asked for, or -1 to pick the one with most room (set on return).
 * *room_out is what was free for it.  Returns 1 (fits), 0 (does not),
 * -1 (no such device, or no GPU at all). */
int allocs_admit(allocs_t *self, alloc_kind_t kind, double quantity, const stats_sample_t *sample,
                 const alloc_thresholds_t *limits, int *device, double *room_out);
#endif
