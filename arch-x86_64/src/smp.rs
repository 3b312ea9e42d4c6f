//! Application-processor start-up: the real-mode trampoline and the INIT-SIPI-SIPI sequence.
//!
//! The trampoline is copied to a page below 1 MiB (the SIPI vector is its page number). It goes
//! real mode -> protected mode -> long mode on the page tables named in its parameter block,
//! which must identity-map the trampoline page, then jumps to the high-half entry with the stack
//! and CPU number from that block. Parameters are patched by the BSP before each start-up.

/// Offsets inside the trampoline's parameter block.
#[cfg_attr(not(target_os = "none"), allow(dead_code))]
mod off {
    pub const GDTR: usize = 0;
    pub const PM32: usize = 8;
    pub const LM64: usize = 16;
    pub const CR3: usize = 24;
    pub const EFER: usize = 32;
    pub const STACK: usize = 40;
    pub const ENTRY: usize = 48;
    pub const CPU: usize = 56;
    pub const GDT: usize = 64;
}

#[cfg(target_os = "none")]
core::arch::global_asm!(
    r#"
    .section .rodata.xenolith_trampoline, "a"
    .balign 16
    .global xenolith_trampoline_start
xenolith_trampoline_start:
    .code16
    cli
    cld
    mov %cs, %ax
    mov %ax, %ds
    xor %ebx, %ebx
    mov %cs, %bx
    shl $4, %ebx                              /* ebx = linear base, kept through the modes */
    lgdtl (.Ltr_gdtr - xenolith_trampoline_start)
    mov %cr0, %eax
    or $1, %eax
    mov %eax, %cr0
    ljmpl *(.Ltr_pm32 - xenolith_trampoline_start)

    .code32
    .global xenolith_trampoline_code32
xenolith_trampoline_code32:
    mov $0x10, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    mov %cr4, %eax
    or $((1 << 5) | (1 << 7)), %eax           /* PAE | PGE */
    mov %eax, %cr4
    mov (.Ltr_cr3 - xenolith_trampoline_start)(%ebx), %eax
    mov %eax, %cr3
    mov $0xC0000080, %ecx
    rdmsr
    or (.Ltr_efer - xenolith_trampoline_start)(%ebx), %eax
    wrmsr
    mov %cr0, %eax
    or $((1 << 31) | (1 << 16) | (1 << 5) | 1), %eax
    mov %eax, %cr0
    ljmpl *(.Ltr_lm64 - xenolith_trampoline_start)(%ebx)

    .code64
    .global xenolith_trampoline_code64
xenolith_trampoline_code64:
    xor %eax, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    mov (.Ltr_stack - xenolith_trampoline_start)(%rbx), %rsp
    mov (.Ltr_cpu - xenolith_trampoline_start)(%rbx), %rdi
    mov (.Ltr_entry - xenolith_trampoline_start)(%rbx), %rax
    xor %ebp, %ebp
    push %rbp
    jmp *%rax

    .balign 8
    .global xenolith_trampoline_params
xenolith_trampoline_params:
.Ltr_gdtr:  .short 31
            .long 0                            /* patched: linear address of .Ltr_gdt */
            .short 0
.Ltr_pm32:  .long 0                            /* patched: linear address of code32 */
            .short 0x08, 0
.Ltr_lm64:  .long 0                            /* patched: linear address of code64 */
            .short 0x18, 0
.Ltr_cr3:   .quad 0
.Ltr_efer:  .quad 0
.Ltr_stack: .quad 0
.Ltr_entry: .quad 0
.Ltr_cpu:   .quad 0
.Ltr_gdt:   .quad 0
            .quad 0x00cf9a000000ffff           /* 0x08: 32-bit code */
            .quad 0x00cf92000000ffff           /* 0x10: data */
            .quad 0x00af9a000000ffff           /* 0x18: 64-bit code */
    .global xenolith_trampoline_end
xenolith_trampoline_end:
    "#,
    options(att_syntax)
);

#[cfg(target_os = "none")]
unsafe extern "C" {
    static xenolith_trampoline_start: u8;
    static xenolith_trampoline_code32: u8;
    static xenolith_trampoline_code64: u8;
    static xenolith_trampoline_params: u8;
    static xenolith_trampoline_end: u8;
}

/// Per-AP start-up parameters.
#[derive(Clone, Copy, Debug)]
pub struct ApParams {
    /// Physical address (below 4 GiB) of a PML4 that also identity-maps the trampoline page.
    pub cr3: u32,
    /// EFER bits to set (LME, and NXE when the BSP uses NX).
    pub efer: u32,
    /// Initial stack pointer.
    pub stack: u64,
    /// High-half entry point: `extern "C" fn(cpu: u64) -> !`.
    pub entry: u64,
    /// Logical CPU number passed to the entry point.
    pub cpu: u64,
}

/// The installed trampoline.
#[derive(Clone, Copy, Debug)]
#[cfg_attr(not(target_os = "none"), allow(dead_code))]
pub struct Trampoline {
    params: *mut u8,
    pa: u32,
}

// SAFETY: the trampoline page is owned by the BSP's bring-up code, used by one CPU at a time.
unsafe impl Send for Trampoline {}

#[cfg(target_os = "none")]
impl Trampoline {
    /// Copies the trampoline to the page at physical `pa` (page-aligned, below 1 MiB), which is
    /// accessible at `va`, and patches its absolute addresses.
    ///
    /// # Safety
    /// `va` must map the 4 KiB of RAM at `pa`, used by nothing else while APs start.
    pub unsafe fn install(va: *mut u8, pa: u32) -> Self {
        let at = |p: *const u8| p as usize;
        let start = at(core::ptr::addr_of!(xenolith_trampoline_start));
        let rel = |p: *const u8| (at(p) - start) as u32;
        let len = at(core::ptr::addr_of!(xenolith_trampoline_end)) - start;
        assert!(len <= 4096 && pa & 0xfff == 0 && pa < 0x10_0000);
        // SAFETY: copying the immutable blob into the page the caller gives us.
        unsafe { core::ptr::copy_nonoverlapping(start as *const u8, va, len) };
        let params_off = rel(core::ptr::addr_of!(xenolith_trampoline_params));
        // SAFETY: the parameter block lies inside the copy.
        let params = unsafe { va.add(params_off as usize) };
        let t = Self { params, pa };
        // SAFETY: patching fields of the parameter block.
        unsafe {
            t.put32(off::GDTR + 2, pa + params_off + off::GDT as u32);
            t.put32(
                off::PM32,
                pa + rel(core::ptr::addr_of!(xenolith_trampoline_code32)),
            );
            t.put32(
                off::LM64,
                pa + rel(core::ptr::addr_of!(xenolith_trampoline_code64)),
            );
        }
        t
    }

    /// # Safety
    /// `at + 4` must lie inside the parameter block.
    unsafe fn put32(&self, at: usize, v: u32) {
        // SAFETY: inside the block per the caller.
        unsafe { (self.params.add(at) as *mut u32).write_unaligned(v) }
    }

    /// # Safety
    /// `at + 8` must lie inside the parameter block.
    unsafe fn put64(&self, at: usize, v: u64) {
        // SAFETY: inside the block per the caller.
        unsafe { (self.params.add(at) as *mut u64).write_unaligned(v) }
    }

    /// Writes the parameters for the next AP.
    pub fn set_params(&self, p: &ApParams) {
        // SAFETY: all offsets are inside the parameter block of the copy.
        unsafe {
            self.put64(off::CR3, u64::from(p.cr3));
            self.put64(off::EFER, u64::from(p.efer));
            self.put64(off::STACK, p.stack);
            self.put64(off::ENTRY, p.entry);
            self.put64(off::CPU, p.cpu);
        }
    }

    /// The SIPI vector: the page number of the entry.
    pub fn sipi_vector(&self) -> u8 {
        (self.pa >> 12) as u8
    }
}

/// Starts the AP with APIC id `apic_id` at the trampoline: INIT, then two STARTUP IPIs, with
/// the delays of the MultiProcessor Specification (`delay_us` busy-waits).
#[cfg(target_os = "none")]
pub fn start_ap(t: &Trampoline, apic_id: u32, delay_us: impl Fn(u64)) {
    use crate::apic::{ICR_INIT, ICR_STARTUP, send_ipi};
    send_ipi(apic_id, ICR_INIT);
    delay_us(10_000);
    for _ in 0..2 {
        send_ipi(apic_id, ICR_STARTUP | u32::from(t.sipi_vector()));
        delay_us(200);
    }
}

// The parameter block's fields must not overlap (the far pointers are 6 bytes) and the GDT
// must follow them; checked at compile time.
const _: () = {
    assert!(off::GDTR == 0 && off::GDT == 64 && off::CPU + 8 <= off::GDT);
    assert!(off::PM32 >= 6 && off::LM64 >= off::PM32 + 6 && off::CR3 >= off::LM64 + 6);
    assert!(off::STACK > off::EFER && off::ENTRY > off::STACK);
};
