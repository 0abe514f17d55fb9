/*
 * ctx.h: switching between stacks. A hand-written routine per architecture
 * (x86-64, aarch64: save the callee-saved registers and the stack pointer),
 * or ucontext where configure found no routine (WHARF_CTX_UCONTEXT).
 * Not for: scheduling (sched.c) or stack memory (stack.c).
 */
#ifndef WHARF_CTX_H
#define WHARF_CTX_H

#include <stddef.h>

#ifdef WHARF_CTX_UCONTEXT
#include <ucontext.h>
struct ctx {
    ucontext_t uc;
    void (*entry)(void *);
    void *arg;
};
#else
struct ctx {
    void *sp;
};
#endif

#ifdef WHARF_CTX_UCONTEXT
/* Prepares c to run entry(arg) on the stack [lo, hi) when first switched to.
 * entry must never return. */
void ctx_make(struct ctx *c, char *lo, char *hi, void (*entry)(void *), void *arg);

/* Saves the current context in from and resumes to. */
void ctx_switch(struct ctx *from, struct ctx *to);
#else
#include <stdint.h>
#include <string.h>

void wharf_ctx_swap(void **save_sp, void *load_sp);
void wharf_ctx_trampoline(void);

static inline void ctx_switch(struct ctx *from, struct ctx *to)
{
    wharf_ctx_swap(&from->sp, to->sp);
}

static inline void ctx_make(struct ctx *c, char *lo, char *hi,
                            void (*entry)(void *), void *arg)
{
    uintptr_t top = (uintptr_t)hi & ~(uintptr_t)15;
    (void)lo;
#if defined(__x86_64__)
    /* the frame wharf_ctx_swap pops: control words, r15, r14, r13 (entry),
     * r12 (arg), rbx, rbp, then the return address. After the ret the stack
     * pointer is 16-byte aligned, as the trampoline's call needs. */
    uint64_t *f = (uint64_t *)(top - 64);
    memset(f, 0, 64);
    f[0] = 0x1F80 | ((uint64_t)0x037F << 32);   /* MXCSR, x87 control word */
    f[3] = (uint64_t)(uintptr_t)entry;
    f[4] = (uint64_t)(uintptr_t)arg;
    f[7] = (uint64_t)(uintptr_t)wharf_ctx_trampoline;
    c->sp = f;
#elif defined(__aarch64__)
    /* x19 (arg), x20 (entry), ..., x29 = 0, x30 = trampoline, d8-d15 */
    uint64_t *f = (uint64_t *)(top - 160);
    memset(f, 0, 160);
    f[0] = (uint64_t)(uintptr_t)arg;
    f[1] = (uint64_t)(uintptr_t)entry;
    f[11] = (uint64_t)(uintptr_t)wharf_ctx_trampoline;
    c->sp = f;
#else
#error "no context switch routine for this architecture: configure --with-context=ucontext"
#endif
}
#endif

#endif /* WHARF_CTX_H */
