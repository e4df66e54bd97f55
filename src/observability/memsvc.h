/*  memsvc: SystemHealthManager's watch over the memory subsystem.  Where
 *  the memory services are configured, every interval (60 s) it probes MemoryOrchestratorService (7140) and
 *  MemoryScheduler (7142) with {"action":"health_check","data":{}}; only
 *  status "success" is healthy, and every failure goes to ErrorBus as
 *  <x>_health_check_failed, <x>_invalid_response, <x>_timeout or
 *  <x>_health_check_error.  Each probe uses a fresh REQ socket (gather.h),
 *  so a timeout never wedges the next check as it did in the original. */
#ifndef OBS_MEMSVC_H
#define OBS_MEMSVC_H
#include <jansson.h>

#include "config.h"
#include "errpub.h"

typedef struct memsvc_t memsvc_t;

memsvc_t *memsvc_new(config_t *config, errpub_t *errors);
void memsvc_destroy(memsvc_t **self_p);
int memsvc_start(memsvc_t *self);
/* Probes both services once (the thread's step). */
void memsvc_check(memsvc_t *self);
/* {memory_orchestrator: record, memory_scheduler: record} of the last checks. */
json_t *memsvc_records(memsvc_t *self);
/* get_system_status's reply (OH-43). */
json_t *memsvc_system_status(memsvc_t *self);
#endif
