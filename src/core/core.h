/*  core: the CoreOrchestrator service: the registry, digital twin, request coordinator and agent supervision (ServiceRegistry, SystemDigitalTwin, RequestCoordinator, UnifiedSystemAgent). */
#ifndef KEEL_CORE_H
#define KEEL_CORE_H
#include "service.h"

extern const service_def_t core_service;
#endif
