/* nsvm oracle image, 64-bit part: runs the batch of test vectors the host
 * placed at NSVM_OR_BATCH_PA / NSVM_OR_SLOTS_PA and leaves the results next to
 * them (include/nsvm/oracle/layout.h, docs/oracle.md).
 *
 * Freestanding C: no libc, no SSE, no red zone.  All VMCB contents are the
 * host runner's business; the image never interprets them, it only executes
 * VMRUN on them in place and records what the processor reported. */
#include <stdint.h>

#include "nsvm/oracle/layout.h"

#define MSR_EFER 0xC0000080u
#define MSR_VM_HSAVE_PA 0xC0010117u
#define EFER_SVME (1ull << 12) /* APM 15.4: SVM enable */
#define EFER_NXE (1ull << 11)  /* APM 3.1.7: no-execute enable */

#define LAPIC_BASE 0xFEE00000ull
#define LAPIC_TPR 0x080
#define LAPIC_EOI 0x0B0
#define LAPIC_SVR 0x0F0
#define LAPIC_ICR_LO 0x300
#define LAPIC_ICR_HI 0x310
#define PROBE_VECTOR 0x40u

extern char trap_table[];
extern char l2_programs[], l2_programs_end[];
extern char l2_stubs[], l2_stubs_end[];
extern volatile uint8_t in_vmrun;
extern uint32_t nsvm_vmrun(uint64_t vmcb_pa, const uint64_t* regs_in, uint64_t* regs_out);

void* memset(void* d, int c, unsigned long n);
void* memcpy(void* d, const void* s, unsigned long n);

void* memset(void* d, int c, unsigned long n) {
    uint8_t* p = d;
    __asm__ volatile("rep stosb" : "+D"(p), "+c"(n) : "a"(c) : "memory");
    return d;
}
void* memcpy(void* d, const void* s, unsigned long n) {
    uint8_t* p = d;
    const uint8_t* q = s;
    __asm__ volatile("rep movsb" : "+D"(p), "+S"(q), "+c"(n) : : "memory");
    return d;
}

/* Physical memory is identity-mapped; volatile accessors keep the compiler
 * from caching what the emulator writes behind our back. */
static inline uint32_t rd32(uint64_t pa) { return *(volatile uint32_t*)(uintptr_t)pa; }
static inline uint64_t rd64(uint64_t pa) { return *(volatile uint64_t*)(uintptr_t)pa; }
static inline void wr8(uint64_t pa, uint8_t v) { *(volatile uint8_t*)(uintptr_t)pa = v; }
static inline void wr32(uint64_t pa, uint32_t v) { *(volatile uint32_t*)(uintptr_t)pa = v; }
static inline void wr64(uint64_t pa, uint64_t v) { *(volatile uint64_t*)(uintptr_t)pa = v; }

static inline void outb(uint16_t port, uint8_t v) { __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port)); }
static inline uint8_t inb(uint16_t port) {
    uint8_t v;
    __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}
static inline uint64_t rdmsr(uint32_t msr) {
    uint32_t lo, hi;
    __asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
    return ((uint64_t)hi << 32) | lo;
}
static inline void wrmsr(uint32_t msr, uint64_t v) {
    __asm__ volatile("wrmsr" : : "c"(msr), "a"((uint32_t)v), "d"((uint32_t)(v >> 32)));
}
static inline uint64_t rdtsc(void) {
    uint32_t lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return ((uint64_t)hi << 32) | lo;
}

/* ---- host IDT ---- */
struct __attribute__((packed)) dtr {
    uint16_t limit;
    uint64_t base;
};
static uint64_t host_idt[512] __attribute__((aligned(16)));

static void set_gate64(uint64_t* idt, unsigned vec, uint64_t handler, uint16_t sel) {
    /* APM 4.8.3: 16-byte interrupt gate, type 0xE, present, DPL 0. */
    idt[2 * vec] = (handler & 0xFFFF) | ((uint64_t)sel << 16) | (0x8Eull << 40) | ((handler >> 16 & 0xFFFF) << 48);
    idt[2 * vec + 1] = handler >> 32;
}

static volatile uint32_t probe_count;
static volatile uint32_t exc_vec, exc_err;

struct trap_frame {
    uint64_t r11, r10, r9, r8, rdi, rsi, rdx, rcx, rax;
    uint64_t vec, err, rip, cs, rflags, rsp, ss;
};

static void finish(uint32_t state) __attribute__((noreturn));

/* Called from trap_common (boot.S).  Returns 1 to unwind out of nsvm_vmrun. */
uint32_t host_trap(struct trap_frame* f);
uint32_t host_trap(struct trap_frame* f) {
    if (f->vec == PROBE_VECTOR) {
        probe_count = probe_count + 1;
        wr32(LAPIC_BASE + LAPIC_EOI, 0);
        return 0;
    }
    if (f->vec == 0xFF) return 0; /* APIC spurious vector: no EOI */
    if (in_vmrun) {
        exc_vec = (uint32_t)f->vec;
        exc_err = (uint32_t)f->err;
        return 1;
    }
    wr32(NSVM_OR_BATCH_PA + NSVM_OR_B_FATAL_VEC, (uint32_t)f->vec);
    wr64(NSVM_OR_BATCH_PA + NSVM_OR_B_FATAL_RIP, f->rip);
    finish(NSVM_OR_STATE_FATAL);
}

static void finish(uint32_t state) {
    wr64(NSVM_OR_BATCH_PA + NSVM_OR_B_TSC_END, rdtsc());
    wr32(NSVM_OR_BATCH_PA + NSVM_OR_B_STATE, state);
    __asm__ volatile("mfence" ::: "memory");
    /* Bochs: magic breakpoint, the debugger script dumps memory and quits. */
    __asm__ volatile("xchg %%bx, %%bx" ::: "memory");
    /* QEMU: isa-debug-exit, exit status (v << 1) | 1. */
    outb(0xf4, state == NSVM_OR_STATE_FINISHED ? 0 : 1);
    /* Bochs without the debugger script: the shutdown port. */
    const char* s = "Shutdown";
    for (; *s; ++s) outb(0x8900, (uint8_t)*s);
    for (;;) __asm__ volatile("cli; hlt");
}

/* ---- L2 environment ---- */
static void setup_l2(void) {
    memcpy((void*)(uintptr_t)NSVM_OR_L2_CODE_PA, l2_programs, (unsigned long)(l2_programs_end - l2_programs));
    memcpy((void*)(uintptr_t)NSVM_OR_L2_STUBS_PA, l2_stubs, (unsigned long)(l2_stubs_end - l2_stubs));
    memset((void*)(uintptr_t)NSVM_OR_L2_SCRATCH_PA, 0, 0x2000);

    uint64_t* gdt = (uint64_t*)(uintptr_t)NSVM_OR_L2_GDT_PA;
    gdt[0] = 0;
    gdt[NSVM_OR_L2_CS64 / 8] = 0x00AF9B000000FFFFull;
    gdt[NSVM_OR_L2_DS / 8] = 0x00CF93000000FFFFull;
    gdt[NSVM_OR_L2_CS32 / 8] = 0x00CF9B000000FFFFull;
    gdt[NSVM_OR_L2_CS16 / 8] = 0x00009B000000FFFFull;

    uint64_t* idt64 = (uint64_t*)(uintptr_t)NSVM_OR_L2_IDT64_PA;
    uint64_t* idt32 = (uint64_t*)(uintptr_t)NSVM_OR_L2_IDT32_PA;
    for (unsigned v = 0; v < 256; ++v) {
        const uint64_t h = NSVM_OR_L2_STUBS_PA + 16ull * v;
        set_gate64(idt64, v, h, NSVM_OR_L2_CS64);
        /* APM 4.8.3 legacy 8-byte 32-bit interrupt gate. */
        idt32[v] = (h & 0xFFFF) | ((uint64_t)NSVM_OR_L2_CS32 << 16) | (0x8Eull << 40) | ((h >> 16 & 0xFFFF) << 48);
    }
    memset((void*)(uintptr_t)NSVM_OR_MSRPM_PA, 0, 0x2000);
    memset((void*)(uintptr_t)NSVM_OR_IOPM_PA, 0, 0x3000);
    memset((void*)(uintptr_t)NSVM_OR_HSAVE_PA, 0, 0x1000);
    memset((void*)(uintptr_t)NSVM_OR_SPARE_VMCB_PA, 0, 0x1000);
    memset((void*)(uintptr_t)NSVM_OR_SPARE_PT_PA, 0, NSVM_OR_SPARE_PT_SIZE);
}

/* The host's 64-bit TSS (APM 12.2.5).  SVM does not switch TR (VMLOAD's
 * state, not VMRUN's, APM 15.5.2), so L2 runs with the host's: an exception
 * L2 takes at CPL > 0 switches to its RSP0, the top of the L2 stack, where
 * the isolation lets every vector write (src/oracle/isolation.cpp).  No IST,
 * no I/O bitmap (the limit ends before one: IN/OUT above IOPL is #GP). */
struct __attribute__((packed)) tss64 {
    uint32_t reserved0;
    uint64_t rsp[3];
    uint64_t reserved1;
    uint64_t ist[7];
    uint64_t reserved2;
    uint16_t reserved3;
    uint16_t iomap_base;
};
static struct tss64 host_tss __attribute__((aligned(16)));
extern uint64_t gdt64_tss[2];
#define TSS_SELECTOR 0x20

/* LTR of the TSS, its descriptor made available first (LTR marks it busy
 * and refuses a busy one).  Run at boot and after every vector: an
 * unintercepted VMLOAD in L2 loads TR from its operand, and #VMEXIT does
 * not give the host its own back. */
static void load_tss(void) {
    const uint64_t base = (uint64_t)(uintptr_t)&host_tss;
    const uint64_t limit = sizeof host_tss - 1;
    gdt64_tss[0] = (limit & 0xFFFF) | ((base & 0xFFFFFF) << 16) | (0x89ull << 40) /* P, available 64-bit TSS */ |
                   (((limit >> 16) & 0xF) << 48) | (((base >> 24) & 0xFF) << 56);
    gdt64_tss[1] = base >> 32;
    __asm__ volatile("ltr %w0" : : "r"((uint16_t)TSS_SELECTOR) : "memory");
}

static void setup_host(void) {
    host_tss.rsp[0] = NSVM_OR_L2_STACK_TOP;
    host_tss.iomap_base = sizeof host_tss;
    load_tss();
    for (unsigned v = 0; v < 256; ++v) set_gate64(host_idt, v, (uint64_t)(uintptr_t)(trap_table + 16 * v), 0x08);
    struct dtr idtr = {sizeof host_idt - 1, (uint64_t)(uintptr_t)host_idt};
    __asm__ volatile("lidt %0" : : "m"(idtr));
    /* Mask both 8259s: only the probe IPI may interrupt us. */
    outb(0x21, 0xFF);
    outb(0xA1, 0xFF);
    wr32(LAPIC_BASE + LAPIC_TPR, 0);
    wr32(LAPIC_BASE + LAPIC_SVR, 0x1FF); /* APIC software enable, spurious vector 0xFF */
    /* EFER.NXE too: the nested tables are walked in the host's paging mode
     * (APM 15.25.5), so only with the host's NXE is a nested entry's bit 63
     * no-execute rather than reserved (the pg vectors *_npt_fetch_nx).  The host's own
     * tables set no NX bit, so the host runs as before. */
    wrmsr(MSR_EFER, rdmsr(MSR_EFER) | EFER_SVME | EFER_NXE);
    wrmsr(MSR_VM_HSAVE_PA, NSVM_OR_HSAVE_PA);
}

/* GIF probe (APM 15.17): with GIF=0 a pending maskable interrupt is held even
 * with RFLAGS.IF=1.  Send a self-IPI, open an IF=1 window, then STGI and open
 * a second window.  Taken in the first window => GIF was 1. */
static void probe_gif(uint32_t* gif, uint32_t* ok) {
    const uint32_t before = probe_count;
    wr32(LAPIC_BASE + LAPIC_ICR_HI, 0);
    wr32(LAPIC_BASE + LAPIC_ICR_LO, (1u << 18) | PROBE_VECTOR); /* shorthand self, fixed */
    (void)rd32(LAPIC_BASE + LAPIC_ICR_LO);
    __asm__ volatile("sti; nop; nop; nop; cli" ::: "memory");
    const uint32_t first = probe_count;
    __asm__ volatile("stgi; sti; nop; nop; nop; cli" ::: "memory");
    const uint32_t second = probe_count;
    *gif = first != before;
    *ok = second != before;
}

/* Paging patches (layout.h NSVM_OR_MAP_TABLE) may store only into entries
 * the host never translates through: PD entries 510-511 (the paging
 * window), the PAE PDPT, the legacy PD, the nested tables and the spare
 * pages.  The runner refuses anything else; this is the image's own guard. */
static int table_dword_ok(uint32_t pa) {
    if (pa & 3) return 0;
    if (pa >= NSVM_OR_PML4_PA + 0x2000 + 8 * 510 && pa < NSVM_OR_PML4_PA + 0x3000) return 1;
    if (pa >= NSVM_OR_PAE_PDPT_PA && pa < NSVM_OR_PAE_PDPT_PA + 32) return 1;
    if (pa >= NSVM_OR_PD32_PA && pa < NSVM_OR_PD32_PA + 0x1000) return 1;
    if (pa >= NSVM_OR_NPT_PML4_PA && pa < NSVM_OR_NPT_PML4_PA + 0x3000) return 1;
    return pa >= NSVM_OR_SPARE_PT_PA && pa < NSVM_OR_SPARE_PT_PA + NSVM_OR_SPARE_PT_SIZE;
}
static uint32_t saved[NSVM_OR_MAX_PATCHES];

static void run_slot(uint32_t i) {
    const uint64_t slot = NSVM_OR_SLOTS_PA + (uint64_t)i * NSVM_OR_SLOT_SIZE;
    const uint64_t d = slot + NSVM_OR_DESC_OFFSET;
    wr32(d + NSVM_OR_R_MAGIC, 0);
    const uint32_t npatch = rd32(d + NSVM_OR_D_NPATCH);
    if (rd32(d + NSVM_OR_D_MAGIC) != NSVM_OR_VEC_MAGIC || npatch > NSVM_OR_MAX_PATCHES) {
        wr32(d + NSVM_OR_R_STATUS, NSVM_OR_ST_BAD_INPUT);
        wr32(d + NSVM_OR_R_MAGIC, NSVM_OR_RES_MAGIC);
        return;
    }
    const uint32_t flags = rd32(d + NSVM_OR_D_FLAGS);
    uint32_t tables = 0;
    for (uint32_t k = 0; k < npatch; ++k) {
        const uint32_t where = rd32(d + NSVM_OR_D_PATCHES + 8ull * k);
        const uint32_t off = where & 0xFFFFFF;
        const uint32_t value = rd32(d + NSVM_OR_D_PATCHES + 8ull * k + 4);
        if ((where >> 24) == NSVM_OR_MAP_TABLE) {
            if (!table_dword_ok(off)) continue;
            saved[k] = rd32(off);
            wr32(off, value);
            tables = 1;
            continue;
        }
        const uint64_t base = (where >> 24) == NSVM_OR_MAP_IOPM ? NSVM_OR_IOPM_PA : NSVM_OR_MSRPM_PA;
        const uint32_t limit = (where >> 24) == NSVM_OR_MAP_IOPM ? 0x3000 : 0x2000;
        if (off < limit) wr8(base + off, (uint8_t)value);
    }

    const uint64_t vmcb_pa = (flags & NSVM_OR_F_RAX) ? rd64(d + NSVM_OR_D_RAX) : slot;
    wrmsr(MSR_VM_HSAVE_PA, (flags & NSVM_OR_F_HSAVE) ? rd64(d + NSVM_OR_D_HSAVE) : NSVM_OR_HSAVE_PA);
    uint64_t regs_in[16], regs_out[16];
    for (unsigned r = 0; r < 16; ++r) {
        regs_in[r] = rd64(d + NSVM_OR_D_REGS + 8ull * r);
        regs_out[r] = 0;
    }
    const uint64_t efer = rdmsr(MSR_EFER);
    if (flags & NSVM_OR_F_GIF0)
        __asm__ volatile("clgi" ::: "memory");
    else
        __asm__ volatile("stgi" ::: "memory");
    if (flags & NSVM_OR_F_NO_SVME) wrmsr(MSR_EFER, efer & ~EFER_SVME);
    exc_vec = 0;
    exc_err = 0;
    /* Timing loops (docs/performance.md): the same VMRUN back to back. A
     * VMMCALL exit leaves RIP on the VMMCALL (no nRIP advance), so every
     * VMRUN is one full round trip; a failing VMCB fails every time. */
    const uint32_t reps = (flags & NSVM_OR_F_REPEAT) ? rd32(d + NSVM_OR_D_REPEAT) : 1u;
    const uint64_t t0 = rdtsc();
    uint32_t st = 0;
    for (uint32_t k = 0; k < reps && st == 0; ++k) st = nsvm_vmrun(vmcb_pa, regs_in, regs_out);
    const uint64_t t1 = rdtsc();
    if (flags & NSVM_OR_F_NO_SVME) wrmsr(MSR_EFER, efer);

    uint32_t gif = 0, ok = 0;
    if (!(flags & NSVM_OR_F_NO_PROBE))
        probe_gif(&gif, &ok);
    __asm__ volatile("stgi" ::: "memory");

    /* Undo the patches, the last first: a dword patched twice gets its
     * original back.  Then the spare table pages are zero again and the
     * host's TLB holds nothing from the patched entries (CR3 reload; the
     * image's mappings are not global). */
    for (uint32_t k = 0; k < npatch; ++k) {
        const uint32_t where = rd32(d + NSVM_OR_D_PATCHES + 8ull * k);
        const uint32_t off = where & 0xFFFFFF;
        const int table = (where >> 24) == NSVM_OR_MAP_TABLE && table_dword_ok(off);
        wr32(d + NSVM_OR_R_PAGING + 4ull * k, table ? rd32(off) : 0); /* the A/D bits the walk wrote */
    }
    for (uint32_t k = npatch; k-- > 0;) {
        const uint32_t where = rd32(d + NSVM_OR_D_PATCHES + 8ull * k);
        const uint32_t off = where & 0xFFFFFF;
        if ((where >> 24) == NSVM_OR_MAP_TABLE) {
            if (table_dword_ok(off)) wr32(off, saved[k]);
            continue;
        }
        const uint64_t base = (where >> 24) == NSVM_OR_MAP_IOPM ? NSVM_OR_IOPM_PA : NSVM_OR_MSRPM_PA;
        const uint32_t limit = (where >> 24) == NSVM_OR_MAP_IOPM ? 0x3000 : 0x2000;
        if (off < limit) wr8(base + off, 0);
    }
    /* The host's CR2 back to 0 (the host never faults): an emulator that runs
     * L2 on the processor's CR2 instead of the VMCB's (Bochs 2.7,
     * docs/peer-bugs.md bochs.vmrun_cr2_not_loaded) must not carry one
     * vector's page-fault address into the next vector's result. */
    __asm__ volatile("mov %0, %%cr2" : : "r"(0ull) : "memory");
    load_tss();
    if (tables) {
        memset((void*)(uintptr_t)NSVM_OR_SPARE_PT_PA, 0, NSVM_OR_SPARE_PT_SIZE);
        uint64_t cr3;
        __asm__ volatile("mov %%cr3, %0" : "=r"(cr3));
        __asm__ volatile("mov %0, %%cr3" : : "r"(cr3) : "memory");
    }
    wr32(d + NSVM_OR_R_STATUS, st ? NSVM_OR_ST_EXCEPTION : NSVM_OR_ST_VMEXIT);
    wr32(d + NSVM_OR_R_EXC_VEC, st ? exc_vec : 0);
    wr32(d + NSVM_OR_R_EXC_ERR, st ? exc_err : 0);
    wr32(d + NSVM_OR_R_GIF, gif);
    wr32(d + NSVM_OR_R_PROBE_OK, ok);
    wr64(d + NSVM_OR_R_TSC, t1 - t0);
    wr64(d + NSVM_OR_R_VMCB_PA, vmcb_pa);
    for (unsigned r = 0; r < 16; ++r) wr64(d + NSVM_OR_R_REGS + 8ull * r, st ? 0 : regs_out[r]);
    wr32(d + NSVM_OR_R_MAGIC, NSVM_OR_RES_MAGIC);
}

/* ---- Bochs: the batch comes from the primary ATA disk (LBA 0 = guest
 * physical NSVM_OR_BATCH_PA), read with PIO (ATA-8 READ SECTORS, 0x20). */
static int ata_wait(uint8_t want) {
    for (uint32_t spins = 0; spins < 100000000u; ++spins) {
        const uint8_t st = inb(0x1F7);
        if (st == 0xFF) return -1;           /* no controller */
        if (st & 0x01) return -1;            /* ERR */
        if (!(st & 0x80) && (st & want) == want) return 0;
    }
    return -1;
}

static int ata_read(uint32_t lba, uint32_t count, uint64_t dest) {
    while (count) {
        const uint32_t n = count > 256 ? 256 : count;
        /* Select the master first (the BIOS may leave the slave selected),
         * give it the customary 400 ns (four status reads), wait for DRDY. */
        outb(0x1F6, (uint8_t)(0xE0 | ((lba >> 24) & 0xF)));
        for (int k = 0; k < 4; ++k) (void)inb(0x3F6);
        if (ata_wait(0x40) != 0) return -1;  /* DRDY */
        outb(0x1F2, (uint8_t)(n == 256 ? 0 : n));
        outb(0x1F3, (uint8_t)lba);
        outb(0x1F4, (uint8_t)(lba >> 8));
        outb(0x1F5, (uint8_t)(lba >> 16));
        outb(0x1F7, 0x20);
        for (uint32_t k = 0; k < n; ++k) {
            if (ata_wait(0x08) != 0) return -1;  /* DRQ */
            uint16_t* p = (uint16_t*)(uintptr_t)(dest + 512ull * k);
            unsigned long words = 256;
            __asm__ volatile("rep insw" : "+D"(p), "+c"(words) : "d"(0x1F0) : "memory");
        }
        lba += n;
        count -= n;
        dest += 512ull * n;
    }
    return 0;
}

static void load_batch_from_disk(void) {
    if (inb(0x1F7) == 0xFF) return;
    if (ata_read(0, 1, NSVM_OR_BATCH_PA) != 0) return;
    if (rd32(NSVM_OR_BATCH_PA + NSVM_OR_B_MAGIC) != NSVM_OR_BATCH_MAGIC) return;
    const uint64_t bytes = (NSVM_OR_SLOTS_PA - NSVM_OR_BATCH_PA) +
                           (uint64_t)rd32(NSVM_OR_BATCH_PA + NSVM_OR_B_COUNT) * NSVM_OR_SLOT_SIZE;
    (void)ata_read(1, (uint32_t)((bytes - 512) / 512), NSVM_OR_BATCH_PA + 512);
}

void image_main(void) __attribute__((noreturn));
void image_main(void) {
    setup_host();
    setup_l2();
    const uint64_t b = NSVM_OR_BATCH_PA;
    if (rd32(b + NSVM_OR_B_MAGIC) != NSVM_OR_BATCH_MAGIC) load_batch_from_disk();
    wr64(b + NSVM_OR_B_TSC_START, rdtsc());
    if (rd32(b + NSVM_OR_B_MAGIC) != NSVM_OR_BATCH_MAGIC || rd32(b + NSVM_OR_B_VERSION) != NSVM_OR_VERSION) {
        wr32(b + NSVM_OR_B_FATAL_VEC, 0xFFFFFFFFu);
        finish(NSVM_OR_STATE_FATAL);
    }
    wr32(b + NSVM_OR_B_STATE, NSVM_OR_STATE_RUNNING);
    const uint32_t count = rd32(b + NSVM_OR_B_COUNT);
    const int e9 = inb(0xE9) == 0xE9; /* Bochs port_e9_hack reads back 0xE9 */
    for (uint32_t i = rd32(b + NSVM_OR_B_FIRST); i < count; ++i) {
        wr32(b + NSVM_OR_B_PROGRESS, i);
        /* Bochs: progress on port 0xE9 (ignored by QEMU), so a PANIC that
         * loses guest memory still names the vector: "@<hex index>\n". */
        if (e9) {
            static const char hexd[] = "0123456789abcdef";
            outb(0xE9, '@');
            for (int sh = 28; sh >= 0; sh -= 4) outb(0xE9, (uint8_t)hexd[(i >> sh) & 0xF]);
            outb(0xE9, '\n');
        }
        run_slot(i);
        wr32(b + NSVM_OR_B_DONE, i + 1);
    }
    finish(NSVM_OR_STATE_FINISHED);
}
