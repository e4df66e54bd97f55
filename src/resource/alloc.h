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

typedef enum { RS_KIND_OTHER, RS_KIND_CPU, RS_KIND_MEMORY, RS_KIND_VRAM } rs_kind_t;

typedef struct rs_alloc_t {
    char *id;                   /* the key as JSON shows it ("null" for a null id) */
    json_t *type;               /* resource_type as sent */
    json_t *amount;             /* as sent (Python text in messages) */
    rs_kind_t kind;
    double quantity;            /* cores or MiB for the capacity kinds */
    int device;                 /* vram: GPU index; -1 otherwise */
    double allocated_at;        /* unix seconds */
    double lease_s;             /* 0: no lease */
    double expires_mono;        /* 0: never */
    char *owner;                /* agent holding it, or NULL */
    struct rs_alloc_t *next;
} rs_alloc_t;

typedef struct {
    double cpu, memory, gpu;    /* percent */
} rs_thresholds_t;

typedef struct rs_allocs_t rs_allocs_t;

rs_kind_t rs_alloc_kind(const char *type);
rs_alloc_t *rs_alloc_new(const char *id);
void rs_alloc_free(rs_alloc_t *alloc);

rs_allocs_t *rs_allocs_new(void);
void rs_allocs_destroy(rs_allocs_t **self_p);
size_t rs_allocs_count(rs_allocs_t *self);
rs_alloc_t *rs_allocs_find(rs_allocs_t *self, const char *id);
void rs_allocs_add(rs_allocs_t *self, rs_alloc_t *alloc);          /* takes it */
rs_alloc_t *rs_allocs_remove(rs_allocs_t *self, const char *id);   /* caller frees */
/* Gives an entry in the table a new lease end. */
void rs_allocs_set_expiry(rs_allocs_t *self, rs_alloc_t *alloc, double expires_mono);
/* Held quantity of a kind (device: vram only). */
double rs_allocs_held(rs_allocs_t *self, rs_kind_t kind, int device);
/* Removes entries whose lease ran out by now_mono, or (owner != NULL) that
 * the owner holds; appends their ids to `released`.  Returns how many. */
size_t rs_allocs_expire(rs_allocs_t *self, double now_mono, json_t *released);
size_t rs_allocs_release_owner(rs_allocs_t *self, const char *owner, json_t *released);
/* {id: {type, amount, allocated_at, status, ...}} */
json_t *rs_allocs_json(rs_allocs_t *self);

/* Whether `quantity` of `kind` fits now.  For vram, *device is the GPU
 * asked for, or -1 to pick the one with most room (set on return).
 * *room_out is what was free for it.  Returns 1 (fits), 0 (does not),
 * -1 (no such device, or no GPU at all). */
int rs_admit(rs_allocs_t *self, rs_kind_t kind, double quantity, const rs_sample_t *sample,
             const rs_thresholds_t *limits, int *device, double *room_out);
#endif
