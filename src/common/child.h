/*  child: one program Keel runs and keeps running, the only place in Keel
 *  that makes a process.  Everything a supervisor needs and gets wrong when
 *  each writes its own (supervisord's and Monit's lessons):
 *    - spawn with posix_spawn (never fork in a threaded process) into a
 *      process group of its own, so a stop reaches the program's own
 *      children too; its environment is planned once, before any thread
 *      can change keeld's, from keeld's own plus the configured variables;
 *    - output capture: appended to a log file, and/or logged line by line
 *      as "[<name>] <line>" (stderr at ERROR level); the pipes are always
 *      read, since a child whose pipe fills up blocks;
 *    - its exit status kept, and the child always reaped;
 *    - stop: SIGTERM, a grace period, then SIGKILL, and reaped;
 *    - restarts by policy, with exponential backoff to a cap; after
 *      max_restarts quick failures in a row it gives up, and says so on
 *      ErrorBus (agent_restart_give_up): never a silent give-up.  A run
 *      longer than stable_s starts the count again;
 *    - dependency order: a child starts only once its dependencies run,
 *      starting it starts them, and a dependency given up on fails it too.
 *  CoreOrchestrator's supervisor owns every child; another service that
 *  wants an agent restarted asks it with child_ask_restart.
 *
 *  Nothing here blocks or makes a thread: the owner calls child_run from
 *  its own loop (polling child_fds for output), which does all the work
 *  due.  Not thread-safe: the owner serialises every call on its children
 *  (CoreOrchestrator's supervisor holds its lock). */
#ifndef KEEL_CHILD_H
#define KEEL_CHILD_H
#include <jansson.h>
#include <poll.h>
#include <stdbool.h>
#include <sys/types.h>

#include "config.h"
#include "errpub.h"

typedef enum { CHILD_RESTART_ON_FAILURE, CHILD_RESTART_ALWAYS, CHILD_RESTART_NEVER } child_restart_t;

/* Where a child's stdout and stderr go; either or both. */
enum { CHILD_OUTPUT_FILE = 1, CHILD_OUTPUT_LOG = 2 };

typedef struct {
    double backoff_base_s;      /* before restart n: base * 2^(n-1)... */
    double backoff_max_s;       /* ...at most this */
    double stable_s;            /* a run this long resets the restart count */
    double stop_grace_s;        /* SIGTERM to SIGKILL */
    int max_restarts;           /* quick failures in a row before giving up */
} child_timing_t;

typedef struct {
    const char *name;           /* in logs, events and replies */
    json_t *argv;               /* [program, arguments...], strings; copied */
    json_t *env;                /* {name: value} over keeld's environment; copied; NULL: none */
    const char *cwd;            /* NULL or "": keeld's */
    int output;                 /* CHILD_OUTPUT_FILE and/or CHILD_OUTPUT_LOG */
    const char *log_path;       /* the file of CHILD_OUTPUT_FILE */
    child_restart_t restart;    /* what follows an exit of a program that ran */
    child_timing_t timing;
    errpub_t *errors;           /* borrowed: where a give-up is reported; may be NULL */
} child_args_t;

typedef struct child_t child_t;

/* Copies what it needs from args; starts nothing before child_run. */
child_t *child_new(const child_args_t *args);
/* Stops the child first (synchronously, see child_stop_all). */
void child_destroy(child_t **self_p);
/* `dependency` (borrowed, outliving self) must run before self starts.
 * -1, and nothing changes, when that would make a cycle. */
int child_depends_on(child_t *self, child_t *dependency);

/* What the owner wants; child_run makes it so.  Starting a running child
 * changes nothing; starting one forgets an earlier give-up, and starts
 * its dependencies that are not wanted. */
void child_start(child_t *self);
/* SIGTERM now, SIGKILL once the grace has passed; not restarted. */
void child_stop(child_t *self);
/* Stops it and starts it again at once, without backoff. */
void child_restart(child_t *self);
/* 0 when the program can be started now (found and executable, its
 * directory there), else -1 with the reason in why. */
int child_check(child_t *self, char *why, size_t len);

/* Does what is due: reads output, reaps an exit (and plans the restart or
 * gives up), escalates a stop to SIGKILL, spawns when wanted and ready. */
void child_run(child_t *self);
/* Its output pipes, for the owner's poll (POLLIN); returns how many (0..2). */
int child_fds(child_t *self, struct pollfd *fds);
/* Stops every child of the list at once and returns when all are reaped:
 * each gets its grace after SIGTERM, then SIGKILL. */
void child_stop_all(child_t **children, size_t n);

pid_t child_pid(child_t *self);         /* 0 when not running */
bool child_failed(child_t *self);       /* given up on */
int child_starts(child_t *self);        /* processes spawned so far */
/* {state, pid, restarts, last_exit, started_at, log[, error]} (a new
 * reference): state is running, stopping, failed, backoff, starting,
 * exited or stopped. */
json_t *child_status(child_t *self);
/* Seconds before restart number `attempt` (1-based): base * 2^(attempt-1), capped. */
double child_backoff(int attempt, double base_s, double max_s);

/* From another service: asks CoreOrchestrator at `endpoint` to restart
 * `agent` (its restart_agent), as `caller` with `reason` (may be NULL).
 * The route is an administrator's; the caller signs itself a short JWT with
 * scope admin from the shared key file of `config` (token.h) rather than
 * being trusted by its address, which every process of its machine
 * shares, while the key file is Keel's services' alone; a token also holds
 * across machines, with CURVE or without.  0, or -1 with CoreOrchestrator's
 * reason, or the transport's, in why. */
int child_ask_restart(config_t *config, const char *endpoint, const char *caller, const char *agent,
                      const char *reason, int timeout_ms, char *why, size_t len);
#endif
