/* Memory layout and record formats shared by the freestanding oracle image
 * (oracle/image, built with gcc -ffreestanding) and the host-side runner
 * (src/oracle).  C-compatible on purpose: the image includes it from C.
 *
 * Everything is guest-physical == host-physical (the image identity-maps
 * the first 4 GiB with 2 MiB pages).  All multi-byte values are
 * little-endian; the host side reads and writes them with explicit
 * little-endian accessors (nsvm/arch/le.hpp), never by casting.
 *
 *   0x0010_0000  image (multiboot a.out-kludge kernel; Bochs: optramimage)
 *   0x0020_0000  L2 program menu, one 64-byte slot per program
 *   0x0020_1000  L2 scratch page (memory-access programs, VMLOAD/VMSAVE rAX)
 *   0x0020_3000  L2 exception stubs, 16 bytes per vector ("mov eax, vec; vmmcall; hlt")
 *   0x0020_7ff0  L2 stack top
 *   0x0021_0000  L2 GDT (0x08 64-bit code, 0x10 data, 0x18 32-bit code, 0x20 16-bit code)
 *   0x0021_1000  L2 IDT, 64-bit gates (256 x 16 bytes)
 *   0x0021_2000  L2 IDT, 32-bit gates (256 x 8 bytes)
 *   0x0030_0000  PML4 (host and long-mode L2), identity 4 GiB, 2 MiB pages, U=1
 *   0x0030_6000  PAE PDPT (32-bit PAE L2), same page directories
 *   0x0030_7000  legacy 32-bit page directory, 4 MiB PSE pages
 *   0x0031_0000  nested page table PML4: identity map of the first 1 GiB only
 *                (2 MiB pages, RWX, U=1); above 1 GiB not present -> #NPF
 *   0x0040_0000  VM_HSAVE_PA page
 *   0x0040_2000  MSRPM (8 KiB, all zero unless a vector patches it)
 *   0x0040_4000  IOPM (12 KiB, all zero unless a vector patches it)
 *   0x0040_8000  spare VMCB page for VMRUN/VMLOAD/VMSAVE executed by L2
 *   0x0060_0000  spare page-table pages (4 x 4 KiB, zero): tables a vector's
 *                paging patches build for the paging window; the image zeroes
 *                them after every vector with paging patches
 *   0x0080_0000  batch header (one page)
 *   0x0100_0000  slots: slot i at NSVM_OR_SLOTS_PA + i * 8 KiB
 *                  +0x0000 VMCB (VMRUN runs on it in place; after the exit
 *                          it holds what the emulator wrote back)
 *                  +0x1000 descriptor: inputs (0x000-0x7ff), result (0x800-)
 */
#ifndef NSVM_ORACLE_LAYOUT_H
#define NSVM_ORACLE_LAYOUT_H

#define NSVM_OR_IMAGE_PA 0x00100000ULL
#define NSVM_OR_L2_CODE_PA 0x00200000ULL
#define NSVM_OR_L2_PROGRAM_STRIDE 64ULL
#define NSVM_OR_L2_SCRATCH_PA 0x00201000ULL
#define NSVM_OR_L2_STUBS_PA 0x00203000ULL
#define NSVM_OR_L2_STACK_TOP 0x00207ff0ULL
#define NSVM_OR_L2_GDT_PA 0x00210000ULL
#define NSVM_OR_L2_IDT64_PA 0x00211000ULL
#define NSVM_OR_L2_IDT32_PA 0x00212000ULL
#define NSVM_OR_PML4_PA 0x00300000ULL
#define NSVM_OR_PAE_PDPT_PA 0x00306000ULL
#define NSVM_OR_PD32_PA 0x00307000ULL
#define NSVM_OR_NPT_PML4_PA 0x00310000ULL
#define NSVM_OR_HSAVE_PA 0x00400000ULL
#define NSVM_OR_MSRPM_PA 0x00402000ULL
#define NSVM_OR_IOPM_PA 0x00404000ULL
#define NSVM_OR_SPARE_VMCB_PA 0x00408000ULL
#define NSVM_OR_SPARE_PT_PA 0x00600000ULL
#define NSVM_OR_SPARE_PT_SIZE 0x4000ULL
/* The paging window: 4 MiB of L2 addresses (below 1 GiB, so inside the
 * nested identity map, and beyond the guests' RAM) that nothing but a vector
 * uses.  Paging patches may change only the entries that map it (PD0
 * entries 510-511 of the shared 4-level/PAE tables, legacy PD entry 255), the
 * L2-only tables (PAE PDPT, legacy PD, nested tables) and the spare pages,
 * and a present entry they write must point into the window or the spare
 * pages, so the host's own translations never change. */
#define NSVM_OR_WINDOW_PA 0x3FC00000ULL
#define NSVM_OR_WINDOW_SIZE 0x400000ULL
#define NSVM_OR_BATCH_PA 0x00800000ULL
#define NSVM_OR_SLOTS_PA 0x01000000ULL
#define NSVM_OR_SLOT_SIZE 0x2000ULL
#define NSVM_OR_DESC_OFFSET 0x1000ULL
/* Most slots one boot holds (runners split larger batches); the slot area
 * ends at NSVM_OR_SLOTS_PA + NSVM_OR_MAX_SLOTS * NSVM_OR_SLOT_SIZE. */
#define NSVM_OR_MAX_SLOTS 65536ULL

/* L2 selectors in the L2 GDT. */
#define NSVM_OR_L2_CS64 0x08
#define NSVM_OR_L2_DS 0x10
#define NSVM_OR_L2_CS32 0x18
#define NSVM_OR_L2_CS16 0x20

/* ---- batch header at NSVM_OR_BATCH_PA ---- */
#define NSVM_OR_BATCH_MAGIC 0x4256534eU /* "NSVB" */
#define NSVM_OR_VERSION 1U
#define NSVM_OR_B_MAGIC 0x00    /* u32 */
#define NSVM_OR_B_VERSION 0x04  /* u32 */
#define NSVM_OR_B_COUNT 0x08    /* u32 number of slots */
#define NSVM_OR_B_FIRST 0x0c    /* u32 first slot to run (restart after a crash) */
#define NSVM_OR_B_PROGRESS 0x10 /* u32 slot being run (written by the image) */
#define NSVM_OR_B_DONE 0x14     /* u32 slots finished (written by the image) */
#define NSVM_OR_B_STATE 0x18    /* u32 0 not started, 1 running, 2 finished, 3 fatal */
#define NSVM_OR_B_FATAL_VEC 0x1c  /* u32 exception vector of a fatal host fault */
#define NSVM_OR_B_FATAL_RIP 0x20  /* u64 */
#define NSVM_OR_B_TSC_START 0x28  /* u64 */
#define NSVM_OR_B_TSC_END 0x30    /* u64 */

#define NSVM_OR_STATE_RUNNING 1U
#define NSVM_OR_STATE_FINISHED 2U
#define NSVM_OR_STATE_FATAL 3U

/* ---- descriptor (slot + 0x1000), inputs ---- */
#define NSVM_OR_VEC_MAGIC 0x5656534eU /* "NSVV" */
#define NSVM_OR_D_MAGIC 0x000   /* u32 */
#define NSVM_OR_D_PROGRAM 0x004 /* u32 program id (NSVM_OR_PROG_*) */
#define NSVM_OR_D_FLAGS 0x008   /* u32 NSVM_OR_F_* */
#define NSVM_OR_D_NPATCH 0x00c  /* u32 number of map patches */
#define NSVM_OR_D_RAX 0x010     /* u64 VMRUN operand when NSVM_OR_F_RAX */
#define NSVM_OR_D_HSAVE 0x018   /* u64 VM_HSAVE_PA when NSVM_OR_F_HSAVE */
#define NSVM_OR_D_REGS 0x020    /* u64[16] host GPRs at VMRUN, in ModRM order:
                                   rax(ignored) rcx rdx rbx rsp(ignored) rbp rsi rdi r8..r15 */
#define NSVM_OR_D_REPEAT 0x0a0  /* u32 VMRUNs back to back when NSVM_OR_F_REPEAT (timing loops) */
#define NSVM_OR_D_PATCHES 0x100 /* patches: u32 (map << 24 | byte offset), u32 byte value */
#define NSVM_OR_MAX_PATCHES 224U
#define NSVM_OR_MAP_MSRPM 0U
#define NSVM_OR_MAP_IOPM 1U
/* A paging patch: the offset is the physical address of a 4-byte-aligned
 * dword in a page-table page, the value the dword to store there (an 8-byte
 * entry is two patches, low dword first).  The image saves the dword before
 * VMRUN and restores it (last patch first) after the exit, then zeroes the
 * spare pages and reloads CR3. */
#define NSVM_OR_MAP_TABLE 2U

#define NSVM_OR_F_GIF0 0x1U      /* CLGI before VMRUN (default: STGI) */
#define NSVM_OR_F_NO_SVME 0x2U   /* clear host EFER.SVME around VMRUN (expect #UD) */
#define NSVM_OR_F_RAX 0x4U       /* VMRUN operand from NSVM_OR_D_RAX instead of the slot */
#define NSVM_OR_F_HSAVE 0x8U     /* VM_HSAVE_PA from NSVM_OR_D_HSAVE */
#define NSVM_OR_F_NO_PROBE 0x10U /* skip the GIF probe */
#define NSVM_OR_F_REPEAT 0x20U   /* run VMRUN NSVM_OR_D_REPEAT times on the same VMCB (timing) */

/* ---- descriptor, results (written by the image) ---- */
#define NSVM_OR_RES_MAGIC 0x5256534eU /* "NSVR" */
#define NSVM_OR_R_MAGIC 0x800      /* u32 */
#define NSVM_OR_R_STATUS 0x804     /* u32 NSVM_OR_ST_* */
#define NSVM_OR_R_EXC_VEC 0x808    /* u32 host exception vector (status exception) */
#define NSVM_OR_R_EXC_ERR 0x80c    /* u32 its error code */
#define NSVM_OR_R_GIF 0x810        /* u32 GIF after the exit: 1 if the probe IPI was taken before STGI */
#define NSVM_OR_R_PROBE_OK 0x814   /* u32 1 if the probe IPI was taken at all */
#define NSVM_OR_R_TSC 0x818        /* u64 TSC cycles from just before the first VMRUN to just after the last */
#define NSVM_OR_R_VMCB_PA 0x820    /* u64 the VMRUN operand used */
#define NSVM_OR_R_REGS 0x828       /* u64[16] GPRs after the exit (ModRM order; rax, rsp = host) */
#define NSVM_OR_R_PAGING 0x900     /* u32[NSVM_OR_MAX_PATCHES]: patch k's page-table dword as the exit left it
                                      (accessed/dirty bits), before the image restores it; 0 for map bytes */

#define NSVM_OR_ST_VMEXIT 0U     /* VMRUN executed, #VMEXIT (normal or VMEXIT_INVALID) */
#define NSVM_OR_ST_EXCEPTION 1U  /* VMRUN raised an exception in the host (#UD, #GP) */
#define NSVM_OR_ST_BAD_INPUT 2U  /* descriptor magic wrong or too many patches */

/* ---- L2 program menu (entry = NSVM_OR_L2_CODE_PA + id * 64) ----
 * Each program runs one instruction, then VMMCALL, HLT, and spins; the
 * instruction's operands come from the host GPRs at VMRUN (SVM does not
 * switch rbx/rcx/rdx/rsi/rdi/rbp/r8-r15, APM 15.5.1). */
#define NSVM_OR_PROG_VMMCALL 0U
#define NSVM_OR_PROG_HLT 1U
#define NSVM_OR_PROG_CPUID 2U   /* eax from save.rax, ecx from regs */
#define NSVM_OR_PROG_RDMSR 3U   /* ecx */
#define NSVM_OR_PROG_WRMSR 4U   /* ecx, edx:eax */
#define NSVM_OR_PROG_IN 5U      /* in al, dx */
#define NSVM_OR_PROG_OUT 6U     /* out dx, al */
#define NSVM_OR_PROG_UD2 7U
#define NSVM_OR_PROG_INT3 8U
#define NSVM_OR_PROG_LOAD 9U    /* mov eax, [rbx] */
#define NSVM_OR_PROG_STORE 10U  /* mov [rbx], eax */
#define NSVM_OR_PROG_STGI 11U
#define NSVM_OR_PROG_CLGI 12U
#define NSVM_OR_PROG_VMLOAD 13U /* rax = save.rax */
#define NSVM_OR_PROG_VMSAVE 14U
#define NSVM_OR_PROG_VMRUN 15U
#define NSVM_OR_PROG_DIV0 16U   /* div ecx with ecx = 0 -> #DE */
#define NSVM_OR_PROG_RDTSC 17U
#define NSVM_OR_PROG_PAUSE 18U
#define NSVM_OR_PROG_INVD 19U
#define NSVM_OR_PROG_WBINVD 20U
#define NSVM_OR_PROG_RDTSCP 21U  /* rdtscp */
#define NSVM_OR_PROG_XSETBV 22U  /* xsetbv: ecx, edx from regs, eax = save.rax */
#define NSVM_OR_PROG_RDPRU 23U   /* rdpru: ecx */
#define NSVM_OR_PROG_INVPCID 24U /* invpcid rcx, [rbx] (ecx, [ebx] in 32-bit code): type, descriptor */
#define NSVM_OR_PROG_LMSW 25U    /* lmsw cx */
#define NSVM_OR_PROG_CLTS 26U
#define NSVM_OR_PROG_STI 27U
#define NSVM_OR_PROG_CLI 28U
#define NSVM_OR_PROG_FNOP 29U    /* an x87 instruction that changes no x87 register */
#define NSVM_OR_PROG_NOP 30U     /* for single step (save.rflags.TF) */
#define NSVM_OR_PROG_JMP 31U     /* jmp rbx (jmp ebx in 32-bit code): an instruction fetch at a
                                    target the vector chooses (the paging window, or the VMMCALL
                                    program's entry) */
#define NSVM_OR_PROG_IRET 32U    /* push rdx, rcx, rsi, rdi, rbx (SS, RSP, RFLAGS, CS, RIP); iretq
                                    (48 CF; "dec eax; iretd" in 32-bit code): a return to rbx */
#define NSVM_OR_PROG_COUNT 33U

#endif
