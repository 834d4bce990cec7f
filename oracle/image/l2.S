/* L2 programs (the menu of include/nsvm/oracle/layout.h) and the L2
 * exception stubs.  Assembled here as position-independent bytes and copied
 * by image_main to NSVM_OR_L2_CODE_PA / NSVM_OR_L2_STUBS_PA.  Every encoding
 * below means the same in 32-bit and 64-bit mode (no REX prefixes), so the
 * menu serves legacy, PAE and long-mode guests alike. */
#include "nsvm/oracle/layout.h"

        .section .rodata.l2, "a"
        .code64

/* One program = one instruction, then VMMCALL (exit 0x81 when intercepted),
 * HLT (0x78), and a spin loop. */
        .macro PROG body:vararg
        .balign 64
        \body
        vmmcall
        hlt
1:      pause
        jmp     1b
        .endm

        .balign 64
        .globl l2_programs
l2_programs:
        PROG    vmmcall                         /* 0 */
        PROG    hlt                             /* 1 */
        PROG    cpuid                           /* 2 */
        PROG    rdmsr                           /* 3 */
        PROG    wrmsr                           /* 4 */
        PROG    inb %dx, %al                    /* 5 */
        PROG    outb %al, %dx                   /* 6 */
        PROG    ud2                             /* 7 */
        PROG    int3                            /* 8 */
        PROG    .byte 0x8b, 0x03                /* 9: mov eax, [rbx] / [ebx] */
        PROG    .byte 0x89, 0x03                /* 10: mov [rbx], eax */
        PROG    stgi                            /* 11 */
        PROG    clgi                            /* 12 */
        PROG    .byte 0x0f, 0x01, 0xda          /* 13: vmload rAX */
        PROG    .byte 0x0f, 0x01, 0xdb          /* 14: vmsave rAX */
        PROG    .byte 0x0f, 0x01, 0xd8          /* 15: vmrun rAX */
        PROG    .byte 0x31, 0xc9, 0xf7, 0xf1    /* 16: xor ecx, ecx; div ecx -> #DE */
        PROG    rdtsc                           /* 17 */
        PROG    pause                           /* 18 */
        PROG    invd                            /* 19 */
        PROG    wbinvd                          /* 20 */
        PROG    .byte 0x0f, 0x01, 0xf9          /* 21: rdtscp */
        PROG    .byte 0x0f, 0x01, 0xd1          /* 22: xsetbv */
        PROG    .byte 0x0f, 0x01, 0xfd          /* 23: rdpru */
        /* 24: invpcid rcx, [rbx] (ecx, [ebx] in 32-bit code): 66 0F 38 82 /r,
         * ModRM 0x0b = reg 1 (rCX), rm 3 ([rBX]) */
        PROG    .byte 0x66, 0x0f, 0x38, 0x82, 0x0b
        PROG    .byte 0x0f, 0x01, 0xf1          /* 25: lmsw cx (0F 01 /6, rm 1) */
        PROG    .byte 0x0f, 0x06                /* 26: clts */
        PROG    sti                             /* 27: its shadow covers the VMMCALL */
        PROG    cli                             /* 28 */
        /* 29: fnop (D9 D0): #NM with CR0.EM or CR0.TS like every x87
         * instruction (APM Vol.5 FNOP), and it changes no x87 register, so a
         * vector that runs it leaves nothing for the next (FLD1 eight times
         * in one boot would overflow the x87 stack) */
        PROG    .byte 0xd9, 0xd0
        PROG    nop                             /* 30: single step with save.rflags.TF */
        /* 31: jmp rbx / jmp ebx (FF /4, ModRM 0xe3): the next fetch is at
         * the vector's target, a page of the paging window whose entries
         * the vector patches (NX, SMEP, nested NX), or the VMMCALL program */
        PROG    .byte 0xff, 0xe3
        /* 32: push rdx; push rcx; push rsi; push rdi; push rbx (SS, RSP,
         * RFLAGS, CS, RIP: an IRET frame from the vector's registers), then
         * 48 CF: IRETQ in 64-bit code (APM Vol.3 IRET).  In 32-bit code the
         * pushes are of edx ... ebx and 48 CF is "dec eax; iretd", which pops
         * EIP = ebx, CS = edi, EFLAGS = esi and leaves edx, ecx on the stack. */
        PROG    .byte 0x52, 0x51, 0x56, 0x57, 0x53, 0x48, 0xcf
        .balign 64
        .globl l2_programs_end
l2_programs_end:

/* L2 exception stubs: vector v at +16*v: mov eax, v; vmmcall; hlt; spin.
 * The L2 IDTs (64- and 32-bit gate formats) point here. */
        .altmacro
        .macro STUB vec
        .balign 16
        .byte   0xb8
        .long   \vec
        vmmcall
        hlt
        .byte   0xf3, 0x90, 0xeb, 0xfc          /* 2: pause; jmp 2b */
        .endm

        .balign 16
        .globl l2_stubs
l2_stubs:
        .set v, 0
        .rept 256
        STUB %v
        .set v, v+1
        .endr
        .globl l2_stubs_end
l2_stubs_end:
