/*  user: `keelctl user add NAME [--admin] --password-stdin`.  It writes
 *  straight into SecurityGateway's database file (<data_dir>/security/
 *  security.db) with SQLite's locking, so it works whether the service is
 *  running or not: the service reads users from the file at every login.
 *  The password comes only from stdin, never from the command line, where
 *  other users could read it in the process list.  `--legacy-sha256` takes
 *  an original agent's SHA-256 hex hash from stdin instead (the migration
 *  hook): it is verified once at the next login and replaced by Argon2id. */
#include "ctl.h"
#include "fsutil.h"
#include "security/passwd.h"
#include "security/users.h"

#include <stdio.h>
#include <string.h>

static int read_secret(char *buf, size_t len)
{
    if (!fgets(buf, (int)len, stdin))
        return -1;
    buf[strcspn(buf, "\r\n")] = '\0';
    return *buf ? 0 : -1;
}

static int add(ctl_t *ctl, const char *name, bool admin, bool legacy)
{
    char secret[1100], hash[PASSWD_MAX];
    if (read_secret(secret, sizeof secret) < 0) {
        fprintf(stderr, "keelctl: no %s on stdin\n", legacy ? "hash" : "password");
        return 2;
    }
    if (legacy && !passwd_is_legacy(secret)) {
        fprintf(stderr, "keelctl: --legacy-sha256 needs 64 lowercase hex characters\n");
        return 2;
    }
    passwd_params_t params = {
        (unsigned long long)config_int(ctl->config, "security.argon2.opslimit", 3),
        (size_t)config_int(ctl->config, "security.argon2.memlimit_kib", 65536) * 1024,
    };
    int rc = 0;
    if (legacy)
        memcpy(hash, secret, 65);     /* 64 hex characters and the NUL */
    else
        rc = passwd_hash(&params, secret, hash);
    sodium_memzero(secret, sizeof secret);
    if (rc < 0) {
        fprintf(stderr, "keelctl: cannot hash the password\n");
        return 1;
    }
    char dir[4096], path[4200], err[256];
    snprintf(dir, sizeof dir, "%s/security", config_str(ctl->config, "data_dir", "./var/keel"));
    snprintf(path, sizeof path, "%s/security.db", dir);
    store_t *db = fs_mkdirs(dir) == 0 ? users_open(path, err, sizeof err) : NULL;
    if (!db) {
        fprintf(stderr, "keelctl: cannot open %s\n", path);
        return 1;
    }
    rc = users_upsert(db, name, hash, admin);
    store_destroy(&db);
    sodium_memzero(hash, sizeof hash);
    if (rc < 0) {
        fprintf(stderr, "keelctl: cannot store the user\n");
        return 1;
    }
    if (ctl->json) {
        json_t *out = json_pack("{s:s, s:b}", "user_id", name, "admin", admin);
        ctl_print_json(out);
        json_decref(out);
    } else {
        printf("user %s saved%s\n", name, admin ? " (administrator)" : "");
    }
    return 0;
}

static int usage(void)
{
    fprintf(stderr, "usage: keelctl user add NAME [--admin] --password-stdin|--legacy-sha256\n");
    return 2;
}

/* argv[0] is the subcommand; options may come anywhere after it. */
static int run(ctl_t *ctl, int argc, char **argv)
{
    bool admin = false, from_stdin = false, legacy = false;
    const char *name = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--admin"))
            admin = true;
        else if (!strcmp(argv[i], "--password-stdin"))
            from_stdin = true;
        else if (!strcmp(argv[i], "--legacy-sha256"))
            legacy = true;
        else if (argv[i][0] == '-' || name)
            return usage();
        else
            name = argv[i];
    }
    if (argc < 1 || strcmp(argv[0], "add") != 0 || !name || (!from_stdin && !legacy))
        return usage();
    if (!*name || strlen(name) > 128) {
        fprintf(stderr, "keelctl: a user name has 1 to 128 bytes\n");
        return 2;
    }
    return add(ctl, name, admin, legacy);
}

const ctl_command_t ctl_user_command = {
    "user", "user add NAME [--admin] --password-stdin   add or reset a user (reads stdin)", run,
};
