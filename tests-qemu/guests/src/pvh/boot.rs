//! The 32-bit entry and the switch to 64-bit mode.
//!
//! The hypervisor enters `pvhtest_start32` (`XEN_ELFNOTE_PHYS32_ENTRY`) as `docs/misc/pvh.pandoc`
//! says: 32-bit protected mode, flat 4 GiB segments, paging off, interrupts off, `ebx` = the
//! physical address of `struct hvm_start_info`. The trampoline identity-maps the first 4 GiB
//! with 2 MiB pages (tables in `.bss`, which the ELF loader zeroes), enables PAE, `EFER.LME`
//! and paging, loads its own GDT, jumps to 64-bit code and calls
//! [`crate::run::pvhtest_main`] with the start_info address on a 64 KiB stack.

use core::arch::global_asm;

/// Size of the guest's stack.
const STACK_SIZE: usize = 64 * 1024;

/// GDT selectors (see `pvhtest_gdt`).
pub const CODE64_SEL: u16 = 0x08;
pub const DATA_SEL: u16 = 0x10;

global_asm!(
    ".pushsection .text.pvhtest_entry, \"ax\"",
    ".code32",
    ".global pvhtest_start32",
    "pvhtest_start32:",
    "    cld",
    "    mov $pvhtest_stack_top, %esp",
    "    mov %ebx, %esi",
    // PML4[0] -> PDPT; PDPT[0..4] -> the four PDs; PD entries: 2 MiB pages, present + RW + PS.
    "    mov $pvhtest_pdpt, %eax",
    "    or $3, %eax",
    "    mov %eax, pvhtest_pml4",
    "    mov $pvhtest_pd, %eax",
    "    or $3, %eax",
    "    xor %ecx, %ecx",
    "1:  mov %eax, pvhtest_pdpt(,%ecx,8)",
    "    add $4096, %eax",
    "    inc %ecx",
    "    cmp $4, %ecx",
    "    jne 1b",
    "    xor %ecx, %ecx",
    "2:  mov %ecx, %eax",
    "    shl $21, %eax",
    "    or $0x83, %eax",
    "    mov %eax, pvhtest_pd(,%ecx,8)",
    "    inc %ecx",
    "    cmp $2048, %ecx",
    "    jne 2b",
    // CR4.PAE, CR3, EFER.LME, CR0.PG: long mode (compatibility mode until the far jump).
    "    mov %cr4, %eax",
    "    or $0x20, %eax",
    "    mov %eax, %cr4",
    "    mov $pvhtest_pml4, %eax",
    "    mov %eax, %cr3",
    "    mov $0xc0000080, %ecx",
    "    rdmsr",
    "    or $0x100, %eax",
    "    wrmsr",
    "    mov %cr0, %eax",
    "    or $0x80000001, %eax",
    "    mov %eax, %cr0",
    "    lgdt pvhtest_gdt_ptr",
    "    ljmp ${code64}, $pvhtest_start64",
    ".code64",
    "pvhtest_start64:",
    "    mov ${data}, %eax",
    "    mov %eax, %ds",
    "    mov %eax, %es",
    "    mov %eax, %ss",
    "    xor %eax, %eax",
    "    mov %eax, %fs",
    "    mov %eax, %gs",
    "    mov $pvhtest_stack_top, %esp",
    "    mov %esi, %edi",
    "    call {main}",
    "    ud2",
    ".popsection",
    // Null, 64-bit code, flat data.
    ".pushsection .rodata.pvhtest_gdt, \"a\"",
    ".balign 16",
    "pvhtest_gdt:",
    "    .quad 0",
    "    .quad 0x00af9a000000ffff",
    "    .quad 0x00cf92000000ffff",
    "pvhtest_gdt_end:",
    ".balign 8",
    "pvhtest_gdt_ptr:",
    "    .word pvhtest_gdt_end - pvhtest_gdt - 1",
    "    .quad pvhtest_gdt",
    ".popsection",
    ".pushsection .bss.pvhtest_boot, \"aw\", @nobits",
    ".balign 4096",
    "pvhtest_pml4: .skip 4096",
    "pvhtest_pdpt: .skip 4096",
    "pvhtest_pd: .skip 4 * 4096",
    ".balign 16",
    "pvhtest_stack: .skip {stack_size}",
    "pvhtest_stack_top:",
    ".popsection",
    code64 = const CODE64_SEL,
    data = const DATA_SEL,
    main = sym crate::run::pvhtest_main,
    stack_size = const STACK_SIZE,
    options(att_syntax)
);
