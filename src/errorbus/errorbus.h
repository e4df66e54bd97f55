/*  errorbus: the ErrorBus service: every agent's errors collected, normalised, kept and acted on (error bus, ErrorManagementSystem, error reporting and recovery). */
#ifndef KEEL_ERRORBUS_H
#define KEEL_ERRORBUS_H
#include "service.h"

extern const service_def_t errorbus_service;
#endif
