/*
 * wharfd.h: the table of contents of the daemon. Each section lists what
 * one file of src/ offers the others; the public plugin API is in
 * include/wharf/, not here.
 */
#ifndef WHARFD_H
#define WHARFD_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <wharf/plugin.h>

struct plugin_inst;
struct server;
struct event;
struct event_base;
struct wharf_stream;

/* conf.c ----------------------------------------------------------------- */

/* A generation of the configuration: built by conf_load, never changed
 * afterwards, shared by everything that started under it (SIGHUP builds a
 * new one and swaps it in only when it is fully valid). */

enum conf_kind { CONF_KIND_NONE = -1, CONF_TCP, CONF_UNIX, CONF_UDP };
enum conf_log_level { CONF_LOG_ERROR, CONF_LOG_WARNING, CONF_LOG_INFO, CONF_LOG_DEBUG };
enum conf_tls_version { CONF_TLS_1_2, CONF_TLS_1_3 };
enum conf_verify { CONF_VERIFY_NONE, CONF_VERIFY_OPTIONAL, CONF_VERIFY_REQUIRE };

struct conf_limits {
    long lim_max_connections;
    double lim_handshake_timeout;   /* seconds */
    double lim_idle_timeout;
    double lim_drain_timeout;
};

/* One certificate chain and its key (absolute paths, not read yet). The
 * setting paths let the TLS code report "cannot read" against the line. */
struct conf_cert {
    char *cert_file;
    char *cert_key_file;
    char *cert_setting;             /* e.g. "listeners.[1].tls.certificates.[0]" */
};

struct conf_tls {
    struct conf_cert *tls_certs;    /* the first is the default (no SNI match) */
    size_t tls_ncerts;
    int tls_min_version;            /* enum conf_tls_version */
    char *tls_ciphers;              /* NULL: the built-in modern list */
    char *tls_ciphersuites;         /* NULL: OpenSSL's default */
    char **tls_alpn;                /* server preference order */
    size_t tls_nalpn;
    char *tls_client_ca;            /* NULL: none */
    int tls_verify_client;          /* enum conf_verify */
    bool tls_session_tickets;
    char **tls_ticket_keys;         /* the first encrypts, all decrypt */
    size_t tls_nticket_keys;
    bool tls_ragged_eof;
    bool tls_autostart;
    /* the shorthand certificate/key, folded into tls_certs by the loader */
    char *tls_cert_file;
    char *tls_key_file;
};

struct conf_listener {
    char *lst_name;
    char *lst_setting;              /* "listeners.[N]", for messages */
    int lst_line;
    int lst_kind;                   /* enum conf_kind */
    char *lst_address;              /* as written: "127.0.0.1:80", the UNIX path */
    struct sockaddr_storage lst_addr;   /* TCP/UDP only */
    socklen_t lst_addrlen;
    unsigned lst_unix_mode;         /* 0: leave the umask's */
    long lst_backlog;
    bool lst_proxy_protocol;
    struct conf_limits lst_limits;  /* the global ones with this listener's overrides */
    struct conf_tls *lst_tls;       /* NULL: plain */
    char *lst_plugin;
    json_t *lst_options;            /* the handler group without "plugin": always an object */
    struct plugin_inst *lst_inst;   /* set by plugin_load_all; conf_free unrefs it */
    struct ssl_ctx_st *lst_ssl_ctx; /* set by tlsctx_load_all for a tls listener;
                                     * conf_free drops its reference */
};

struct conf {
    char *conf_file;                /* as given on the command line */
    char *conf_dir;                 /* absolute; relative paths were resolved against it */
    long conf_workers;              /* 0: one per CPU (resolved by the caller) */
    char *conf_user;                /* NULL: do not drop privileges */
    char *conf_plugin_dir;
    int conf_log_level;             /* enum conf_log_level */
    char *conf_log_file;            /* NULL: stderr/syslog */
    struct conf_limits conf_limits;
    struct conf_listener *conf_listeners;
    size_t conf_nlisteners;
    json_t *conf_lines;             /* setting path -> line, every setting of the file */
};

/* Problems found, one formatted line each, sorted by line (file order). */
struct conf_error {
    int ce_line;
    char *ce_text;                  /* "FILE:LINE: SETTING: what is wrong" */
};

struct conf_errors {
    struct conf_error *err_items;
    size_t err_count;
};

/* Reads and validates path. Returns 0 with *out set, or -1 with *out NULL
 * and at least one message added to errs (the caller exits 78). */
int conf_load(const char *path, struct conf **out, struct conf_errors *errs);
/* The same, but when the file could be read and parsed *out is set even
 * if errors were found, so that the later stages (plugins, certificates)
 * report theirs in the same run: every problem at once. Returns 0 when
 * nothing was found wrong, -1 otherwise; *out (if set) is the caller's to
 * free, and is fit only for reporting when -1 was returned. */
int conf_parse(const char *path, struct conf **out, struct conf_errors *errs);
void conf_free(struct conf *conf);
/* The line of a setting ("listeners.[0].handler.max_line"), 0 if absent. */
int conf_line(const struct conf *conf, const char *setting);
/* Adds "FILE:LINE: SETTING: message" for a setting of conf, for the later
 * stages (certificates, plugins) that report against the file. */
void conf_report(const struct conf *conf, struct conf_errors *errs,
                 const char *setting, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
const struct conf_listener *conf_listener_find(const struct conf *conf, const char *name);

struct conf_errors *conf_errors_new(void);
void conf_errors_free(struct conf_errors *errs);
void conf_errors_add(struct conf_errors *errs, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* plugin.c --------------------------------------------------------------- */

/* One plugin instance: what init returned for one listener of one
 * generation, with the shared object it came from. Refcounted by the
 * generation (conf_listener.lst_inst) and by each connection, from any
 * worker: the last plugin_unref calls fini, then dlclose. */
struct plugin_inst {
    void *pi_handle;                        /* dlopen's */
    const struct wharf_plugin *pi_desc;     /* inside pi_handle's object */
    void *pi_instance;                      /* init's */
    atomic_long pi_refs;
};

/* Why plugin_open failed: a one-line message, and the option init blamed
 * ("" when none), for the caller to point at its line. */
struct plugin_error {
    char pe_key[64];
    char pe_message[1024];
};

/* Loads PLUGIN_DIR/NAME.so and makes an instance for a listener of
 * env->kind with options. Returns 0 with *out holding one reference, or -1
 * with *out NULL, err filled in, and the object dlclosed: cannot load,
 * no descriptor, incompatible API, descriptor too small, no handler for
 * the kind, no init, or init rejecting the options. */
int plugin_open(const char *plugin_dir, const char *name,
                const struct wharf_plugin_env *env, json_t *options,
                struct plugin_inst **out, struct plugin_error *err);
/* The descriptor checks of plugin_open (API version, size, handler for
 * kind, init), on their own so that tests can feed any descriptor.
 * Returns 0, or -1 with err->pe_message set. */
int plugin_check(const char *name, const char *path, const struct wharf_plugin *d,
                 int kind, struct plugin_error *err);
struct plugin_inst *plugin_ref(struct plugin_inst *p);
/* Drops a reference and clears *pp; NULL is fine. */
void plugin_unref(struct plugin_inst **pp);
/* Opens the plugin of every listener of a fresh generation, reporting each
 * failure against the listener's handler settings (every listener is
 * tried; one left incomplete by config errors is skipped). Returns 0, or -1 when anything was reported; instances already
 * made stay with conf and go with conf_free. */
int plugin_load_all(struct conf *conf, struct conf_errors *errs);

/* tlsctx.c --------------------------------------------------------------- */

/* Builds the SSL_CTX of cl's tls settings (SPEC.md section 2): every
 * certificate chain and key read, checked (the key matches, the
 * certificate is valid now) and selectable by SNI (each certificate's DNS
 * names, or its CN when it has none; left-most-label wildcards; the first
 * is the default); min_version; ciphers and ciphersuites (modern AEAD-only
 * defaults); ALPN in server preference order (no overlap: the handshake
 * fails; a client that offers none is served); client_ca with
 * verify_client; session tickets, with ticket_key_file keys (the first
 * encrypts, all decrypt); SSL_MODE_RELEASE_BUFFERS. Every problem is
 * reported against its setting with conf_report. Returns 0 with *out (one
 * reference), or -1 with *out NULL. */
int tlsctx_new(const struct conf *conf, const struct conf_listener *cl,
               struct conf_errors *errs, struct ssl_ctx_st **out);
/* tlsctx_new for every tls listener of a fresh generation (into
 * lst_ssl_ctx); every listener is tried. 0, or -1 when anything was
 * reported. */
int tlsctx_load_all(struct conf *conf, struct conf_errors *errs);

/* proxyproto.c ------------------------------------------------------------ */

/* What a PROXY header said. */
struct proxy_hdr {
    bool ph_local;                  /* LOCAL / UNKNOWN / AF_UNSPEC: keep the real peer */
    struct sockaddr_storage ph_src; /* the client */
    socklen_t ph_srclen;
    struct sockaddr_storage ph_dst; /* the address it connected to */
    socklen_t ph_dstlen;
};

/* Parse a complete header: a version 1 line without its CRLF, or a whole
 * version 2 header. 0, or WHARF_EINVAL with *why saying what is wrong. */
int proxy_parse_v1(const char *line, size_t len, struct proxy_hdr *h, const char **why);
int proxy_parse_v2(const unsigned char *b, size_t len, struct proxy_hdr *h, const char **why);
/* Reads one header from s, a buffered stream (nothing past the header is
 * consumed). 0; WHARF_EINVAL (malformed, truncated, oversized: *why);
 * the stream's errors (WHARF_ECANCELLED ...). */
int proxy_read(struct wharf_stream *s, struct proxy_hdr *h, const char **why);

/* sd.c ------------------------------------------------------------------- */

/* The systemd protocols, written from their documentation (sd_notify(3),
 * sd_listen_fds(3)); no libsystemd. */

/* Sends one notification ("READY=1", "STATUS=...", several lines at once
 * allowed) to $NOTIFY_SOCKET (a path, or "@name" for the abstract
 * namespace). Returns 1 sent, 0 not under a notify-aware supervisor
 * (no NOTIFY_SOCKET), -errno. Safe from any thread. */
int sd_notify_state(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* WATCHDOG_USEC in seconds when WATCHDOG_PID is unset or ours; 0 if none. */
double sd_watchdog_interval(void);

/* A socket passed by socket activation, with its FileDescriptorName=. */
struct sd_socket {
    int ss_fd;
    char ss_name[256];              /* "" when LISTEN_FDNAMES does not name it */
};
/* The sockets of LISTEN_FDS (3, 4, ...) when LISTEN_PID is ours, named by
 * LISTEN_FDNAMES; made close-on-exec; the variables are unset so that
 * children do not see them. Returns the count (0: none) with *out
 * malloc'd, or -errno. */
int sd_listen_sockets(struct sd_socket **out);

/* stats.c ---------------------------------------------------------------- */

/* The statistics of SPEC.md section 6, as one JSON object (a new
 * reference), summed from every worker's counters; from any thread. NULL:
 * out of memory. */
json_t *stats_snapshot(struct server *srv);
/* The same figures in the Prometheus text format 0.0.4 (malloc'd). */
char *stats_prometheus(const json_t *snapshot);
/* The server the plugins' stats callback reads (wharf_plugin_env); set by
 * server_start, cleared by server_free. */
void stats_attach(struct server *srv);
/* stats_snapshot of the attached server: wharf_plugin_env.stats. NULL when
 * none is attached, or out of memory. */
json_t *stats_current(void);

/* log.c ------------------------------------------------------------------ */

enum log_dest { LOG_DEST_STDERR, LOG_DEST_JOURNAL, LOG_DEST_SYSLOG, LOG_DEST_FILE };

/* Opens the log at level (enum conf_log_level): log_file when set (even
 * with -f), else stderr when foreground or when stderr is the journal,
 * else syslog. Returns 0 or -errno (the file cannot be opened). */
int log_open(int level, bool foreground, const char *file);
/* SIGUSR1: reopens log_file under the same descriptor. 0 or -errno. */
int log_reopen(void);
void log_close(void);
/* Whether log lines go to stderr (plain or the journal). */
bool log_to_stderr(void);
void log_set_level(int level);
bool log_enabled(int level);
void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define log_error(...) log_msg(CONF_LOG_ERROR, __VA_ARGS__)
#define log_warning(...) log_msg(CONF_LOG_WARNING, __VA_ARGS__)
#define log_info(...) log_msg(CONF_LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(CONF_LOG_DEBUG, __VA_ARGS__)

/* At most one line per second through one limiter (one per listener), from
 * any number of threads; the next line says how many were left out. */
struct log_limit {
    atomic_long ll_second;
    atomic_ulong ll_suppressed;
};
void log_limited(struct log_limit *l, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* listener.c ------------------------------------------------------------- */

struct server;
struct worker;
struct wharf_group;
struct wharf_scope;
struct spawn_req;
struct lw_call;

/* The counters of one listener on one worker. Only that worker writes them
 * (ctr_add: no locked instruction); readers sum the workers' blocks. */
struct lst_counters {
    atomic_ulong lc_accepted;
    atomic_ulong lc_closed;
    atomic_ulong lc_rejected;       /* over max_connections */
    atomic_ulong lc_errors;
    atomic_ulong lc_timeouts;       /* ended by idle_timeout */
    atomic_ulong lc_bytes_in;
    atomic_ulong lc_bytes_out;
    atomic_ulong lc_datagrams_in;
    atomic_ulong lc_datagrams_out;
    atomic_ulong lc_handshakes;     /* completed TLS handshakes */
    atomic_ulong lc_handshake_failures;     /* failed or timed out */
    atomic_ulong lc_resumed;
    atomic_ulong lc_ragged_eofs;
    atomic_ulong lc_tls12;          /* handshakes by version */
    atomic_ulong lc_tls13;
} __attribute__((aligned(64)));

static inline void ctr_add(atomic_ulong *c, unsigned long n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

/* What a connection keeps of the listener generation it started under:
 * settings and the plugin instance. Refcounted from any thread. */
struct lgen {
    atomic_long lg_refs;
    char *lg_name;
    char *lg_plugin;                /* the plugin's name, for the stats */
    int lg_kind;                    /* enum conf_kind */
    struct conf_limits lg_limits;
    struct plugin_inst *lg_inst;
    struct ssl_ctx_st *lg_ssl_ctx;  /* NULL: plain; else one reference */
    bool lg_proxy_protocol;         /* connections begin with a PROXY header */
    unsigned lg_tls_flags;          /* WHARF_TLS_* for the connections' streams */
};

/* One listener on one worker: the accept loop (or the datagram handler)
 * and the task group its connections live in. Touched only on its worker,
 * except lw_lst / lw_srv / lw_index, fixed at creation. */
struct lworker {
    struct listener *lw_lst;
    struct server *lw_srv;
    unsigned lw_index;
    struct worker *lw_worker;
    int lw_fd;                      /* given to the task, which adopts it */
    struct lgen *lw_gen;            /* this worker's reference */
    struct lst_counters *lw_ctr;
    struct wharf_group *lw_group;   /* while the task runs */
    struct wharf_scope *lw_accept;  /* while it accepts (UDP: runs the handler) */
    bool lw_swapped;                /* UDP: a new generation; restart the handler */
    double lw_restart_by;           /* UDP: its scope's deadline, set by that request
                                     * (0: none): then it is cancelled */
    bool lw_dgram_waiting;          /* UDP: the handler waits for a datagram */
    bool lw_stopping;
    bool lw_hard;                   /* cancel the connections now */
    atomic_bool lw_hard_req;        /* asked for by the main thread */
    atomic_bool lw_done;            /* its task ended: set by the worker (release),
                                     * read by the main thread (lworker_done) */
};

/* What survives a reload, by listener name: the counters (one block per
 * worker), the count of open connections that max_connections limits, the
 * log limiter. Shared by the listener objects of one name (a reload that
 * moves a listener to a new address makes a new object with the same
 * stats). Refcounted; changed only by the main thread, except the
 * counters and ls_active. */
struct lst_stats {
    long ls_refs;                   /* main thread only */
    char *ls_name;
    atomic_long ls_active;          /* open connections, all workers */
    struct log_limit ls_log;
    unsigned ls_nworkers;
    struct lst_counters *ls_ctr;    /* [ls_nworkers] */
};

/* A listener of the running set: its sockets and tasks. */
struct listener {
    char *lst_name;
    int lst_kind;                   /* enum conf_kind */
    char *lst_address;              /* as configured */
    atomic_int *lst_fds;            /* TCP/UDP: one per worker; UNIX or activated: one;
                                     * -1 once closed (a worker closes its own when its
                                     * task ends on its own) */
    size_t lst_nfds;                /* fixed once bound */
    bool lst_unlink;                /* a UNIX socket file we made */
    bool lst_draining;              /* removed by a reload; connections still open */
    atomic_long lst_running;        /* its worker tasks not finished */
    struct lst_stats *lst_stats;
    struct lworker *lst_workers;    /* [nworkers] */
    struct spawn_req *lst_spawn;    /* [nworkers]: what starts each worker's task */
    unsigned lst_nworkers;
    struct lgen *lst_gen;           /* the current generation */
};

/* Whether lw's task has ended (from any thread). */
static inline bool lworker_done(struct lworker *lw)
{
    return atomic_load_explicit(&lw->lw_done, memory_order_acquire);
}

struct lgen *lgen_new(const struct conf_listener *cl);
struct lgen *lgen_ref(struct lgen *g);
void lgen_unref(struct lgen **gp);
struct lst_stats *lst_stats_new(const char *name, unsigned nworkers);
void lst_stats_unref(struct lst_stats **sp);
/* Binds cl's sockets for nworkers workers (or adopts fd, a socket passed by
 * systemd, when fd >= 0), sharing stats (a reference is taken; NULL: new
 * ones), and makes what starting its tasks takes (each worker's dup of its
 * socket, the requests): server_run_listener cannot fail. Returns 0 with
 * *out, or -errno with *what naming the call that failed ("bind",
 * "listen", "dup", ...). */
int listener_new(const struct conf_listener *cl, unsigned nworkers, int fd,
                 struct lst_stats *stats, struct listener **out, const char **what);
/* Closes the listener's own descriptors (and removes the UNIX socket file
 * it made): once its workers' tasks have closed theirs, new connections
 * are refused. */
void listener_close_sockets(struct listener *l);
void listener_free(struct listener *l);
/* The task of one listener on one worker (arg: the struct lworker). */
int listener_run(void *arg);
/* A request to a worker's task, made ahead so that sending it cannot
 * fail (a reload's commit); each listener_*_with consumes one. NULL: out
 * of memory. An unsent one goes with listener_call_free. */
struct lw_call *listener_call_new(void);
void listener_call_free(struct lw_call *c);
/* Asks lw's task to stop accepting (hard: and cancel its connections);
 * from the main thread. 0 or -ENOMEM. */
int listener_stop(struct lworker *lw, bool hard);
void listener_stop_with(struct lworker *lw, bool hard, struct lw_call *c);
/* Hands lw's task a new generation (a reference is taken) for the
 * connections it accepts from now on; from the main thread. */
void listener_swap_with(struct lworker *lw, struct lgen *gen, struct lw_call *c);

/* conn.c ----------------------------------------------------------------- */

/* Serves an accepted connection (counted in lst_active by the caller) in a
 * new task of lw's group: wraps it (meter with idle_timeout, buffered),
 * calls the handler, counts and logs the outcome, closes it. Takes
 * ownership of sock, whatever happens. */
void conn_start(struct lworker *lw, struct wharf_stream *sock);
/* Runs the datagram handler of lw's listener on sock (owned) until the
 * listener stops or the handler returns on its own; a reload that changes
 * the listener restarts it with the new generation. Returns the handler's
 * last result, a negative one other than WHARF_ECANCELLED counted in
 * `errors`; or -ENOMEM with *what set to why the handler never ran. */
int conn_datagrams(struct lworker *lw, struct wharf_stream *sock, const char **what);

/* server.c --------------------------------------------------------------- */

struct server {
    struct event_base *srv_base;    /* the main thread's */
    struct conf *srv_conf;          /* the running generation */
    struct worker **srv_workers;
    unsigned srv_nworkers;
    /* The set, changed by the main thread under srv_lock (the stats read
     * it from workers): the listeners of srv_conf, in its order, and the
     * ones a reload removed that still drain. */
    pthread_mutex_t srv_lock;
    struct listener **srv_listeners;
    size_t srv_nlisteners;
    struct listener **srv_draining;
    size_t srv_ndraining;
    /* reloads, for the stats (under srv_lock) */
    unsigned long srv_reloads_ok;
    unsigned long srv_reloads_failed;
    char *srv_reload_error;         /* the last failure's first error; NULL: none yet */
    double srv_reload_at;           /* wall clock of the last reload; 0: none yet */
    double srv_started_at;          /* wall clock (seconds since the epoch) */
    double srv_started_mono;        /* wharf_clock() at start, for the uptime */
    struct sd_socket *srv_sd;       /* sockets systemd passed (fd -1 once taken) */
    size_t srv_nsd;
    atomic_long srv_running;        /* listener tasks not finished, all listeners */
    struct event *srv_done_ev;      /* made active when a listener task ends */
    bool srv_stopping;
};

/* Resolves `workers = 0` to the CPUs this process may run on. */
unsigned server_nworkers(const struct conf *conf);
/* "tcp", "unix", "udp". */
const char *server_kind_name(int kind);
/* Makes the listener cl of conf, bound (or on the socket systemd passed
 * under its name), with stats (NULL: new). 0 with *out, or -1 with the
 * reason reported against cl's address setting. */
int server_bind(struct server *srv, const struct conf *conf, const struct conf_listener *cl,
                struct lst_stats *stats, struct listener **out, struct conf_errors *errs);
/* Starts l's task on every worker. */
void server_run_listener(struct server *srv, struct listener *l);
/* Stops l's tasks: no more accepting, then drain (hard: cancel now). */
void server_stop_listener(struct listener *l, bool hard);
/* Binds every listener of conf (or takes the sockets systemd passed).
 * Takes ownership of conf either way. Returns 0; or -1 with a message in
 * errs for each listener that cannot be bound: nothing runs then, and
 * server_free releases what was made. */
int server_start(struct server *srv, struct event_base *base, struct conf *conf,
                 struct conf_errors *errs);
/* Then starts the workers and the listeners' tasks. 0, or -1 (errs). */
int server_run(struct server *srv, struct conf_errors *errs);
/* Stops accepting; connections drain for their drain_timeout (hard: they
 * are cancelled now). The done event fires once every task has ended. */
void server_stop(struct server *srv, bool hard);
/* Called by a listener task as it ends (from its worker). */
void server_task_done(struct server *srv, struct listener *l);
/* After the done event (or a failed start): stops the workers, frees all. */
void server_free(struct server *srv);

/* priv.c ------------------------------------------------------------------ */

/* Refuses to run as root with no `user` unless foreground (-f). 0 or -1
 * with the reason in errs. */
int priv_check(const struct conf *conf, bool foreground, struct conf_errors *errs);
/* Becomes conf's `user` (its uid, gid and groups) when set. 0, or -1 with
 * the reason reported against the `user` setting. */
int priv_drop(const struct conf *conf, struct conf_errors *errs);

/* reload.c --------------------------------------------------------------- */

/* Loads path into a fresh generation: the file, the certificates, the
 * plugins (each tried even when the file has errors: every problem at
 * once). What -t, the start and SIGHUP run. NULL with errs filled. */
struct conf *reload_load(const char *path, struct conf_errors *errs);
/* SIGHUP: loads path into a new generation (every check of a start,
 * certificates and plugins included) and commits it by listener name:
 * KEEP (same address: the same sockets, the new generation for new
 * connections), NEW (bound; any failure changes nothing), DROP (stops
 * accepting, drains). Counts and records the outcome for the stats.
 * Returns 0, or -1 when nothing changed (every error logged). */
int reload_run(struct server *srv, const char *path);

#endif /* WHARFD_H */
