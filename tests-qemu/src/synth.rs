//! A synthetic multiboot kernel: a small ELF64 image laid out like Xenolith's (several PT_LOADs
//! with a constant `p_offset - p_paddr`, a multiboot1 header with the address kludge and a
//! multiboot2 header with address and entry tags) around a few bytes of 32-bit code.
//!
//! Unit tests use it as input for the ELF and header checks; the harness's own QEMU tests boot
//! it (it needs no hypervisor build) to check the runner, the module/command-line plumbing, exit
//! statuses and the GRUB ISO builder.
//!
//! What the code does: on multiboot1 it prints `(XEN) tiny: mb1 cmdline=<cmdline>`,
//! `(XEN) tiny: module0=<first module's command line>` and `(XEN) tiny: done`, then writes 0x21
//! to the isa-debug-exit port (QEMU exits with status 0x43). On multiboot2 it prints the same
//! with `mb2` and exits with 0x23 (status 0x47). With any other magic it exits with 0x22.
//!
//! Layout (file offset -> physical address, delta -0x100000):
//! - `0x0000`: ELF header, program headers (PT_LOAD R, PT_LOAD RX, PT_GNU_STACK)
//! - `0x0100`: multiboot1 header; `0x0200`: multiboot2 header
//! - `0x1000` (paddr `0x101000`): the code; the segment's memory runs to `0x102000`.

use crate::elf::{EHDR_SIZE, EM_X86_64, PHDR_SIZE, PT_LOAD};

/// Physical address of file offset 0 (the multiboot `load_addr`).
pub const LOAD_ADDR: u64 = 0x10_0000;
/// File offset of the program header table.
pub const PHDR_OFFSET: usize = EHDR_SIZE;
/// File offset of the multiboot1 header.
pub const MB1_OFFSET: usize = 0x100;
/// File offset of the multiboot2 header.
pub const MB2_OFFSET: usize = 0x200;
/// Length of the multiboot2 header.
pub const MB2_LEN: usize = 0x40;
/// File offset of the code.
pub const CODE_OFFSET: usize = 0x1000;
/// Physical address of the code (and the multiboot entry point).
pub const CODE_PADDR: u64 = LOAD_ADDR + CODE_OFFSET as u64;
/// In-memory size of the code segment (the code, then zero-fill used as the stack).
pub const CODE_MEMSZ: u64 = 0x1000;
/// A high-half virtual base like Xenolith's, for the program headers' `p_vaddr`.
pub const VIRT_BASE: u64 = 0xffff_82d0_4000_0000;
/// The ELF `e_entry` (virtual, as for the real image).
pub const ENTRY_VADDR: u64 = VIRT_BASE + CODE_OFFSET as u64;
/// Value the code writes to the isa-debug-exit port after a multiboot1 boot.
pub const MB1_EXIT_VALUE: i32 = 0x21;
/// Value the code writes to the isa-debug-exit port after a multiboot2 boot.
pub const MB2_EXIT_VALUE: i32 = 0x23;

/// The code, assembled at `CODE_PADDR` (GNU as, `--32`; `ld -Ttext=0x101000 --oformat binary`):
///
/// ```text
///     .code32
///     .text
///     .globl _start
/// _start:
///     mov $0x101f00, %esp          /* stack inside the zero-filled tail of the segment */
///     cmp $0x36d76289, %eax
///     je mb2
///     cmp $0x2BADB002, %eax
///     jne fail
///     mov %ebx, %edi               /* multiboot_info */
///     mov $msg_mb1, %esi
///     call puts
///     mov 16(%edi), %esi           /* cmdline */
///     call puts
///     mov $10, %al
///     call putc
///     mov $msg_mod, %esi
///     call puts
///     mov 20(%edi), %ecx           /* mods_count */
///     test %ecx, %ecx
///     jz 1f
///     mov 24(%edi), %ebx           /* mods_addr */
///     mov 8(%ebx), %esi            /* mods[0].string */
///     call puts
/// 1:  mov $10, %al
///     call putc
///     mov $msg_done, %esi
///     call puts
///     mov $0x21, %eax
///     out %eax, $0xf4
/// hang:
///     hlt
///     jmp hang
/// fail:
///     mov $0x22, %eax
///     out %eax, $0xf4
///     jmp hang
/// mb2:
///     lea 8(%ebx), %edi            /* first tag */
///     mov $msg_mb2, %esi
///     call puts
///     mov $1, %ecx                 /* command line tag */
///     call find_tag
///     test %eax, %eax
///     jz 6f
///     lea 8(%eax), %esi
///     call puts
/// 6:  mov $10, %al
///     call putc
///     mov $msg_mod, %esi
///     call puts
///     mov $3, %ecx                 /* first module tag */
///     call find_tag
///     test %eax, %eax
///     jz 7f
///     lea 16(%eax), %esi
///     call puts
/// 7:  mov $10, %al
///     call putc
///     mov $msg_done, %esi
///     call puts
///     mov $0x23, %eax
///     out %eax, $0xf4
///     jmp hang
/// find_tag:                        /* edi: first tag, ecx: type -> eax: tag or 0 */
///     mov %edi, %eax
/// 3:  mov (%eax), %edx
///     test %edx, %edx
///     jz 5f
///     cmp %ecx, %edx
///     je 4f
///     mov 4(%eax), %edx
///     add $7, %edx
///     and $~7, %edx
///     add %edx, %eax
///     jmp 3b
/// 5:  xor %eax, %eax
/// 4:  ret
/// puts:
///     lodsb
///     test %al, %al
///     jz 2f
///     call putc
///     jmp puts
/// 2:  ret
/// putc:
///     push %edx
///     mov $0x3f8, %dx
///     out %al, %dx
///     pop %edx
///     ret
/// msg_mb1:  .asciz "(XEN) tiny: mb1 cmdline="
/// msg_mb2:  .asciz "(XEN) tiny: mb2 cmdline="
/// msg_mod:  .asciz "(XEN) tiny: module0="
/// msg_done: .asciz "(XEN) tiny: done\n"
/// ```
pub const TINY_CODE: &[u8] = &[
    0xbc, 0x00, 0x1f, 0x10, 0x00, 0x3d, 0x89, 0x62, 0xd7, 0x36, 0x74, 0x62, 0x3d, 0x02, 0xb0, 0xad,
    0x2b, 0x75, 0x52, 0x89, 0xdf, 0xbe, 0x03, 0x11, 0x10, 0x00, 0xe8, 0xcf, 0x00, 0x00, 0x00, 0x8b,
    0x77, 0x10, 0xe8, 0xc7, 0x00, 0x00, 0x00, 0xb0, 0x0a, 0xe8, 0xcd, 0x00, 0x00, 0x00, 0xbe, 0x35,
    0x11, 0x10, 0x00, 0xe8, 0xb6, 0x00, 0x00, 0x00, 0x8b, 0x4f, 0x14, 0x85, 0xc9, 0x74, 0x0b, 0x8b,
    0x5f, 0x18, 0x8b, 0x73, 0x08, 0xe8, 0xa4, 0x00, 0x00, 0x00, 0xb0, 0x0a, 0xe8, 0xaa, 0x00, 0x00,
    0x00, 0xbe, 0x4a, 0x11, 0x10, 0x00, 0xe8, 0x93, 0x00, 0x00, 0x00, 0xb8, 0x21, 0x00, 0x00, 0x00,
    0xe7, 0xf4, 0xf4, 0xeb, 0xfd, 0xb8, 0x22, 0x00, 0x00, 0x00, 0xe7, 0xf4, 0xeb, 0xf4, 0x8d, 0x7b,
    0x08, 0xbe, 0x1c, 0x11, 0x10, 0x00, 0xe8, 0x73, 0x00, 0x00, 0x00, 0xb9, 0x01, 0x00, 0x00, 0x00,
    0xe8, 0x4d, 0x00, 0x00, 0x00, 0x85, 0xc0, 0x74, 0x08, 0x8d, 0x70, 0x08, 0xe8, 0x5d, 0x00, 0x00,
    0x00, 0xb0, 0x0a, 0xe8, 0x63, 0x00, 0x00, 0x00, 0xbe, 0x35, 0x11, 0x10, 0x00, 0xe8, 0x4c, 0x00,
    0x00, 0x00, 0xb9, 0x03, 0x00, 0x00, 0x00, 0xe8, 0x26, 0x00, 0x00, 0x00, 0x85, 0xc0, 0x74, 0x08,
    0x8d, 0x70, 0x10, 0xe8, 0x36, 0x00, 0x00, 0x00, 0xb0, 0x0a, 0xe8, 0x3c, 0x00, 0x00, 0x00, 0xbe,
    0x4a, 0x11, 0x10, 0x00, 0xe8, 0x25, 0x00, 0x00, 0x00, 0xb8, 0x23, 0x00, 0x00, 0x00, 0xe7, 0xf4,
    0xeb, 0x90, 0x89, 0xf8, 0x8b, 0x10, 0x85, 0xd2, 0x74, 0x11, 0x39, 0xca, 0x74, 0x0f, 0x8b, 0x50,
    0x04, 0x83, 0xc2, 0x07, 0x83, 0xe2, 0xf8, 0x01, 0xd0, 0xeb, 0xe9, 0x31, 0xc0, 0xc3, 0xac, 0x84,
    0xc0, 0x74, 0x07, 0xe8, 0x03, 0x00, 0x00, 0x00, 0xeb, 0xf4, 0xc3, 0x52, 0x66, 0xba, 0xf8, 0x03,
    0xee, 0x5a, 0xc3, 0x28, 0x58, 0x45, 0x4e, 0x29, 0x20, 0x74, 0x69, 0x6e, 0x79, 0x3a, 0x20, 0x6d,
    0x62, 0x31, 0x20, 0x63, 0x6d, 0x64, 0x6c, 0x69, 0x6e, 0x65, 0x3d, 0x00, 0x28, 0x58, 0x45, 0x4e,
    0x29, 0x20, 0x74, 0x69, 0x6e, 0x79, 0x3a, 0x20, 0x6d, 0x62, 0x32, 0x20, 0x63, 0x6d, 0x64, 0x6c,
    0x69, 0x6e, 0x65, 0x3d, 0x00, 0x28, 0x58, 0x45, 0x4e, 0x29, 0x20, 0x74, 0x69, 0x6e, 0x79, 0x3a,
    0x20, 0x6d, 0x6f, 0x64, 0x75, 0x6c, 0x65, 0x30, 0x3d, 0x00, 0x28, 0x58, 0x45, 0x4e, 0x29, 0x20,
    0x74, 0x69, 0x6e, 0x79, 0x3a, 0x20, 0x64, 0x6f, 0x6e, 0x65, 0x0a, 0x00,
];

/// The synthetic kernel with [`TINY_CODE`].
pub fn tiny_kernel() -> Vec<u8> {
    build(TINY_CODE)
}

/// Builds the synthetic image around `code` (at most 0xf00 bytes: the rest of the page is the
/// stack).
pub fn build(code: &[u8]) -> Vec<u8> {
    assert!(
        code.len() <= 0xf00,
        "code too large for the synthetic layout"
    );
    let code_len = code.len() as u64;
    let mut img = vec![0u8; CODE_OFFSET + code.len()];
    let load_end = (CODE_PADDR + code_len) as u32;
    let bss_end = (CODE_PADDR + CODE_MEMSZ) as u32;
    let entry = CODE_PADDR as u32;

    // ELF header.
    img[0..4].copy_from_slice(b"\x7fELF");
    img[4] = 2; // ELFCLASS64
    img[5] = 1; // little-endian
    img[6] = 1; // EV_CURRENT
    put16(&mut img, 0x10, 2); // ET_EXEC
    put16(&mut img, 0x12, EM_X86_64);
    put32(&mut img, 0x14, 1);
    put64(&mut img, 0x18, ENTRY_VADDR);
    put64(&mut img, 0x20, PHDR_OFFSET as u64);
    put64(&mut img, 0x28, 0); // no section headers
    put16(&mut img, 0x34, EHDR_SIZE as u16);
    put16(&mut img, 0x36, PHDR_SIZE as u16);
    put16(&mut img, 0x38, 3);
    put16(&mut img, 0x3a, 64);

    // Program headers: headers page (R), code (RX, zero-filled tail), GNU_STACK.
    let phdrs: [(u32, u32, u64, u64, u64, u64, u64); 3] = [
        (PT_LOAD, 4, 0, LOAD_ADDR, 0x1000, 0x1000, 0x1000),
        (
            PT_LOAD,
            5,
            CODE_OFFSET as u64,
            CODE_PADDR,
            code_len,
            CODE_MEMSZ,
            0x1000,
        ),
        (0x6474_e551, 6, 0, 0, 0, 0, 16),
    ];
    for (i, &(ty, flags, off, paddr, filesz, memsz, align)) in phdrs.iter().enumerate() {
        let b = PHDR_OFFSET + i * PHDR_SIZE;
        put32(&mut img, b, ty);
        put32(&mut img, b + 4, flags);
        put64(&mut img, b + 8, off);
        let vaddr = if ty == PT_LOAD { VIRT_BASE + off } else { 0 };
        put64(&mut img, b + 16, vaddr);
        put64(&mut img, b + 24, paddr);
        put64(&mut img, b + 32, filesz);
        put64(&mut img, b + 40, memsz);
        put64(&mut img, b + 48, align);
    }

    // Multiboot1 header: memory info + address kludge.
    let magic1: u32 = 0x1BAD_B002;
    let flags1: u32 = (1 << 1) | (1 << 16);
    let m = MB1_OFFSET;
    put32(&mut img, m, magic1);
    put32(&mut img, m + 4, flags1);
    put32(
        &mut img,
        m + 8,
        0u32.wrapping_sub(magic1.wrapping_add(flags1)),
    );
    put32(&mut img, m + 12, (LOAD_ADDR + MB1_OFFSET as u64) as u32);
    put32(&mut img, m + 16, LOAD_ADDR as u32);
    put32(&mut img, m + 20, load_end);
    put32(&mut img, m + 24, bss_end);
    put32(&mut img, m + 28, entry);

    // Multiboot2 header: address tag, entry tag, end tag.
    let magic2: u32 = 0xE852_50D6;
    let m = MB2_OFFSET;
    put32(&mut img, m, magic2);
    put32(&mut img, m + 4, 0);
    put32(&mut img, m + 8, MB2_LEN as u32);
    put32(
        &mut img,
        m + 12,
        0u32.wrapping_sub(magic2.wrapping_add(MB2_LEN as u32)),
    );
    put16(&mut img, m + 16, 2);
    put32(&mut img, m + 20, 24);
    put32(&mut img, m + 24, (LOAD_ADDR + MB2_OFFSET as u64) as u32);
    put32(&mut img, m + 28, LOAD_ADDR as u32);
    put32(&mut img, m + 32, load_end);
    put32(&mut img, m + 36, bss_end);
    put16(&mut img, m + 40, 3);
    put32(&mut img, m + 44, 12);
    put32(&mut img, m + 48, entry);
    // (4 bytes of padding to the 8-byte boundary)
    put16(&mut img, m + 56, 0);
    put32(&mut img, m + 60, 8);

    img[CODE_OFFSET..].copy_from_slice(code);
    img
}

fn put16(b: &mut [u8], off: usize, v: u16) {
    b[off..off + 2].copy_from_slice(&v.to_le_bytes());
}

fn put32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_le_bytes());
}

fn put64(b: &mut [u8], off: usize, v: u64) {
    b[off..off + 8].copy_from_slice(&v.to_le_bytes());
}
