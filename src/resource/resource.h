/*  resource: the ResourceManager service: admission, reservations, GPU/VRAM policy and the task queue (ResourceManager, TaskScheduler, AsyncProcessor, VRAMOptimizerAgent). */
#ifndef KEEL_RESOURCE_H
#define KEEL_RESOURCE_H
#include "service.h"

extern const service_def_t resource_service;
#endif
