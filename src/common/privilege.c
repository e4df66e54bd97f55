/*  privilege: see privilege.h.  Source addresses are compared as bytes
 *  under a prefix mask; an IPv4 peer seen through an IPv6 socket
 *  (::ffff:a.b.c.d) is compared as the IPv4 address it is. */
#include "privilege.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SOURCES 64

typedef struct {
    int family;
    unsigned char addr[16];
    int bits;
} cidr_t;

struct privilege_t {
    pthread_rwlock_t lock;      /* everything below: a reload or a start hook changes it while serving */
    cidr_t sources[MAX_SOURCES];
    int nsources;
    privilege_admin_fn *admin;
    void *admin_ctx;
};

/* Parses "a.b.c.d", "a.b.c.d/n", "::1" or "fd00::/8". */
static bool cidr_parse(const char *text, cidr_t *out)
{
    char addr[64];
    const char *slash = strchr(text, '/');
    size_t n = slash ? (size_t)(slash - text) : strlen(text);
    if (n == 0 || n >= sizeof addr)
        return false;
    memcpy(addr, text, n);
    addr[n] = '\0';
    memset(out, 0, sizeof *out);
    if (inet_pton(AF_INET, addr, out->addr) == 1)
        out->family = AF_INET;
    else if (inet_pton(AF_INET6, addr, out->addr) == 1)
        out->family = AF_INET6;
    else
        return false;
    int max = out->family == AF_INET ? 32 : 128;
    out->bits = max;
    if (slash) {
        char *end;
        long bits = strtol(slash + 1, &end, 10);
        if (end == slash + 1 || *end || bits < 0 || bits > max)
            return false;
        out->bits = (int)bits;
    }
    return true;
}

/* The peer's address in the family it is really from. */
static bool peer_parse(const char *peer, cidr_t *out)
{
    static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
    if (!peer || !cidr_parse(peer, out) || strchr(peer, '/'))
        return false;
    if (out->family == AF_INET6 && memcmp(out->addr, mapped, sizeof mapped) == 0) {
        memmove(out->addr, out->addr + 12, 4);
        out->family = AF_INET;
        out->bits = 32;
    }
    return true;
}

static bool cidr_contains(const cidr_t *net, const cidr_t *ip)
{
    if (net->family != ip->family)
        return false;
    int whole = net->bits / 8, rest = net->bits % 8;
    if (memcmp(net->addr, ip->addr, (size_t)whole) != 0)
        return false;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return rest == 0 || (net->addr[whole] & mask) == (ip->addr[whole] & mask);
}

privilege_t *privilege_new(void)
{
    privilege_t *self = calloc(1, sizeof *self);
    pthread_rwlock_init(&self->lock, NULL);
    cidr_parse("127.0.0.0/8", &self->sources[0]);
    cidr_parse("::1", &self->sources[1]);
    self->nsources = 2;
    return self;
}

void privilege_destroy(privilege_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    pthread_rwlock_destroy(&(*self_p)->lock);
    free(*self_p);
    *self_p = NULL;
}

int privilege_configure(privilege_t *self, config_t *config, char *err, size_t errlen)
{
    json_t *list = config_get(config, "trusted_sources");
    cidr_t sources[MAX_SOURCES];
    int n = 0;
    if (!json_is_array(list) || json_array_size(list) > MAX_SOURCES) {
        snprintf(err, errlen, "trusted_sources must be a list of at most %d addresses or CIDRs",
                 MAX_SOURCES);
        return -1;
    }
    size_t i;
    json_t *item;
    json_array_foreach(list, i, item) {
        const char *text = json_string_value(item);
        if (!text || !cidr_parse(text, &sources[n])) {
            char *shown = json_dumps(item, JSON_ENCODE_ANY | JSON_COMPACT);
            snprintf(err, errlen, "trusted_sources: %s is not an address or CIDR", shown ? shown : "?");
            free(shown);
            return -1;
        }
        n++;
    }
    pthread_rwlock_wrlock(&self->lock);
    memcpy(self->sources, sources, (size_t)n * sizeof *sources);
    self->nsources = n;
    pthread_rwlock_unlock(&self->lock);
    return 0;
}

void privilege_set_admin_check(privilege_t *self, privilege_admin_fn *fn, void *ctx)
{
    pthread_rwlock_wrlock(&self->lock);
    self->admin = fn;
    self->admin_ctx = ctx;
    pthread_rwlock_unlock(&self->lock);
}

static bool source_trusted(privilege_t *self, const char *peer)
{
    cidr_t ip;
    if (!peer_parse(peer, &ip))
        return false;
    bool found = false;
    pthread_rwlock_rdlock(&self->lock);
    for (int i = 0; i < self->nsources && !found; i++)
        found = cidr_contains(&self->sources[i], &ip);
    pthread_rwlock_unlock(&self->lock);
    return found;
}

/* The check runs outside the lock: it may ask SecurityGateway over the wire. */
static bool is_admin(privilege_t *self, const char *token)
{
    pthread_rwlock_rdlock(&self->lock);
    privilege_admin_fn *admin = self->admin;
    void *ctx = self->admin_ctx;
    pthread_rwlock_unlock(&self->lock);
    return token && *token && admin && admin(ctx, token);
}

privilege_verdict_t privilege_check(privilege_t *self, route_privilege_t need,
                                    const privilege_caller_t *caller)
{
    if (need == ROUTE_PUBLIC)
        return PRIVILEGE_GRANTED;
    bool granted = false;
    if (self && need == ROUTE_AGENT)
        granted = caller->curve || source_trusted(self, caller->peer);
    if (self && !granted && (need == ROUTE_AGENT || need == ROUTE_ADMIN))
        granted = is_admin(self, caller->token);
    if (granted)
        return PRIVILEGE_GRANTED;
    return caller->token && *caller->token ? PRIVILEGE_BAD_TOKEN : PRIVILEGE_NO_TOKEN;
}

bool privilege_declared(route_privilege_t privilege)
{
    return privilege == ROUTE_PUBLIC || privilege == ROUTE_AGENT || privilege == ROUTE_ADMIN;
}

const char *privilege_name(route_privilege_t privilege)
{
    switch (privilege) {
    case ROUTE_PUBLIC: return "public";
    case ROUTE_AGENT: return "agent";
    case ROUTE_ADMIN: return "admin";
    default: return "undeclared";
    }
}

void privilege_refusal(route_privilege_t need, const char *route, char *buf, size_t len)
{
    if (need == ROUTE_AGENT)
        snprintf(buf, len, "Forbidden: %.200s needs a CURVE client key, a trusted source address "
                 "or an administrator's token", route);
    else if (need == ROUTE_ADMIN)
        snprintf(buf, len, "Forbidden: %.200s needs an administrator's token", route);
    else
        snprintf(buf, len, "Forbidden: %.200s declares no privilege", route);
}
