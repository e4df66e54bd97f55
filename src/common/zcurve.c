/*  zcurve: see zcurve.h. */
#include <czmq.h>
/* czmq pulls in syslog.h, whose LOG_DEBUG and LOG_INFO macros would
 * replace the names of Keel's log levels. */
#undef LOG_DEBUG
#undef LOG_INFO

#include "zcurve.h"
#include "actor.h"
#include "fsutil.h"
#include "log.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <sys/stat.h>
#include <zmq.h>

#define ZAP_ENDPOINT "inproc://zeromq.zap.01"
#define ALLOW_DIR "authorized_clients"
#define MAX_ALLOWED 1024

typedef struct {
    unsigned char pub[32], sec[32];
} pair_t;

static struct {
    pthread_mutex_t lock;
    bool configured, enabled, have_server, have_client;
    bool agents;                /* agent_curve: the kept agents' sockets too */
    char dir[PATH_MAX];
    pair_t server, client;
    /* the allow-list, and the directory state it was read at */
    unsigned char allowed[MAX_ALLOWED][32];
    int nallowed;
    struct timespec allow_mtime;
    bool allow_loaded;
    actor_t *zap;               /* the ZAP handler, a runner */
    void *zap_rep;
} curve = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* ---- certificates ------------------------------------------------------- */

static int secret_mode_ok(const char *path)
{
    struct stat st;
    if (stat(path, &st) < 0)
        return -1;
    if (st.st_mode & 077) {
        log_error("zcurve", "%s is readable by group or others (mode %03o): refusing it; chmod 600",
                  path, (unsigned)(st.st_mode & 0777));
        return -1;
    }
    return 0;
}

/* Loads NAME.key (and NAME.key_secret) from the certificates directory. */
static int load_pair(const char *name, pair_t *pair, bool quiet)
{
    char path[PATH_MAX + 32], secret[PATH_MAX + 40];
    snprintf(path, sizeof path, "%s/%s.key", curve.dir, name);
    snprintf(secret, sizeof secret, "%s_secret", path);
    if (access(secret, F_OK) != 0) {
        if (!quiet)
            log_error("zcurve", "%s is missing: run `keelctl certs generate`", secret);
        return -1;
    }
    if (secret_mode_ok(secret) < 0)
        return -1;
    zcert_t *cert = zcert_load(path);
    if (!cert) {
        log_error("zcurve", "cannot read the certificate %s", path);
        return -1;
    }
    memcpy(pair->pub, zcert_public_key(cert), 32);
    memcpy(pair->sec, zcert_secret_key(cert), 32);
    zcert_destroy(&cert);
    return 0;
}

static int configure(bool enabled, bool agents, const char *dir, bool need_server)
{
    pthread_mutex_lock(&curve.lock);
    curve.configured = true;
    curve.enabled = enabled;
    curve.agents = agents;
    snprintf(curve.dir, sizeof curve.dir, "%s", dir);
    curve.allow_loaded = false;
    int rc = 0;
    if (enabled) {
        curve.have_server = load_pair("server", &curve.server, !need_server) == 0;
        curve.have_client = load_pair("client", &curve.client, false) == 0;
        if (!curve.have_client || (need_server && !curve.have_server))
            rc = -1;
        else
            log_info("zcurve", "CURVE on: certificates in %s", dir);
    }
    pthread_mutex_unlock(&curve.lock);
    return rc;
}

static const char *env_dir(const char *fallback)
{
    const char *dir = getenv("ZMQ_CERTIFICATES_DIR");
    return dir && *dir ? dir : fallback;
}

int zcurve_configure(config_t *config, bool need_server)
{
    return configure(config_bool(config, "secure_zmq", false), config_bool(config, "agent_curve", false),
                     env_dir(config_str(config, "certificates_dir", "./certificates")), need_server);
}

static void configure_from_env(void)
{
    pthread_mutex_lock(&curve.lock);
    bool done = curve.configured;
    pthread_mutex_unlock(&curve.lock);
    if (!done) {
        const char *flag = getenv("SECURE_ZMQ");
        bool on = flag && (!strcmp(flag, "1") || !strcasecmp(flag, "true"));
        configure(on, false, env_dir("./certificates"), false);
    }
}

bool zcurve_enabled(void)
{
    configure_from_env();
    return curve.enabled;
}

bool zcurve_agents_enabled(void)
{
    configure_from_env();
    return curve.agents;
}

/* ---- the allow-list and ZAP ---------------------------------------------- */

/* Re-reads authorized_clients/ when it changed.  Called with the lock held. */
static void refresh_allowed(void)
{
    char dir[PATH_MAX + 32];
    snprintf(dir, sizeof dir, "%s/" ALLOW_DIR, curve.dir);
    struct stat st;
    if (stat(dir, &st) < 0) {
        curve.nallowed = 0;
        curve.allow_loaded = false;
        return;
    }
    if (curve.allow_loaded && st.st_mtim.tv_sec == curve.allow_mtime.tv_sec
        && st.st_mtim.tv_nsec == curve.allow_mtime.tv_nsec)
        return;
    curve.nallowed = 0;
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d)) && curve.nallowed < MAX_ALLOWED) {
        size_t n = strlen(e->d_name);
        if (n < 5 || strcmp(e->d_name + n - 4, ".key") != 0)
            continue;
        char path[PATH_MAX + 300];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        zcert_t *cert = zcert_load(path);
        if (cert) {
            memcpy(curve.allowed[curve.nallowed++], zcert_public_key(cert), 32);
            zcert_destroy(&cert);
        }
    }
    if (d)
        closedir(d);
    curve.allow_mtime = st.st_mtim;
    curve.allow_loaded = true;
}

static bool key_allowed(const unsigned char *key)
{
    pthread_mutex_lock(&curve.lock);
    refresh_allowed();
    bool found = false;
    for (int i = 0; i < curve.nallowed; i++)
        if (memcmp(curve.allowed[i], key, 32) == 0)
            found = true;
    pthread_mutex_unlock(&curve.lock);
    return found;
}

/* One ZAP exchange (RFC 27): version, request id, domain, address,
 * identity, mechanism, credentials -> version, request id, status code,
 * status text, user id, metadata. */
static void zap_answer(void *rep)
{
    zmq_msg_t frames[8];
    int count = 0, more = 1;
    while (more) {
        zmq_msg_t part;
        zmq_msg_init(&part);
        if (zmq_msg_recv(&part, rep, 0) < 0) {
            zmq_msg_close(&part);
            break;
        }
        more = zmq_msg_more(&part);
        if (count < 8)
            frames[count++] = part;
        else
            zmq_msg_close(&part);
    }
    const char *code = "400", *text = "Key not allowed";
    char user[41] = "";
    bool curve_mech = count >= 7 && zmq_msg_size(&frames[5]) == 5
                      && memcmp(zmq_msg_data(&frames[5]), "CURVE", 5) == 0;
    if (curve_mech && zmq_msg_size(&frames[6]) == 32) {
        const unsigned char *key = zmq_msg_data(&frames[6]);
        zmq_z85_encode(user, key, 32);
        if (key_allowed(key)) {
            code = "200";
            text = "OK";
        } else {
            log_warn("zcurve", "connection refused: client key %.8s... is not in the allow-list", user);
        }
    }
    if (count >= 2) {
        zmq_send(rep, "1.0", 3, ZMQ_SNDMORE);
        zmq_send(rep, zmq_msg_data(&frames[1]), zmq_msg_size(&frames[1]), ZMQ_SNDMORE);
        zmq_send(rep, code, 3, ZMQ_SNDMORE);
        zmq_send(rep, text, strlen(text), ZMQ_SNDMORE);
        zmq_send(rep, code[0] == '2' ? user : "", code[0] == '2' ? strlen(user) : 0, ZMQ_SNDMORE);
        zmq_send(rep, "", 0, 0);
    }
    for (int i = 0; i < count; i++)
        zmq_msg_close(&frames[i]);
}

static void zap_run(actor_t *actor, void *arg)
{
    void *rep = arg;
    zmq_pollitem_t items[2] = { { rep, 0, ZMQ_POLLIN, 0 }, { NULL, actor_stop_fd(actor), ZMQ_POLLIN, 0 } };
    while (actor_running(actor))
        if (zmq_poll(items, 2, 200) > 0 && (items[0].revents & ZMQ_POLLIN))
            zap_answer(rep);
}

int zcurve_serve_zap(void *rep)
{
    pthread_mutex_lock(&curve.lock);
    int rc = -1;
    if (curve.zap) {
        log_error("zcurve", "the ZAP handler is already running");
    } else if (zmq_bind(rep, ZAP_ENDPOINT) != 0) {
        log_error("zcurve", "cannot start the ZAP handler: %s", zmq_strerror(zmq_errno()));
    } else {
        curve.zap = actor_new_runner("zap handler", zap_run, NULL, rep);
        rc = actor_start(curve.zap);
        if (rc < 0)
            actor_destroy(&curve.zap);
        else
            curve.zap_rep = rep;
    }
    pthread_mutex_unlock(&curve.lock);
    if (rc < 0)
        zmq_close(rep);
    return rc;
}

void zcurve_shutdown(void)
{
    pthread_mutex_lock(&curve.lock);
    actor_t *zap = curve.zap;
    void *rep = curve.zap_rep;
    curve.zap = NULL;
    curve.zap_rep = NULL;
    pthread_mutex_unlock(&curve.lock);
    actor_destroy(&zap);
    if (rep)
        zmq_close(rep);
}

/* ---- sockets ------------------------------------------------------------ */

int zcurve_server(void *socket)
{
    configure_from_env();
    pthread_mutex_lock(&curve.lock);
    int rc = 0;
    if (curve.enabled) {
        int one = 1;
        if (!curve.have_server && load_pair("server", &curve.server, false) == 0)
            curve.have_server = true;
        if (!curve.have_server || !curve.zap
            || zmq_setsockopt(socket, ZMQ_ZAP_DOMAIN, "keel", 4) != 0
            || zmq_setsockopt(socket, ZMQ_CURVE_SERVER, &one, sizeof one) != 0
            || zmq_setsockopt(socket, ZMQ_CURVE_SECRETKEY, curve.server.sec, 32) != 0) {
            log_error("zcurve", "SECURE_ZMQ is on but this socket cannot be made a CURVE server");
            rc = -1;
        }
    }
    pthread_mutex_unlock(&curve.lock);
    return rc;
}

int zcurve_client(void *socket)
{
    configure_from_env();
    pthread_mutex_lock(&curve.lock);
    int rc = 0;
    if (curve.enabled) {
        if (!curve.have_client || !curve.have_server
            || zmq_setsockopt(socket, ZMQ_CURVE_SERVERKEY, curve.server.pub, 32) != 0
            || zmq_setsockopt(socket, ZMQ_CURVE_PUBLICKEY, curve.client.pub, 32) != 0
            || zmq_setsockopt(socket, ZMQ_CURVE_SECRETKEY, curve.client.sec, 32) != 0) {
            log_error("zcurve", "SECURE_ZMQ is on but this socket cannot be made a CURVE client");
            rc = -1;
        }
    }
    pthread_mutex_unlock(&curve.lock);
    return rc;
}

/* ---- key generation -------------------------------------------------------- */

static int chmod_pair(const char *path, char *err, size_t errlen)
{
    char secret[PATH_MAX + 40];
    snprintf(secret, sizeof secret, "%s_secret", path);
    if (chmod(path, 0600) < 0 || (access(secret, F_OK) == 0 && chmod(secret, 0600) < 0)) {
        snprintf(err, errlen, "cannot set mode 0600 on %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* Saves a fresh pair as DIR/NAME.key(+_secret) and its public half in the
 * allow-list when `allow`. */
static int save_pair(const char *dir, const char *name, bool allow, char *err, size_t errlen)
{
    zcert_t *cert = zcert_new();
    zcert_set_meta(cert, "name", "%s", name);
    zcert_set_meta(cert, "created-by", "keelctl certs generate");
    char path[PATH_MAX + 300], public_path[PATH_MAX + 340];
    snprintf(path, sizeof path, "%s/%s.key", dir, name);
    snprintf(public_path, sizeof public_path, "%s/" ALLOW_DIR "/%s.key", dir, name);
    int rc = zcert_save(cert, path) == 0 ? chmod_pair(path, err, errlen) : -1;
    if (rc == 0 && allow)
        rc = zcert_save_public(cert, public_path) == 0 ? chmod_pair(public_path, err, errlen) : -1;
    if (rc < 0 && !*err)
        snprintf(err, errlen, "cannot write %s", path);
    zcert_destroy(&cert);
    return rc;
}

static int make_dirs(const char *dir, char *err, size_t errlen)
{
    char allow[PATH_MAX + 32];
    snprintf(allow, sizeof allow, "%s/" ALLOW_DIR, dir);
    if (fs_mkdirs(allow) < 0 || chmod(dir, 0700) < 0 || chmod(allow, 0700) < 0) {
        snprintf(err, errlen, "cannot create %s: %s", allow, strerror(errno));
        return -1;
    }
    return 0;
}

int zcurve_generate(const char *dir, bool force, char *err, size_t errlen)
{
    *err = '\0';
    char probe[PATH_MAX + 32];
    snprintf(probe, sizeof probe, "%s/server.key_secret", dir);
    if (!force && access(probe, F_OK) == 0) {
        snprintf(err, errlen, "%s exists; use --force to replace the keys", probe);
        return -1;
    }
    if (make_dirs(dir, err, errlen) < 0)
        return -1;
    if (save_pair(dir, "server", false, err, errlen) < 0 || save_pair(dir, "client", true, err, errlen) < 0)
        return -1;
    return 0;
}

int zcurve_generate_client(const char *dir, const char *name, char *err, size_t errlen)
{
    *err = '\0';
    if (!*name || strchr(name, '/') || name[0] == '.') {
        snprintf(err, errlen, "a client name must be a plain file name");
        return -1;
    }
    if (make_dirs(dir, err, errlen) < 0)
        return -1;
    return save_pair(dir, name, true, err, errlen);
}
