/*  vram_policy: the VRAM optimizer's decisions as pure functions over the
 *  ModelManager's model table, so each rule (largest first under critical
 *  pressure, least recently used idle model under warning, the predictors,
 *  the batch formula, which models make room) is tested on its own, and
 *  the loops that act on them hold no state of their own.
 *
 *  A model table is MMA's map {name: {<size key>: MiB, "device": "MainPC"
 *  | "PC2", "last_used": epoch, "is_active": bool, ...}}.  GET_LOADED_
 *  MODELS_STATUS calls the size vram_usage_mb; update_vram_status calls it
 *  vram_mb, hence the size key argument. */
#ifndef KEEL_RS_VRAM_POLICY_H
#define KEEL_RS_VRAM_POLICY_H
#include <jansson.h>

/* Critical pressure: the device's models by size, largest first, at most
 * two (the second is tried only if the first unload fails). */
json_t *vram_pick_critical(json_t *models, const char *device, const char *size_key);
/* Idle models of a device (now - last_used > idle_timeout; no last_used
 * counts as idle), oldest first.  device NULL: every device. */
json_t *vram_idle(json_t *models, const char *device, double now, double idle_timeout);
/* Queue predictor: the first task whose type maps to a model not loaded. */
const char *vram_predict_queue(json_t *queue, json_t *loaded);
/* Pattern predictor: the first model used >10 times in the window, at a
 * rate > 0.1/s, last used 300..1800 s ago, and not loaded.  NULL: none. */
const char *vram_predict_pattern(json_t *patterns, json_t *loaded, double now, double window);
/* max(1, floor(free_mb * 0.8 / per_sample)); 1 when per_sample <= 0. */
long vram_batch_size(double free_mb, double per_sample);
/* Share of the device's used memory that no loaded model accounts for. */
double vram_fragmentation(double used_mb, double models_mb);
/* Sum of the size key over a device's models. */
double vram_models_mb(json_t *models, const char *device, const char *size_key);
/* Models to unload to free need_mb: unpinned ones, lowest priority first,
 * then least recently used.  *freed_out is what they hold; the list is
 * empty when even all of them would not be enough. */
json_t *vram_make_room(json_t *models, double need_mb, const char *size_key, double *freed_out);
#endif
