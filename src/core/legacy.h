/*  legacy: the `command` + `payload` discovery protocol SystemDigitalTwin
 *  served before commit 6584679d (CO-50..CO-54), which about twenty agents
 *  still speak: REGISTER, DISCOVER, REPORT_MODEL_VRAM, GET_METRICS, with
 *  UPPERCASE status words.  It shares one store with the registry. */
#ifndef KEEL_CORE_LEGACY_H
#define KEEL_CORE_LEGACY_H
#include "backend.h"
#include "registry.h"
#include "twin.h"
#include "wire.h"

typedef struct legacy_t legacy_t;

/* metrics counts the names refused (names.h). */
legacy_t *legacy_new(backend_t *backend, registry_t *registry, twin_t *twin, metrics_t *metrics);
void legacy_destroy(legacy_t **self_p);
void legacy_attach(legacy_t *self, wire_server_t *wire);
/* The reply to any command no route takes. */
json_t *legacy_unknown(const char *command);
#endif
