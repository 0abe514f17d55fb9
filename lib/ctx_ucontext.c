/*
 * ctx_ucontext.c: the portable fallback of ctx.h over makecontext /
 * swapcontext, for architectures without a routine (and to test that the
 * fallback still works: configure --with-context=ucontext). swapcontext
 * saves and restores the signal mask with a system call, so a switch costs
 * about 20 times the assembly routine.
 */
#include "config.h"
#include "ctx.h"

#ifdef WHARF_CTX_UCONTEXT
#include <stdint.h>

static __thread struct ctx *ctx_starting;

static void ctx_ucontext_start(void)
{
    struct ctx *c = ctx_starting;
    c->entry(c->arg);
}

void ctx_make(struct ctx *c, char *lo, char *hi, void (*entry)(void *), void *arg)
{
    getcontext(&c->uc);
    c->uc.uc_stack.ss_sp = lo;
    c->uc.uc_stack.ss_size = (size_t)(hi - lo);
    c->uc.uc_link = NULL;
    c->entry = entry;
    c->arg = arg;
    makecontext(&c->uc, ctx_ucontext_start, 0);
}

void ctx_switch(struct ctx *from, struct ctx *to)
{
    ctx_starting = to;
    swapcontext(&from->uc, &to->uc);
}
#else
extern int wharf_ctx_ucontext_unused_;
#endif
