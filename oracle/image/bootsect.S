/* Bochs boot sector.  Bochs has no multiboot loader, so the runner loads the
 * flat image at 1 MiB with `optramimage1` and this sector (the only thing on
 * the floppy) enters 32-bit protected mode and jumps to the entry address
 * stored in the image's multiboot header (mb_header + 28, header at 1 MiB). */
        .code16
        .section .text
        .globl _start
_start:
        cli
        xorw    %ax, %ax
        movw    %ax, %ds
        movw    %ax, %ss
        movw    $0x7c00, %sp
        inb     $0x92, %al              /* fast A20 */
        orb     $2, %al
        andb    $0xfe, %al
        outb    %al, $0x92
        lgdtl   gdt_desc
        movl    %cr0, %eax
        orl     $1, %eax
        movl    %eax, %cr0
        ljmpl   $0x08, $pm32
        .code32
pm32:
        movw    $0x10, %ax
        movw    %ax, %ds
        movw    %ax, %es
        movw    %ax, %ss
        movl    $0x7c00, %esp
        movl    0x10001c, %eax
        jmp     *%eax

        .balign 8
gdt:
        .quad   0
        .quad   0x00CF9B000000FFFF
        .quad   0x00CF93000000FFFF
gdt_desc:
        .word   gdt_desc - gdt - 1
        .long   gdt

        .org    510
        .byte   0x55, 0xaa
