/* nsvm oracle image: multiboot-1 entry, switch to long mode, host IDT,
 * and the VMRUN trampoline.
 *
 * QEMU (-kernel) loads us through the multiboot a.out kludge (flags bit 16:
 * the address fields below are valid, so QEMU does not need an ELF header;
 * it refuses ELF64).  Bochs loads the same flat binary with optramimage and a
 * boot sector (bootsect.S) jumps to the entry address read from this header.
 * Either way we arrive in 32-bit protected mode, paging off, interrupts off.
 */
#include "nsvm/oracle/layout.h"

#define MB_MAGIC 0x1BADB002
#define MB_FLAGS 0x00010000

#define MSR_EFER 0xC0000080
#define EFER_LME 0x100

        .section .text.multiboot, "ax"
        .code32
        .globl mb_header
        .balign 4
mb_header:
        .long MB_MAGIC
        .long MB_FLAGS
        .long -(MB_MAGIC + MB_FLAGS)
        .long mb_header          /* header_addr */
        .long __image_start      /* load_addr */
        .long __load_end         /* load_end_addr */
        .long __bss_end          /* bss_end_addr */
        .long _start32           /* entry_addr (bootsect.S reads it at +28) */

        .text
        .code32
        .globl _start32
_start32:
        cli
        cld
        movl    $boot_stack_top, %esp

        /* Clear 0x300000-0x31ffff (paging structures). */
        movl    $NSVM_OR_PML4_PA, %edi
        movl    $(0x20000 / 4), %ecx
        xorl    %eax, %eax
        rep stosl

        /* PML4[0] -> PDPT (0x301000); PDPT[0..3] -> PD0..PD3 (0x302000..). U=1 so
         * the same tables serve an L2 guest (APM 5.3; permissions ANDed). */
        movl    $(NSVM_OR_PML4_PA + 0x1000 + 0x7), NSVM_OR_PML4_PA
        movl    $0, %ecx
1:      movl    %ecx, %eax
        shll    $12, %eax
        addl    $(NSVM_OR_PML4_PA + 0x2000 + 0x7), %eax
        movl    %eax, NSVM_OR_PML4_PA + 0x1000(,%ecx,8)
        /* PAE PDPT entries: only P (APM 5.3.2: RW/US are reserved in PDPTEs). */
        andl    $~0xfff, %eax
        orl     $1, %eax
        movl    %eax, NSVM_OR_PAE_PDPT_PA(,%ecx,8)
        incl    %ecx
        cmpl    $4, %ecx
        jb      1b

        /* 2048 PD entries: 2 MiB pages, P|RW|US|PS, covering 0..4 GiB. */
        xorl    %ecx, %ecx
2:      movl    %ecx, %eax
        shll    $21, %eax
        orl     $0x87, %eax
        movl    %eax, NSVM_OR_PML4_PA + 0x2000(,%ecx,8)
        movl    %ecx, %edx
        shrl    $11, %edx
        movl    %edx, NSVM_OR_PML4_PA + 0x2004(,%ecx,8)
        incl    %ecx
        cmpl    $2048, %ecx
        jb      2b

        /* Legacy 32-bit page directory: 1024 x 4 MiB PSE pages. */
        xorl    %ecx, %ecx
3:      movl    %ecx, %eax
        shll    $22, %eax
        orl     $0x87, %eax
        movl    %eax, NSVM_OR_PD32_PA(,%ecx,4)
        incl    %ecx
        cmpl    $1024, %ecx
        jb      3b

        /* Nested page table: PML4 -> PDPT (0x311000) -> one PD (0x312000),
         * identity 1 GiB; nested walks are user accesses (APM 15.25.5). */
        movl    $(NSVM_OR_NPT_PML4_PA + 0x1000 + 0x7), NSVM_OR_NPT_PML4_PA
        movl    $(NSVM_OR_NPT_PML4_PA + 0x2000 + 0x7), NSVM_OR_NPT_PML4_PA + 0x1000
        xorl    %ecx, %ecx
4:      movl    %ecx, %eax
        shll    $21, %eax
        orl     $0x87, %eax
        movl    %eax, NSVM_OR_NPT_PML4_PA + 0x2000(,%ecx,8)
        incl    %ecx
        cmpl    $512, %ecx
        jb      4b

        /* Long mode: CR4.PAE, CR3, EFER.LME, CR0.PG (APM 14.6.1). */
        movl    %cr4, %eax
        orl     $0x20, %eax
        movl    %eax, %cr4
        movl    $NSVM_OR_PML4_PA, %eax
        movl    %eax, %cr3
        movl    $MSR_EFER, %ecx
        rdmsr
        orl     $EFER_LME, %eax
        wrmsr
        movl    %cr0, %eax
        orl     $0x80000011, %eax       /* PG | ET | PE */
        andl    $~0x60000000, %eax      /* CD = NW = 0 */
        movl    %eax, %cr0
        lgdt    gdt64_desc
        ljmp    $0x08, $start64

        .code64
start64:
        movw    $0x10, %ax
        movw    %ax, %ds
        movw    %ax, %es
        movw    %ax, %ss
        xorw    %ax, %ax
        movw    %ax, %fs
        movw    %ax, %gs
        movq    $boot_stack_top, %rsp
        call    image_main
        /* image_main does not return; if it does, stop. */
5:      cli
        hlt
        jmp     5b

/* ---- host exception and interrupt entry points ----
 * Every vector pushes (error code or 0, vector) and jumps to a common path that
 * calls host_trap(frame).  host_trap returns 0 to iretq, or 1 when the fault hit
 * the VMRUN window: then we unwind to nsvm_vmrun's caller with status 1. */
        .altmacro
        .macro TRAP vec
        .balign 16
trap_\vec:
        .if (\vec == 8) || (\vec >= 10 && \vec <= 14) || (\vec == 17) || (\vec == 21) || (\vec == 29) || (\vec == 30)
        .else
        pushq   $0
        .endif
        pushq   $\vec
        jmp     trap_common
        .endm

        .balign 16
        .globl trap_table
trap_table:
        .set v, 0
        .rept 256
        TRAP %v
        .set v, v+1
        .endr

trap_common:
        pushq   %rax
        pushq   %rcx
        pushq   %rdx
        pushq   %rsi
        pushq   %rdi
        pushq   %r8
        pushq   %r9
        pushq   %r10
        pushq   %r11
        movq    %rsp, %rdi
        call    host_trap
        testl   %eax, %eax
        jnz     trap_unwind
        popq    %r11
        popq    %r10
        popq    %r9
        popq    %r8
        popq    %rdi
        popq    %rsi
        popq    %rdx
        popq    %rcx
        popq    %rax
        addq    $16, %rsp
        iretq

trap_unwind:
        /* The exception happened on the VMRUN instruction (or with the host
         * state VMRUN left): return 1 from nsvm_vmrun. */
        movq    vmrun_saved_rsp(%rip), %rsp
        movl    $1, %eax
        jmp     vmrun_epilogue

/* uint32_t nsvm_vmrun(uint64_t vmcb_pa, const uint64_t *regs_in, uint64_t *regs_out)
 * Loads the host GPRs the guest will see (SVM does not switch them), runs
 * VMRUN, stores the GPRs the guest left.  Returns 0 after a #VMEXIT, 1 if
 * VMRUN raised an exception (host_trap unwinds here). */
        .globl nsvm_vmrun
nsvm_vmrun:
        pushq   %rbx
        pushq   %rbp
        pushq   %r12
        pushq   %r13
        pushq   %r14
        pushq   %r15
        pushq   %rdx                    /* regs_out */
        movq    %rsp, vmrun_saved_rsp(%rip)
        movq    %rdi, %rax
        movq    %rsi, %r15              /* regs_in; r15 loaded last */
        movq    8*1(%r15), %rcx
        movq    8*2(%r15), %rdx
        movq    8*3(%r15), %rbx
        movq    8*5(%r15), %rbp
        movq    8*6(%r15), %rsi
        movq    8*7(%r15), %rdi
        movq    8*8(%r15), %r8
        movq    8*9(%r15), %r9
        movq    8*10(%r15), %r10
        movq    8*11(%r15), %r11
        movq    8*12(%r15), %r12
        movq    8*13(%r15), %r13
        movq    8*14(%r15), %r14
        movq    8*15(%r15), %r15
        movb    $1, in_vmrun(%rip)
        .globl vmrun_insn
vmrun_insn:
        vmrun
        movb    $0, in_vmrun(%rip)
        /* GPRs now hold what the guest left; stash r15 and find regs_out. */
        movq    %r15, guest_r15_tmp(%rip)
        movq    vmrun_saved_rsp(%rip), %r15
        movq    (%r15), %r15            /* regs_out */
        movq    %rax, 8*0(%r15)
        movq    %rcx, 8*1(%r15)
        movq    %rdx, 8*2(%r15)
        movq    %rbx, 8*3(%r15)
        movq    %rsp, 8*4(%r15)
        movq    %rbp, 8*5(%r15)
        movq    %rsi, 8*6(%r15)
        movq    %rdi, 8*7(%r15)
        movq    %r8, 8*8(%r15)
        movq    %r9, 8*9(%r15)
        movq    %r10, 8*10(%r15)
        movq    %r11, 8*11(%r15)
        movq    %r12, 8*12(%r15)
        movq    %r13, 8*13(%r15)
        movq    %r14, 8*14(%r15)
        movq    guest_r15_tmp(%rip), %rax
        movq    %rax, 8*15(%r15)
        movq    vmrun_saved_rsp(%rip), %rsp
        xorl    %eax, %eax
vmrun_epilogue:
        movb    $0, in_vmrun(%rip)
        popq    %rdx
        popq    %r15
        popq    %r14
        popq    %r13
        popq    %r12
        popq    %rbp
        popq    %rbx
        ret

        .data
        .balign 16
gdt64:
        .quad   0
        .quad   0x00AF9B000000FFFF      /* 0x08: 64-bit code */
        .quad   0x00CF93000000FFFF      /* 0x10: data */
        .quad   0x00CF9B000000FFFF      /* 0x18: 32-bit code */
        .globl  gdt64_tss
gdt64_tss:                              /* 0x20: the 64-bit TSS, filled by main.c load_tss */
        .quad   0
        .quad   0
gdt64_end:
        .balign 8
        .globl gdt64_desc
gdt64_desc:
        .word   gdt64_end - gdt64 - 1
        .quad   gdt64

        .globl in_vmrun
in_vmrun:
        .byte   0
        .balign 8
vmrun_saved_rsp:
        .quad   0
guest_r15_tmp:
        .quad   0

        .bss
        .balign 16
boot_stack:
        .skip   65536
boot_stack_top:
