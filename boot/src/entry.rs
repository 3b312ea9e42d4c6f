//! Multiboot1/multiboot2 headers and the 32-bit entry path into 64-bit Rust.
//!
//! Both loaders enter `xenolith_mb_entry32` in 32-bit protected mode with paging off, EAX holding
//! the protocol magic and EBX the physical address of the boot information. The code here runs
//! from the `.boot` section, linked at its physical address, and uses boot page tables assembled
//! statically (no runtime table construction): an identity map of the low 4 GiB (2 MiB pages) and
//! the hypervisor image at `XEN_VIRT_START`. It then jumps to the high-half `xenolith_entry64`,
//! which calls Rust's `xenolith_start(magic, info)` on the BSP boot stack.
//!
//! The linker script provides the physical layout symbols (`__xenolith_*_phys`) that the headers'
//! address fields need; those make the image loadable from its file bytes verbatim (the multiboot1
//! "address kludge" QEMU requires for an ELF64, and the multiboot2 address tag).

core::arch::global_asm!(
    r#"
    .set MB1_MAGIC, 0x1BADB002
    .set MB1_FLAGS, (1 << 0) | (1 << 1) | (1 << 16)  /* page-aligned modules; memory info; address fields valid */
    .set MB2_MAGIC, 0xE85250D6
    .set MB2_ARCH_I386, 0

    .section .multiboot1, "a"
    .balign 4
xenolith_mb1_header:
    .long MB1_MAGIC
    .long MB1_FLAGS
    .long -(MB1_MAGIC + MB1_FLAGS)
    .long xenolith_mb1_header                 /* header_addr */
    .long __xenolith_load_start_phys          /* load_addr */
    .long __xenolith_load_end_phys            /* load_end_addr */
    .long __xenolith_bss_end_phys             /* bss_end_addr */
    .long xenolith_mb_entry32                 /* entry_addr */

    .section .multiboot2, "a"
    .balign 8
xenolith_mb2_header:
    .long MB2_MAGIC
    .long MB2_ARCH_I386
    .long xenolith_mb2_header_end - xenolith_mb2_header
    .long -(MB2_MAGIC + MB2_ARCH_I386 + (xenolith_mb2_header_end - xenolith_mb2_header))
    /* information request: cmdline, loader name, modules, mmap, ACPI old/new */
    .balign 8
    .short 1, 0
    .long 8 + 6 * 4
    .long 1, 2, 3, 6, 14, 15
    /* address tag: GRUB loads the same contiguous image as the multiboot1 path */
    .balign 8
    .short 2, 0
    .long 24
    .long xenolith_mb2_header
    .long __xenolith_load_start_phys
    .long __xenolith_load_end_phys
    .long __xenolith_bss_end_phys
    /* entry address tag */
    .balign 8
    .short 3, 0
    .long 12
    .long xenolith_mb_entry32
    /* module alignment tag: page-aligned modules, as the PV domain builder expects */
    .balign 8
    .short 6, 0
    .long 8
    /* end tag */
    .balign 8
    .short 0, 0
    .long 8
xenolith_mb2_header_end:

    .section .boot.text, "ax"
    .code32
    .global xenolith_mb_entry32
xenolith_mb_entry32:
    cli
    cld
    mov %eax, %edi                            /* magic: 1st Rust argument */
    mov %ebx, %esi                            /* info: 2nd Rust argument */

    /* Long mode is required; NX is used when present. */
    mov $0x80000000, %eax
    cpuid
    cmp $0x80000001, %eax
    jb .Lno_long_mode
    mov $0x80000001, %eax
    cpuid
    bt $29, %edx
    jnc .Lno_long_mode
    mov %edx, %ebp                            /* keep the NX bit (20) for EFER below */

    /* CR4: PAE + PGE. CR3: the static boot tables. */
    mov %cr4, %eax
    or $((1 << 5) | (1 << 7)), %eax
    mov %eax, %cr4
    mov $xenolith_boot_pml4, %eax
    mov %eax, %cr3

    /* EFER: LME, plus NXE when the CPU has NX. */
    mov $0xC0000080, %ecx
    rdmsr
    or $(1 << 8), %eax
    bt $20, %ebp
    jnc 1f
    or $(1 << 11), %eax
1:  wrmsr

    /* CR0: PG | WP | NE | PE. */
    mov %cr0, %eax
    or $((1 << 31) | (1 << 16) | (1 << 5) | 1), %eax
    mov %eax, %cr0

    lgdt xenolith_boot_gdtr
    ljmp $0x08, $.Lentry64_low

.Lno_long_mode:
    mov $.Lno_lm_msg, %esi
2:  lodsb
    test %al, %al
    jz 4f
    mov %al, %bl
    mov $0x3fd, %dx
3:  inb %dx, %al                              /* wait for THR empty */
    test $0x20, %al
    jz 3b
    mov $0x3f8, %dx
    mov %bl, %al
    outb %al, %dx
    jmp 2b
4:  hlt
    jmp 4b

    .code64
.Lentry64_low:
    xor %eax, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    mov %eax, %fs
    mov %eax, %gs
    movabs $xenolith_entry64, %rax
    jmp *%rax

    .section .boot.rodata, "a"
.Lno_lm_msg:
    .asciz "Xenolith: this CPU has no 64-bit long mode; halting.\r\n"

    .balign 8
xenolith_boot_gdt:
    .quad 0
    .quad 0x00af9a000000ffff                  /* 0x08: 64-bit ring-0 code */
xenolith_boot_gdt_end:
xenolith_boot_gdtr:
    .short xenolith_boot_gdt_end - xenolith_boot_gdt - 1
    .long xenolith_boot_gdt

    /* Static boot page tables (the CPU sets accessed bits in them; nothing else writes). */
    .balign 4096
    .global xenolith_boot_pml4
xenolith_boot_pml4:
    .quad xenolith_boot_pdpt_low + 0x3
    .fill 260, 8, 0
    .quad xenolith_boot_pdpt_xen + 0x3        /* slot 261: XEN_VIRT_START */
    .fill 250, 8, 0
    .balign 4096
xenolith_boot_pdpt_low:
    .quad xenolith_boot_pd_low + 0x0000 + 0x3
    .quad xenolith_boot_pd_low + 0x1000 + 0x3
    .quad xenolith_boot_pd_low + 0x2000 + 0x3
    .quad xenolith_boot_pd_low + 0x3000 + 0x3
    .fill 508, 8, 0
    .balign 4096
xenolith_boot_pdpt_xen:
    .fill 321, 8, 0                           /* (XEN_VIRT_START >> 30) & 511 == 321 */
    .quad xenolith_boot_pd_xen + 0x3
    .fill 190, 8, 0
    .balign 4096
xenolith_boot_pd_low:                         /* 0-4 GiB identity, 2 MiB pages */
    .set .Lpage, 0
    .rept 2048
    .quad (.Lpage << 21) | 0x83
    .set .Lpage, .Lpage + 1
    .endr
xenolith_boot_pd_xen:                         /* the image: 64 MiB from its load address */
    .set .Lpage, 0
    .rept 32
    .quad __xenolith_load_start_phys + (.Lpage << 21) + 0x83
    .set .Lpage, .Lpage + 1
    .endr
    .fill 480, 8, 0

    .section .text.xenolith_entry64, "ax"
    .global xenolith_entry64
xenolith_entry64:
    lea (xenolith_bsp_stack_top - 256)(%rip), %rsp  /* below the CpuInfo (arch percpu.rs) */
    xor %ebp, %ebp                            /* terminates frame-pointer stack traces */
    mov %edi, %edi                            /* zero-extend the 32-bit arguments */
    mov %esi, %esi
    push %rbp
    call xenolith_start
    ud2

    /* The BSP's stack block: 64 KiB, 64 KiB-aligned like every CPU's (arch percpu.rs). The
     * linker script does the 64 KiB alignment: a section alignment above the page size would
     * raise the segment's alignment and break the constant p_offset - p_paddr the multiboot1
     * address kludge needs. */
    .section .bss.xenolith_bsp_stack, "aw", @nobits
    .balign 4096
    .global xenolith_bsp_stack_bottom
xenolith_bsp_stack_bottom:
    .skip 64 * 1024
    .global xenolith_bsp_stack_top
xenolith_bsp_stack_top:
    "#,
    options(att_syntax)
);
