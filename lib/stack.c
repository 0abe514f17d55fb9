/*
 * stack.c: memory for task stacks. Each stack is one mmap with a guard page
 * below it (unless WHARF_STACK_GUARD=0) and a canary at its lowest usable
 * bytes, checked at every switch away from the task. A stack that runs into
 * its guard page faults; the SIGSEGV handler, running on an alternate
 * signal stack, recognises the running task's guard page and reports the
 * overflow instead of a bare crash. Stacks are cached per scheduler.
 * Not for: switching (ctx.h) or scheduling (sched.c).
 *
 * Why both: a guard page costs a second memory mapping per stack, and
 * vm.max_map_count (65530 by default) then caps a process near 32,000
 * stacks; the canary costs nothing but only sees an overflow after the
 * fact. Measured in bench/runtime (see docs/ARCHITECTURE.md).
 */
#include "config.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>

#include "wharf-int.h"

#ifdef HAVE_VALGRIND_VALGRIND_H
#include <valgrind/valgrind.h>
#else
#define VALGRIND_STACK_REGISTER(lo, hi) 0u
#define VALGRIND_STACK_DEREGISTER(id) ((void)(id))
#endif

#define STACK_CANARY 0x57484152464b5321ULL   /* "WHARFKS!" */
#define STACK_CANARY_WORDS 4
/* munmap costs tens of microseconds once other CPUs must flush their TLBs:
 * keep the stacks of a burst of up to this many tasks for the next burst */
#define STACK_CACHE_MAX 4096

static size_t stack_pagesize(void)
{
    static size_t ps;

    if (ps == 0)
        ps = (size_t)sysconf(_SC_PAGESIZE);
    return ps;
}

bool stack_guard_default(void)
{
    const char *e = getenv("WHARF_STACK_GUARD");

    return !(e && strcmp(e, "0") == 0);
}

void stack_cache_init(struct stack_cache *c, size_t size)
{
    size_t ps = stack_pagesize();

    memset(c, 0, sizeof(*c));
    if (size < WHARF_MIN_STACK)
        size = WHARF_MIN_STACK;
    c->size = (size + ps - 1) / ps * ps;
    c->guard = stack_guard_default();
}

static void stack_canary_set(struct stack *st)
{
    uint64_t *w = (uint64_t *)(void *)st->lo;

    st->trimmed = false;
    for (int i = 0; i < STACK_CANARY_WORDS; i++)
        w[i] = STACK_CANARY;
}

bool stack_canary_ok(const struct stack *st)
{
    const uint64_t *w = (const uint64_t *)(const void *)st->lo;
    int zero = 0;

    for (int i = 0; i < STACK_CANARY_WORDS; i++) {
        if (w[i] == 0)
            zero++;
        else if (w[i] != STACK_CANARY)
            return false;
    }
    /* a trimmed page reads as zeros: untouched since, the canary stands */
    return zero == 0 || (st->trimmed && zero == STACK_CANARY_WORDS);
}

/* Below the saved stack pointer nothing is live (no signal runs on a task
 * stack: SA_ONSTACK, and x86-64's red zone is free at a switch); the
 * margin is for safety only. */
#define STACK_TRIM_MARGIN 256

void stack_trim(struct stack *st, const void *sp)
{
    uintptr_t lo = (uintptr_t)st->lo, top = (uintptr_t)sp;
    size_t ps = stack_pagesize();

    if (!st->map || top < lo + STACK_TRIM_MARGIN || top > (uintptr_t)st->hi)
        return;
    top = (top - STACK_TRIM_MARGIN) & ~(uintptr_t)(ps - 1);
    if (top <= lo)
        return;
    /* the canary shares the lowest page: it will read as zeros */
    if (madvise(st->lo, (size_t)(top - lo), MADV_DONTNEED) == 0)
        st->trimmed = true;
}

void stack_trim_all(struct stack *st)
{
    if (st->map && madvise(st->lo, (size_t)(st->hi - st->lo), MADV_DONTNEED) == 0)
        st->trimmed = true;
}

void stack_cache_trim(struct stack_cache *c, size_t keep)
{
    for (size_t i = 0; i + keep < c->nfree; i++)
        if (!c->free[i].trimmed)
            stack_trim(&c->free[i], c->free[i].hi);
}

static void stack_unmap(struct stack *st)
{
    /* ASan keeps the shadow of unmapped memory: a stack mapped at this
     * address later (the next wharf_run in a test) would inherit the
     * poison of frames that never returned here (a finished task's last
     * switch) */
    ASAN_UNPOISON_MEMORY_REGION(st->lo, (size_t)(st->hi - st->lo));
    VALGRIND_STACK_DEREGISTER(st->vg_id);
    munmap(st->map, st->maplen);
    st->map = NULL;
}

int stack_get(struct stack_cache *c, struct stack *st)
{
    size_t guard = c->guard ? stack_pagesize() : 0;

    if (c->nfree > 0) {
        *st = c->free[--c->nfree];
        /* the last task may have left poisoned frames behind */
        ASAN_UNPOISON_MEMORY_REGION(st->lo, (size_t)(st->hi - st->lo));
        stack_canary_set(st);
        return 0;
    }
    st->maplen = c->size + guard;
    st->map = mmap(NULL, st->maplen, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (st->map == MAP_FAILED) {
        st->map = NULL;
        return -ENOMEM;
    }
    if (guard && mprotect(st->map, guard, PROT_NONE) != 0) {
        munmap(st->map, st->maplen);
        st->map = NULL;
        return -ENOMEM;
    }
    st->lo = (char *)st->map + guard;
    st->hi = (char *)st->map + st->maplen;
    ASAN_UNPOISON_MEMORY_REGION(st->lo, (size_t)(st->hi - st->lo));  /* see stack_unmap */
    st->vg_id = VALGRIND_STACK_REGISTER(st->lo, st->hi);
    stack_canary_set(st);
    return 0;
}

void stack_put(struct stack_cache *c, struct stack *st)
{
    if (st->map == NULL)
        return;
    if (c->nfree == c->cap && c->cap < STACK_CACHE_MAX) {
        size_t ncap = c->cap ? c->cap * 2 : 16;
        struct stack *n = realloc(c->free, ncap * sizeof(*n));

        if (n) {
            c->free = n;
            c->cap = ncap;
        }
    }
    if (c->nfree < c->cap && (size_t)(st->hi - st->lo) == c->size) {
        /* its task may have gone deep again since a trim: trim it anew */
        st->trimmed = false;
        c->free[c->nfree++] = *st;
    }
    else
        stack_unmap(st);
    st->map = NULL;
}

void stack_cache_purge(struct stack_cache *c)
{
    while (c->nfree > 0)
        stack_unmap(&c->free[--c->nfree]);
    free(c->free);
    c->free = NULL;
    c->cap = 0;
}

/* ---- overflow reporting ---------------------------------------------- */

static struct sigaction stack_prev_segv;
static pthread_once_t stack_segv_once = PTHREAD_ONCE_INIT;
static __thread void *stack_altstack;

static void stack_write_msg(const char *msg)
{
    ssize_t r = write(STDERR_FILENO, msg, strlen(msg));
    (void)r;
}

static void stack_segv_handler(int sig, siginfo_t *si, void *uc)
{
    struct task *t = task_current();
    char *addr = si->si_addr;

    if (t && t->stack.map && addr >= (char *)t->stack.map &&
        addr < t->stack.lo + stack_pagesize()) {
        stack_write_msg("wharf: task stack overflow: a task used more than its "
                        "stack size (set a larger stack size); aborting\n");
        signal(SIGABRT, SIG_DFL);
        abort();
    }
    /* not ours: hand over to whoever handled SIGSEGV before, or die */
    if (stack_prev_segv.sa_flags & SA_SIGINFO) {
        stack_prev_segv.sa_sigaction(sig, si, uc);
    } else if (stack_prev_segv.sa_handler != SIG_DFL &&
               stack_prev_segv.sa_handler != SIG_IGN) {
        stack_prev_segv.sa_handler(sig);
    } else {
        signal(sig, SIG_DFL);   /* the fault repeats and kills the process */
    }
}

static void stack_segv_install(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = stack_segv_handler;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &stack_prev_segv);
}

void stack_overflow_handler_install(void)
{
    stack_t cur;

    pthread_once(&stack_segv_once, stack_segv_install);
    if (sigaltstack(NULL, &cur) == 0 && !(cur.ss_flags & SS_DISABLE))
        return;     /* this thread has one (ASan installs its own) */
    stack_t ss;
    ss.ss_size = 64 * 1024;
    ss.ss_sp = malloc(ss.ss_size);
    ss.ss_flags = 0;
    if (ss.ss_sp && sigaltstack(&ss, NULL) == 0)
        stack_altstack = ss.ss_sp;
    else
        free(ss.ss_sp);
}

void stack_overflow_handler_remove(void)
{
    stack_t ss;

    if (!stack_altstack)
        return;
    memset(&ss, 0, sizeof(ss));
    ss.ss_flags = SS_DISABLE;
    sigaltstack(&ss, NULL);
    free(stack_altstack);
    stack_altstack = NULL;
}
