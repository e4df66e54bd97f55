/*  zcurve: see zcurve.h. */
#include "zcurve.h"
#include "actor.h"
#include "fsutil.h"
#include "log.h"
#include "zpl.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
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

/* Reads the key at `path` in a certificate's text: its Z85 text (41
 * bytes with the NUL) and the 32 bytes it stands for. */
static int read_key(const char *text, const char *path, char *z85, unsigned char *key, char *err,
                    size_t errlen)
{
    char value[64];             /* room past 40, so a long key is "not 40", not "too long" */
    if (zpl_find(text, path, value, sizeof value, err, errlen) < 0)
        return -1;
    if (strlen(value) != 40 || !zmq_z85_decode(key, value)) {
        snprintf(err, errlen, "%s is not 40 Z85 characters", path);
        sodium_memzero(value, sizeof value);
        return -1;
    }
    memcpy(z85, value, 41);
    sodium_memzero(value, sizeof value);
    return 0;
}

int zcurve_read_cert(const char *path, unsigned char *public_key, unsigned char *secret_key, char *err,
                     size_t errlen)
{
    char public_z85[41], secret_z85[41], derived[41];
    size_t len = 0;
    char *text = fs_read_all(path, &len);
    int rc = -1;
    if (!text)
        snprintf(err, errlen, "%s", strerror(errno));
    else if (strlen(text) != len)
        snprintf(err, errlen, "it holds a NUL byte: not a certificate");
    else if (read_key(text, "curve/public-key", public_z85, public_key, err, errlen) == 0
             && (!secret_key || read_key(text, "curve/secret-key", secret_z85, secret_key, err, errlen) == 0))
        rc = 0;
    /* A pair that does not match would only show as a handshake that never
     * completes; say so here instead. */
    if (rc == 0 && secret_key
        && (zmq_curve_public(derived, secret_z85) != 0 || strcmp(derived, public_z85) != 0)) {
        snprintf(err, errlen, "its secret-key is not the pair of its public-key");
        rc = -1;
    }
    if (text)
        sodium_memzero(text, len);
    free(text);
    sodium_memzero(secret_z85, sizeof secret_z85);
    return rc;
}

/* Loads the pair from NAME.key_secret, which holds both keys, in the
 * certificates directory. */
static int load_pair(const char *name, pair_t *pair, bool quiet)
{
    char secret[PATH_MAX + 40], err[256];
    snprintf(secret, sizeof secret, "%s/%s.key_secret", curve.dir, name);
    if (access(secret, F_OK) != 0) {
        if (!quiet)
            log_error("zcurve", "%s is missing: run `keelctl certs generate`", secret);
        return -1;
    }
    if (secret_mode_ok(secret) < 0)
        return -1;
    pair_t read;
    int rc = zcurve_read_cert(secret, read.pub, read.sec, err, sizeof err);
    if (rc < 0)
        log_error("zcurve", "cannot read the certificate %s: %s", secret, err);
    else
        *pair = read;
    sodium_memzero(&read, sizeof read);
    return rc;
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
        char path[PATH_MAX + 300], err[256];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (zcurve_read_cert(path, curve.allowed[curve.nallowed], NULL, err, sizeof err) == 0)
            curve.nallowed++;
        else
            log_warn("zcurve", "%s is left out of the allow-list: %s", path, err);
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

/* Writes a certificate file: the public key, and the secret key too when
 * secret_z85 is not NULL. */
static int write_cert(const char *path, const char *name, const char *public_z85, const char *secret_z85,
                      char *err, size_t errlen)
{
    char stamp[32], text[1024];
    time_t now = time(NULL);
    struct tm tm;
    strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M:%S", localtime_r(&now, &tm));
    int n = snprintf(text, sizeof text,
                     "#   ****  Generated on %s by Keel  ****\n"
                     "#   ZeroMQ CURVE %s certificate%s\n"
                     "\n"
                     "metadata\n"
                     "    name = \"%s\"\n"
                     "    created-by = \"keelctl certs generate\"\n"
                     "curve\n"
                     "    public-key = \"%s\"\n"
                     "%s%s%s",
                     stamp, secret_z85 ? "**Secret**" : "Public",
                     secret_z85 ? ": keep it to this machine, mode 0600" : ": it may be shared",
                     name, public_z85, secret_z85 ? "    secret-key = \"" : "",
                     secret_z85 ? secret_z85 : "", secret_z85 ? "\"\n" : "");
    int rc = -1;
    /* chmod too: the umask may have taken bits from the owner's 0600 */
    if (n < 0 || (size_t)n >= sizeof text)
        snprintf(err, errlen, "cannot write %s: the name is too long", path);
    else if (fs_write_atomic(path, text, (size_t)n, 0600) < 0 || chmod(path, 0600) < 0)
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
    else
        rc = 0;
    sodium_memzero(text, sizeof text);
    return rc;
}

/* Saves a fresh pair as DIR/NAME.key(+_secret) and its public half in the
 * allow-list when `allow`. */
static int save_pair(const char *dir, const char *name, bool allow, char *err, size_t errlen)
{
    char public_z85[41], secret_z85[41];
    if (zmq_curve_keypair(public_z85, secret_z85) != 0) {
        snprintf(err, errlen, "cannot make a CURVE key pair: %s", zmq_strerror(zmq_errno()));
        return -1;
    }
    char path[PATH_MAX + 300], secret_path[PATH_MAX + 310], public_path[PATH_MAX + 340];
    snprintf(path, sizeof path, "%s/%s.key", dir, name);
    snprintf(secret_path, sizeof secret_path, "%s_secret", path);
    snprintf(public_path, sizeof public_path, "%s/" ALLOW_DIR "/%s.key", dir, name);
    int rc = write_cert(path, name, public_z85, NULL, err, errlen);
    if (rc == 0)
        rc = write_cert(secret_path, name, public_z85, secret_z85, err, errlen);
    if (rc == 0 && allow)
        rc = write_cert(public_path, name, public_z85, NULL, err, errlen);
    sodium_memzero(secret_z85, sizeof secret_z85);
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
    /* it is quoted in the certificate's metadata too */
    if (!*name || strpbrk(name, "/\"\n\r") || name[0] == '.') {
        snprintf(err, errlen, "a client name must be a plain file name");
        return -1;
    }
    if (make_dirs(dir, err, errlen) < 0)
        return -1;
    return save_pair(dir, name, true, err, errlen);
}
