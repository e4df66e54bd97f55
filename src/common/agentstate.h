/*  agentstate: the one state of an agent, from every piece of evidence Keel
 *  has about it.
 *
 *  Two services see an agent.  The registry (CoreOrchestrator) knows when it
 *  last registered or sent a heartbeat; the hub (ObservabilityHub) probes
 *  its health port.  Each used to answer "is it up?" with its own rule and
 *  its own words, and they disagreed: an agent answering "HEALTHY" was
 *  healthy in `keelctl agents` and down, with a restart requested, in the
 *  hub.  Now every view shows what agentstate_combine makes of all the
 *  evidence: up, degraded, down or unknown, always with the reason.  The
 *  hub combines (it probes, and reads the registry's heartbeats over the
 *  wire) and sends its verdicts to the registry; the registry, without a
 *  fresh verdict, applies the same function to its heartbeats alone.
 *
 *  The rules, strongest evidence first:
 *  - a machine most of whose agents stop answering together is suspected
 *    cut off (Eureka's lesson): its agents are unknown, never down, so
 *    nobody restarts them over a broken link;
 *  - a passing probe (damped, N of M) is up, or degraded when the agent
 *    answers in words that say so ("degraded", "initializing");
 *  - a failing probe is down, unless a heartbeat arrived after the probes
 *    began to fail: then the agent is alive and only its health port is
 *    not answering, which is degraded;
 *  - with no probe verdict, the heartbeat decides: up within the TTL,
 *    degraded up to twice the TTL, down after that; no heartbeat either is
 *    unknown. */
#ifndef KEEL_AGENTSTATE_H
#define KEEL_AGENTSTATE_H
#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>

typedef enum { AGENTSTATE_UNKNOWN, AGENTSTATE_UP, AGENTSTATE_DEGRADED, AGENTSTATE_DOWN } agentstate_t;

/* What the probes say, after damping. */
typedef enum {
    AGENTSTATE_PROBE_NONE,      /* not probed, or too few probes to say */
    AGENTSTATE_PROBE_PASSING,   /* answering healthy */
    AGENTSTATE_PROBE_DEGRADED,  /* answering, in words that say it is not well */
    AGENTSTATE_PROBE_FAILING,   /* N of the last M probes failed */
} agentstate_probe_t;

typedef struct {
    agentstate_probe_t probe;
    const char *probe_words;    /* the last probe's result in words, or NULL */
    double failing_since;       /* wall time the probe began to fail */
    double heartbeat_at;        /* wall time of the last registration or heartbeat; 0 = none */
    double ttl_s;               /* the registry's heartbeat TTL */
    bool partitioned;           /* agentstate_partition_suspected for its machine */
    const char *machine;
    double now;                 /* wall time */
} agentstate_evidence_t;

/* The state, with the reason written to `reason`. */
agentstate_t agentstate_combine(const agentstate_evidence_t *evidence, char *reason, size_t len);
/* Whether `failing` of the `total` probed agents of one machine failing
 * together points at the link to the machine rather than at each agent:
 * at least min_agents of them, at least `ratio` failing, and a machine
 * other than the observer's own (loopback has no link to suspect). */
bool agentstate_partition_suspected(int total, int failing, int min_agents, double ratio,
                                    bool own_machine);
/* "unknown", "up", "degraded", "down". */
const char *agentstate_name(agentstate_t state);
/* The state of a name (UNKNOWN for anything else). */
agentstate_t agentstate_from_name(const char *name);
/* Sort key, worst first: down 0, degraded 1, unknown 2, up 3. */
int agentstate_rank(agentstate_t state);
/* What an agent's health reply (borrowed) says of it, by its `status` in
 * any case: UP in the words the kept agents use when well, DEGRADED in
 * those of an agent alive but not well, DOWN for anything else, for
 * `healthy: false` and for a reply that is not an object. */
agentstate_t agentstate_of_reply(json_t *reply);
#endif
