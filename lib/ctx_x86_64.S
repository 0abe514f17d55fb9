/*
 * ctx_x86_64.S: stack switch for x86-64 System V.
 * wharf_ctx_swap(void **save_sp, void *load_sp) pushes the callee-saved
 * registers, the MXCSR and x87 control words, stores the stack pointer in
 * *save_sp, loads load_sp and pops the same frame there.
 * A new context's frame (built by ctx_make) returns into
 * wharf_ctx_trampoline with r12 = argument and r13 = entry.
 */
	.text
	.globl	wharf_ctx_swap
	.hidden	wharf_ctx_swap
	.type	wharf_ctx_swap,@function
	.p2align 4
wharf_ctx_swap:
	.cfi_startproc
	pushq	%rbp
	pushq	%rbx
	pushq	%r12
	pushq	%r13
	pushq	%r14
	pushq	%r15
	subq	$8, %rsp
	stmxcsr	(%rsp)
	fnstcw	4(%rsp)
	movq	%rsp, (%rdi)
	movq	%rsi, %rsp
	ldmxcsr	(%rsp)
	fldcw	4(%rsp)
	addq	$8, %rsp
	popq	%r15
	popq	%r14
	popq	%r13
	popq	%r12
	popq	%rbx
	popq	%rbp
	ret
	.cfi_endproc
	.size	wharf_ctx_swap, .-wharf_ctx_swap

	.globl	wharf_ctx_trampoline
	.hidden	wharf_ctx_trampoline
	.type	wharf_ctx_trampoline,@function
	.p2align 4
wharf_ctx_trampoline:
	.cfi_startproc
	.cfi_undefined rip
	movq	%r12, %rdi
	callq	*%r13
	ud2
	.cfi_endproc
	.size	wharf_ctx_trampoline, .-wharf_ctx_trampoline

	.section .note.GNU-stack,"",@progbits
