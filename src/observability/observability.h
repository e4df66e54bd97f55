/*  observability: the ObservabilityHub service: health, performance,
 *  prediction and recovery for the fleet (HealthMonitor, PerformanceMonitor,
 *  PredictiveHealthMonitor, PerformanceLoggerAgent, SystemHealthManager). */
#ifndef KEEL_OBSERVABILITY_H
#define KEEL_OBSERVABILITY_H
#include "service.h"

extern const service_def_t observability_service;
#endif
