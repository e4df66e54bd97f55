/*  agentstate: see agentstate.h.  Pure functions: the same evidence always
 *  gives the same state and the same words, whichever service asks. */
#include "agentstate.h"

#include <stdio.h>
#include <strings.h>
#include <string.h>

static const char *const names[] = { "unknown", "up", "degraded", "down" };

const char *agentstate_name(agentstate_t state)
{
    return state >= AGENTSTATE_UNKNOWN && state <= AGENTSTATE_DOWN ? names[state] : names[0];
}

agentstate_t agentstate_from_name(const char *name)
{
    for (int i = AGENTSTATE_UP; name && i <= AGENTSTATE_DOWN; i++)
        if (!strcmp(name, names[i]))
            return (agentstate_t)i;
    return AGENTSTATE_UNKNOWN;
}

int agentstate_rank(agentstate_t state)
{
    switch (state) {
    case AGENTSTATE_DOWN: return 0;
    case AGENTSTATE_DEGRADED: return 1;
    case AGENTSTATE_UP: return 3;
    default: return 2;
    }
}

bool agentstate_partition_suspected(int total, int failing, int min_agents, double ratio,
                                    bool own_machine)
{
    return !own_machine && total >= min_agents && total > 0 && (double)failing >= ratio * (double)total;
}

/* No probe verdict: the registry's heartbeat is all there is. */
static agentstate_t by_heartbeat(const agentstate_evidence_t *e, char *reason, size_t len)
{
    const char *words = e->probe_words ? e->probe_words : "none yet";
    if (e->heartbeat_at <= 0) {
        snprintf(reason, len, "never registered and no health check verdict (last check: %s)", words);
        return AGENTSTATE_UNKNOWN;
    }
    double ttl = e->ttl_s > 0 ? e->ttl_s : 300;
    double age = e->now - e->heartbeat_at;
    if (age < 0)
        age = 0;
    if (age <= ttl) {
        snprintf(reason, len, "heartbeat %.0f s ago, within the %.0f s TTL (health check verdict: %s)",
                 age, ttl, words);
        return AGENTSTATE_UP;
    }
    if (age <= 2 * ttl) {
        snprintf(reason, len, "heartbeat stale: %.0f s ago, past the %.0f s TTL (health check verdict: %s)",
                 age, ttl, words);
        return AGENTSTATE_DEGRADED;
    }
    snprintf(reason, len, "no heartbeat for %.0f s, past twice the %.0f s TTL (health check verdict: %s)",
             age, ttl, words);
    return AGENTSTATE_DOWN;
}

agentstate_t agentstate_combine(const agentstate_evidence_t *e, char *reason, size_t len)
{
    const char *words = e->probe_words ? e->probe_words : "no reply";
    if (e->partitioned) {
        snprintf(reason, len, "machine %s suspected cut off: most of its agents stopped answering together",
                 e->machine ? e->machine : "?");
        return AGENTSTATE_UNKNOWN;
    }
    switch (e->probe) {
    case AGENTSTATE_PROBE_PASSING:
        if (e->probe_words)
            snprintf(reason, len, "answers health checks (one failure allowed: %s)", e->probe_words);
        else
            snprintf(reason, len, "answers health checks");
        return AGENTSTATE_UP;
    case AGENTSTATE_PROBE_DEGRADED:
        snprintf(reason, len, "answers health checks with %s", words);
        return AGENTSTATE_DEGRADED;
    case AGENTSTATE_PROBE_FAILING:
        if (e->heartbeat_at > e->failing_since && e->failing_since > 0) {
            snprintf(reason, len, "health checks fail (%s) but it sent a heartbeat %.0f s ago", words,
                     e->now - e->heartbeat_at);
            return AGENTSTATE_DEGRADED;
        }
        snprintf(reason, len, "health checks fail: %s", words);
        return AGENTSTATE_DOWN;
    default:
        return by_heartbeat(e, reason, len);
    }
}

static bool word_in(const char *word, const char *const *words)
{
    for (size_t i = 0; words[i]; i++)
        if (!strcasecmp(word, words[i]))
            return true;
    return false;
}

agentstate_t agentstate_of_reply(json_t *reply)
{
    /* The words the kept agents' health replies use when well, in every
     * case they are written: BaseAgent's "ok", KnowledgeBase's, MemoryClient's
     * and GoalManager's "HEALTHY", Executor's "OK", the speech services'
     * "online", the broadcasters' "running", and "success" from handlers
     * that answer health_check on the main port.  An agent alive but not
     * yet (or no longer fully) well says one of the degraded words. */
    static const char *const healthy[] = { "ok", "healthy", "success", "online", "running", NULL };
    static const char *const degraded[] = { "degraded", "warning", "initializing", "starting", NULL };
    const char *status = json_string_value(json_object_get(reply, "status"));
    if (!json_is_object(reply) || !status || json_is_false(json_object_get(reply, "healthy")))
        return AGENTSTATE_DOWN;
    return word_in(status, healthy) ? AGENTSTATE_UP : word_in(status, degraded) ? AGENTSTATE_DEGRADED
                                                                            : AGENTSTATE_DOWN;
}
