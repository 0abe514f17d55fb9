/*
 * wharf-int.h: the inside of libwharf (the runtime), for its own files, the
 * daemon and the unit tests. Plugins never see this: they get include/wharf/.
 * A table of contents: prototypes grouped under the file that defines them.
 */
#ifndef WHARF_INT_H
#define WHARF_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <sys/queue.h>
#include <event2/event.h>
#include <event2/event_struct.h>

#include <wharf/wharf.h>

#include "ctx.h"

#ifndef TAILQ_FOREACH_SAFE
#define TAILQ_FOREACH_SAFE(var, head, field, tvar)                    \
    for ((var) = TAILQ_FIRST(head);                                   \
         (var) && ((tvar) = TAILQ_NEXT(var, field), 1);               \
         (var) = (tvar))
#endif

#if defined(__SANITIZE_ADDRESS__)
#define WHARF_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define WHARF_ASAN 1
#endif
#endif
#ifdef WHARF_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#else
#define ASAN_UNPOISON_MEMORY_REGION(a, s) ((void)(a), (void)(s))
#endif

struct sched;
struct task;
struct scope;

#define WHARF_DEFAULT_STACK (64 * 1024)
#define WHARF_MIN_STACK (16 * 1024)

/* stack.c: task stacks (mmap, guard page, canary, cache) */
struct stack {
    void *map;          /* the whole mapping, guard page included */
    size_t maplen;
    char *lo;           /* lowest usable byte (canary lives here) */
    char *hi;           /* one past the highest usable byte */
    unsigned vg_id;     /* valgrind stack id */
    bool trimmed;       /* pages given back since the canary was written */
};
struct stack_cache {
    struct stack *free;     /* array of cached stacks */
    size_t nfree, cap;
    size_t size;            /* usable size of the stacks it holds */
    bool guard;
};
void stack_cache_init(struct stack_cache *c, size_t size);
/* Gives the pages of st wholly below sp back to the kernel (they read as
 * zeros when touched again): a blocked task keeps only what its frames
 * use. */
void stack_trim(struct stack *st, const void *sp);
/* Gives every page of st back: for a task with no frame (parked). */
void stack_trim_all(struct stack *st);
/* Trims every cached stack but the `keep` most recently put back. */
void stack_cache_trim(struct stack_cache *c, size_t keep);
void stack_cache_purge(struct stack_cache *c);
int stack_get(struct stack_cache *c, struct stack *st);
void stack_put(struct stack_cache *c, struct stack *st);
bool stack_canary_ok(const struct stack *st);
bool stack_guard_default(void);
void stack_overflow_handler_install(void);   /* per thread: sigaltstack + SIGSEGV */
void stack_overflow_handler_remove(void);

/* scope.c: cancel scopes */
struct scope {
    struct scope *parent;
    struct task *owner;                 /* the task that entered it (NULL: root) */
    struct sched *sched;
    TAILQ_HEAD(, scope) children;
    TAILQ_ENTRY(scope) sibling;
    TAILQ_HEAD(, task) tasks;           /* tasks whose innermost scope this is */
    double deadline;
    size_t heap_idx;                    /* in sched->deadlines, or SIZE_MAX */
    unsigned flags;                     /* WHARF_SCOPE_* */
    bool cancel_called;
    bool eff_cancelled;                 /* cancelled here or above, up to a shield */
    bool caught;
    bool active;
};
void scope_init_root(struct scope *sc, struct sched *s);
int scope_enter(struct scope *sc, struct task *t, double deadline, unsigned flags);
int scope_exit(struct scope *sc, struct task *t, int rc);
void scope_cancel(struct scope *sc);
bool scope_effectively_cancelled(const struct scope *sc);
/* After sc's shield or cancellation changed: its eff_cancelled and, where
 * that changes, its subtree's. */
void scope_refresh(struct scope *sc);
void scope_attach_task(struct scope *sc, struct task *t);
void scope_detach_task(struct task *t);
void scope_recheck(struct scope *sc);

/* sched.c: the per-thread scheduler, ready queue, blocking and waking */
enum task_state { TASK_READY, TASK_RUNNING, TASK_BLOCKED, TASK_PARKED, TASK_DONE };

#define TASK_PARK_STREAMS 4     /* wharf_park_on wakes armed per park */

struct task {
    struct ctx ctx;
    struct sched *sched;
    struct stack stack;
    enum task_state state;
    bool cancel_woken;          /* the last wake came from a cancellation */
    bool cancellable;           /* the current block may be ended by cancel */
    TAILQ_ENTRY(task) ready_link;
    TAILQ_ENTRY(task) scope_link;
    TAILQ_ENTRY(task) group_link;
    struct scope *scope;        /* innermost scope */
    struct scope root;          /* own scope, child of the spawner's group scope */
    wharf_task_fn fn;
    wharf_start_fn start_fn;
    void *arg;
    int result;
    struct wharf_group *group;  /* NULL for a top-level task */
    struct start_rec *start;    /* while wharf_group_start waits for started() */
    bool started;               /* wharf_task_started was called */
    int remote_refs;            /* cross-thread wakes in flight (atomic) */
    bool zombie;                /* finished, freed once remote_refs is 0 */
    uint64_t id;
    TAILQ_ENTRY(task) idle_link;    /* on sched.idle: blocked, stack untrimmed */
    bool on_idle;
    unsigned idle_tick;             /* sched.trim_tick when it blocked */
    /* parking (task_park): a parkable task's struct is on the heap, not at
     * its stack's top, so that it can wait with no frame at all */
    bool heap;
    wharf_task_fn park_fn;          /* run from a fresh stack when woken */
    void *park_arg;
    double park_deadline;           /* wakes it (root scope's deadline) */
    int (*cont_fn)(void *arg);      /* the handler's continuation (wharf_park) */
    void *cont_arg;
    struct wharf_stream *park_on[TASK_PARK_STREAMS];    /* armed wakes */
    unsigned npark_on;
};

struct sched {
    struct event_base *base;
    bool own_base;
    struct ctx loop_ctx;        /* the thread's own context */
    struct task *current;
    TAILQ_HEAD(, task) ready;
    struct event run_ev;
    bool run_pending;
    struct event timer_ev;      /* armed to the earliest scope deadline */
    double timer_at;
    struct scope **deadlines;   /* binary min-heap on deadline */
    size_t ndeadlines, capdeadlines;
    struct scope root;          /* every top-level task lives in it */
    struct stack_cache stacks;
    size_t ntasks;              /* live tasks */
    size_t nblocked;
    uint64_t next_id;
    bool stopping;              /* leave the loop when ntasks reaches 0 */
    /* wakes from other threads */
    pthread_mutex_t rq_mtx;
    struct task **rq, **rq_spare;
    size_t rq_len, rq_cap, rq_spare_cap;
    struct event rq_ev;
    struct spawn_req *spawn_q;  /* top-level tasks asked for by other threads */
    struct spawn_req *spawn_retry;      /* of those, the ones that found no memory */
    struct event spawn_retry_ev;        /* ... tried again at this tick */
    bool spawn_retry_armed;
    bool spawn_retry_warned;            /* said so once, until they all started */
    bool stop_requested;        /* by another thread: cancel everything, leave */
    bool awake;                 /* in its run loop: checks rq before sleeping (rq_mtx) */
    double last_remote;         /* when the last wake from another thread came */
    int budget;                 /* resumptions left before the loop polls I/O */
    struct task *dead;          /* finished task whose stack is still in use */
    const void *loop_stack_lo;  /* the thread's own stack, for ASan */
    size_t loop_stack_size;
    uint64_t switches;          /* statistics: task switches */
    TAILQ_HEAD(, task) idle;    /* blocked since the last trim tick, untrimmed */
    struct event trim_ev;       /* the tick: trims their stacks (sched.c) */
    bool trim_armed;
    unsigned trim_tick;         /* ticks so far */
    size_t nparked;             /* tasks waiting without a frame (task_park) */
};

struct sched *sched_current(void);
struct task *task_current(void);
struct sched *sched_new(struct event_base *base);  /* base NULL: own one */
void sched_free(struct sched *s);
/* Runs the loop until stopping is set and no task is left. */
int sched_loop(struct sched *s);
/* A top-level task asked for by another thread. */
struct spawn_req {
    struct spawn_req *next;
    wharf_task_fn fn;
    void *arg;
    bool caller_owned;          /* not freed by the scheduler */
};
/* From any thread: spawn a top-level task / cancel all and leave the loop.
 * A request whose task finds no memory (a stack) is tried again every
 * tenth of a second until it starts: its caller counts on fn
 * running (a listener's worker, a reload's swap), and the scheduler's
 * stop drops it. */
int sched_spawn_remote(struct sched *s, wharf_task_fn fn, void *arg);
/* The same with a request the caller allocated ahead (caller_owned set),
 * so that asking cannot fail; the request must live until fn runs. */
void sched_spawn_remote_req(struct sched *s, struct spawn_req *r, wharf_task_fn fn, void *arg);
void sched_stop_remote(struct sched *s);
/* Creates a task running fn(arg) (or start_fn) in scope `parent`; ready. */
struct task *task_spawn(struct sched *s, struct scope *parent, wharf_task_fn fn,
                        wharf_start_fn start_fn, void *arg);
/* The same with the task's struct on the heap: a task that can park. */
struct task *task_spawn_parkable(struct sched *s, struct scope *parent, wharf_task_fn fn,
                                 void *arg);
/* From a parkable task, before its function returns: instead of ending,
 * the task then waits with no frame, its stack's pages given back at the
 * next trim tick, still a member of its group and scopes. task_wake, a
 * cancellation reaching it, or the clock reaching deadline (WHARF_FOREVER:
 * none) runs fn(arg) on it from the top of its stack, with the wakes armed
 * by wharf_park_on withdrawn. A task cancelled when it would park runs fn
 * at once. 0, or WHARF_ENOTSUP (not a parkable task). */
int task_park(wharf_task_fn fn, void *arg, double deadline);
/* The continuation a handler gave wharf_park (then forgotten): true with
 * *fn and *arg, false when it gave none. */
bool task_take_continuation(int (**fn)(void *arg), void **arg);
/* Suspends the current task until task_wake(). Returns 0, or
 * WHARF_ECANCELLED when the task is (or becomes) cancelled: then it does not
 * suspend, or is woken. The caller must undo its registration either way
 * and must tolerate spurious returns (re-check its condition). */
int task_block(void);
/* The same, but cancellation neither prevents nor ends the wait. */
void task_block_uncancellable(void);
/* Makes a blocked task ready. From the task's own scheduler thread. */
void task_wake(struct task *t);
/* The same from any thread (takes a reference so the task outlives the
 * wake). */
void task_wake_any(struct task *t);
/* Wakes t with a cancellation if it waits cancellably. */
void task_wake_cancel(struct task *t);
bool task_cancelled(const struct task *t);
void sched_pass(void);
bool sched_yield_via_loop(void);
void sched_mutex_init(pthread_mutex_t *m);   /* for locks shared by workers */
void sched_deadline_add(struct sched *s, struct scope *sc);
void sched_deadline_del(struct sched *s, struct scope *sc);

/* iowait.c: waiting for a descriptor on the scheduler's event loop
 * (edge-triggered, registered once per descriptor) */
struct iowait {
    struct event ev;
    struct task *rd, *wr;
    void (*rd_fn)(void *arg);   /* or a call at the next read edge (iowait_notify) */
    void *rd_arg;
    struct sched *sched;
    int fd;
    bool added;
    bool rd_eagain;     /* a read said EAGAIN (or drained it) and no read edge came since */
    bool early_close;   /* the loop reports the peer's end with the edge (EV_CLOSED) */
    bool rd_hup;        /* ... and it did: a read must still see it */
};
void iowait_init(struct iowait *w, int fd);
/* Waits until fd is readable (EV_READ), writable (EV_WRITE), or either (both
 * flags). Returns 0 (or spuriously 0: retry the I/O), WHARF_ECANCELLED,
 * WHARF_EBUSY (another task waits for that direction), WHARF_EINVAL. */
int iowait_wait(struct iowait *w, short what);
/* Instead of a task waiting: fn(arg) is called from the loop at the next
 * read edge, once (wharf_notify_readable). Returns 0; 1 when a read edge
 * came since the last EAGAIN (read again: nothing is armed); WHARF_EBUSY
 * (a task or a call waits for reading already); -ENOMEM. fn NULL withdraws. */
int iowait_notify(struct iowait *w, void (*fn)(void *arg), void *arg);
/* Unregisters and wakes the waiters (they must then see the stream closed);
 * a call armed by iowait_notify is dropped, not made. */
void iowait_fini(struct iowait *w);

/* group.c: task groups */
struct start_rec {             /* on the stack of a task in wharf_group_start */
    struct task *host;
    void *value;
    int rc;
    bool started, done;
};
void group_child_done(struct task *t, bool cancelled);
/* wharf_group_spawn for a task that can park (task_spawn_parkable). */
int group_spawn_parkable(struct wharf_group *g, wharf_task_fn fn, void *arg);

/* threadpool.c: the pool for blocking work */
int threadpool_run(int (*fn)(void *), void *arg);
void threadpool_shutdown(void);

/* worker.c: a thread running a scheduler */
struct worker;
struct worker *worker_start(const char *name);
/* Spawns fn(arg) as a top-level task on w, from any thread. 0 or -ENOMEM. */
int worker_spawn(struct worker *w, wharf_task_fn fn, void *arg);
/* The same with a request allocated ahead (see sched_spawn_remote_req):
 * cannot fail. */
void worker_spawn_req(struct worker *w, struct spawn_req *r, wharf_task_fn fn, void *arg);
/* Cancels every task of w, waits for them and the thread; frees w. */
void worker_stop(struct worker *w);

/* stream.c: helpers for stream implementations */
int stream_attr_copy(void *out, size_t *len, const void *val, size_t vlen);
/* Receives up to max (at most STREAM_SCRATCH) bytes of s like
 * wharf_receive, but holds no buffer while it waits: it waits for s to be
 * readable, then takes the bytes with receive_nowait into a per-thread
 * scratch area; *data points at them until the caller next suspends. A
 * stream without receive_nowait or wait gets a buffer allocated into
 * *own (NULL at first; the caller frees it), used from then on. For
 * wrappers that keep many idle streams (TLS, buffered). */
/* receive_from without waiting on a UDP stream (WHARF_EWOULDBLOCK), for
 * the daemon's datagram meter; WHARF_ENOTSUP for another kind. */
ssize_t udp_receive_from_nowait(struct wharf_stream *s, void *buf, size_t max,
                                struct sockaddr *from, socklen_t *fromlen);
#define STREAM_SCRATCH (16 * 1024 + 512)
ssize_t stream_receive_scratch(struct wharf_stream *s, size_t max,
                               const unsigned char **data, unsigned char **own);
int stream_attr_int(void *out, size_t *len, int v);

/* addr.c: name resolution and address helpers for socket.c and udp.c */
#define ADDR_MAX 8                  /* addresses kept from one resolution */
struct addr_one {
    struct sockaddr_storage ss;
    socklen_t len;
};
struct addr_set {                   /* lives in the caller; nothing to free */
    size_t n;
    struct addr_one v[ADDR_MAX];
};
/* Numeric hosts at once, names with getaddrinfo on the pool (in the order it
 * gives). Returns 0, WHARF_EINVAL, -ENOENT (no such name), -EHOSTUNREACH
 * (resolver failure), -ENOMEM. */
int addr_resolve(const char *host, unsigned port, int socktype, struct addr_set *set);
/* 0.0.0.0 or :: with port. */
int addr_wildcard(int family, unsigned port, struct addr_one *a);
/* The local address to bind for a remote of `family`: the first of locals
 * with that family, or (no local host given) the wildcard with port.
 * 0 or -EAFNOSUPPORT. */
int addr_pick_local(const struct addr_set *locals, bool have_host, int family,
                    unsigned port, struct addr_one *out);
/* The port of an IPv4/IPv6 address; -ENOENT for other families. */
int addr_port(const struct sockaddr *sa);
/* How socket.c and udp.c make one connection attempt and wrap its fd. */
struct addr_connector {
    int socktype;
    int (*connect_one)(const struct addr_one *remote, const struct addr_one *local);
    int (*wrap)(int fd, const struct addr_one *remote, struct wharf_stream **out);
};
/* Resolves host (and local_host), then tries each address in turn with a
 * local address of its family (when local_host or local_port is given).
 * 0, or the last failure (-ECONNREFUSED ...), WHARF_ECANCELLED, -ENOMEM. */
int addr_connect(const struct addr_connector *c, const char *host, unsigned port,
                 const char *local_host, unsigned local_port, struct wharf_stream **out);

/* socket.c: descriptor helpers shared with udp.c */
/* Checks that fd is a socket of type (and listening when listening is 1,
 * not when 0; -1: either), reads its family (AF_INET, AF_INET6, AF_UNIX),
 * then makes it non-blocking and close-on-exec. 0 or WHARF_EINVAL. */
int sock_adopt_fd(int fd, int type, int listening, int *family);
/* A new non-blocking, close-on-exec socket with WHARF_REUSE_PORT /
 * WHARF_V6ONLY applied (and SO_REUSEADDR when reuse_addr), bound to a
 * (NULL: not bound). The descriptor, or -errno. */
int sock_open_bound(int family, int type, unsigned flags, bool reuse_addr,
                    const struct addr_one *a);
/* Suspends until w's descriptor is ready for events (WHARF_READABLE |
 * WHARF_WRITABLE). 0, WHARF_ECLOSED (iowait_fini ran), WHARF_ECANCELLED,
 * WHARF_EBUSY (another task waits for that direction). */
int sock_release(struct iowait *w, int *fd, bool *closed);
int sock_wait_fd(struct iowait *w, unsigned events);
/* getattr for sockets: FAMILY, LOCAL_*, REMOTE_* (from peer; NULL: none),
 * FD. Ports are -ENOENT for AF_UNIX. */
int sock_getattr_fd(int fd, int family, const struct addr_one *peer, int attr,
                    void *out, size_t *len);

/* buffered.c: for STARTTLS (tls.c), which hands the bytes a buffered layer
 * holds to the TLS engine under it */
struct evbuffer;
/* The buffer of a buffered stream, or NULL when s is another kind. */
struct evbuffer *buffered_evbuffer(struct wharf_stream *s);

/* tls.c */
/* Whether the TLS stream under s saw its transport end without
 * close_notify (a ragged EOF), for the daemon's counters. */
bool tls_ragged_seen(struct wharf_stream *s);
/* For a lingering close: when a started TLS stream is under s, says
 * goodbye (close_notify, as its close would, in the same bounds) without
 * closing the transport, and returns the transport, where the caller can
 * end its writing and drain the peer's last bytes before the close (a close
 * with unread input resets the connection and can destroy the end of the
 * reply). NULL for a standard-mode stream: its close says goodbye and
 * reads the peer's bytes until its close_notify (that drains already).
 * Otherwise s itself. The TLS stream's close then only closes. */
struct wharf_stream *tls_close_notify(struct wharf_stream *s);
/* Bounds the handshake wharf_start_tls runs on the deferred TLS stream s
 * to seconds (a daemon's handshake_timeout, as at accept): it then fails
 * with WHARF_ETIMEDOUT. */
void tls_set_handshake_timeout(struct wharf_stream *s, double seconds);
/* Why the handshake wharf_start_tls ran on the TLS stream under s failed
 * (its negative code: WHARF_ETIMEDOUT, WHARF_EBROKEN, ...; the reason is
 * wharf_tls_error), or 0 when none failed: for the daemon's counters. A
 * cancellation from outside is not a failure. */
int tls_handshake_failure(struct wharf_stream *s);

/* tlsbio.c: ciphertext queues between OpenSSL and the transport, one BIO
 * for both directions. A queue holds a buffer only while it holds bytes. */
struct tls_queue {
    unsigned char *q_buf;           /* owned bytes at q_buf + q_off */
    size_t q_off, q_len, q_cap;
    const unsigned char *q_lent;    /* borrowed bytes, after the owned ones */
    size_t q_lent_len;
    size_t q_big, q_big_from;       /* a first write of q_big_from gets q_big */
};
struct tlsbio {
    struct tls_queue io_in, io_out;
    bool io_in_eof;                 /* the transport ended: reads return 0 */
};
/* A BIO over io (for SSL_set_bio(ssl, b, b)); out_big: the buffer a first
 * large write of output starts (sends batch up to about that much). */
struct bio_st *tlsbio_new(struct tlsbio *io, size_t out_big);
void tlsbio_clear(struct tlsbio *io);
/* Input: lend n bytes at p to the next SSL call (no copy); after it, and
 * before anything can suspend, tlsbio_keep copies what it left unread. */
void tlsbio_lend(struct tlsbio *io, const void *p, size_t n);
int tlsbio_keep(struct tlsbio *io);
int tlsbio_put_in(struct tlsbio *io, const void *p, size_t n);
size_t tlsbio_get_in(struct tlsbio *io, void *out, size_t max);
size_t tlsbio_in_pending(const struct tlsbio *io);
size_t tlsbio_out_pending(const struct tlsbio *io);
/* Output: takes every pending byte (*data, *len) with the buffer holding
 * them (returned, for free()); OpenSSL's next writes start a new one. */
void *tlsbio_take(struct tlsbio *io, const unsigned char **data, size_t *len);

/* error.c */

#endif /* WHARF_INT_H */
