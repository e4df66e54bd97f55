/*  security: the SecurityGateway service: authentication, tokens, trust scores and encrypted ZMQ (AuthenticationAgent, AgentTrustScorer). */
#ifndef KEEL_SECURITY_H
#define KEEL_SECURITY_H
#include "service.h"

extern const service_def_t security_service;
#endif
