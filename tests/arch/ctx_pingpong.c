/*
 * ctx_pingpong.c: the context switch routine alone, for CPUs this machine
 * does not have: built with a cross compiler and run under qemu-user by
 * `./dev cross` (CI). Two stacks switch back and forth; the callee-saved
 * floating-point state and a deep call chain on the task stack survive.
 */
#include <stdio.h>
#include <sys/mman.h>

#include "ctx.h"

static struct ctx main_ctx, task_ctx;
static double fsum;

static int recurse(int depth)
{
    volatile char frame[256];

    frame[0] = (char)depth;
    return depth ? recurse(depth - 1) + frame[0] : 0;
}

static void task_entry(void *arg)
{
    long *count = arg;

    for (;;) {
        fsum += 1.5 * (double)(*count)++;
        recurse(50);
        ctx_switch(&task_ctx, &main_ctx);
    }
}

int main(void)
{
    size_t size = 1 << 16;
    char *stack = mmap(NULL, size, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    long count = 0;
    register double kept = 3.25;

    if (stack == MAP_FAILED)
        return 2;
    ctx_make(&task_ctx, stack, stack + size, task_entry, &count);
    for (int i = 0; i < 100000; i++) {
        ctx_switch(&main_ctx, &task_ctx);
        kept += 0.0;
    }
    printf("ctx_pingpong: %ld switches, sum %.1f, kept %.2f\n", count, fsum, kept);
    return count == 100000 && kept == 3.25 && fsum == 7499925000.0 ? 0 : 1;
}
