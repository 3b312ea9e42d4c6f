//! Per-CPU data found from the stack pointer, as Xen's `get_cpu_info()`.
//!
//! Each CPU owns a `STACK_SIZE`-aligned block: the IST stacks in its first pages, the primary
//! stack above them, and a [`CpuInfo`] in the top `CPU_INFO_SIZE` bytes. Code running on any of
//! those stacks finds its CPU by rounding `rsp` up, with no reliance on a guest-controlled GS.

/// Size and alignment of a CPU's stack block.
pub const STACK_SIZE: u64 = 64 * 1024;
/// Buddy order of a stack block.
pub const STACK_ORDER: usize = 4;
/// Bytes reserved at the top of the block for [`CpuInfo`].
pub const CPU_INFO_SIZE: u64 = 256;
/// Size of each IST stack (one page each: #DF, NMI, #MC).
pub const IST_STACK_SIZE: u64 = 4096;

/// What a CPU knows about itself.
#[repr(C)]
#[derive(Debug)]
pub struct CpuInfo {
    /// Logical CPU number (0 = BSP).
    pub cpu: u32,
    /// Local APIC id.
    pub apic_id: u32,
    /// Lowest address of the stack block.
    pub stack_base: u64,
    /// This CPU's descriptor tables (`gdt::CpuTables`), as an address.
    pub tables: u64,
    /// The vCPU running (or last run) on this CPU, as an address; 0 when idle.
    pub current_vcpu: core::sync::atomic::AtomicU64,
}

const _: () = assert!(core::mem::size_of::<CpuInfo>() as u64 <= CPU_INFO_SIZE);

/// The initial stack pointer of a block at `base`: just below its `CpuInfo`.
pub const fn stack_top(base: u64) -> u64 {
    base + STACK_SIZE - CPU_INFO_SIZE
}

/// The top of IST stack `n` (1-based) in a block at `base`.
pub const fn ist_top(base: u64, n: u8) -> u64 {
    base + IST_STACK_SIZE * n as u64
}

/// Address of the `CpuInfo` of the block at `base`.
pub const fn cpu_info_addr(base: u64) -> u64 {
    base + STACK_SIZE - CPU_INFO_SIZE
}

/// The block base containing stack address `rsp`.
pub const fn block_base(rsp: u64) -> u64 {
    rsp & !(STACK_SIZE - 1)
}

/// The end of the guest frame area: the TSS `rsp0` and the SYSCALL stub's stack (the
/// `TrapFrame` of a guest entry ends here).
pub const fn guest_frame_top(base: u64) -> u64 {
    stack_top(base)
}

/// The executing CPU's info.
#[cfg(target_os = "none")]
pub fn current() -> &'static CpuInfo {
    let rsp: u64;
    // SAFETY: reading rsp has no side effects.
    unsafe { core::arch::asm!("mov {}, rsp", out(reg) rsp, options(nomem, nostack)) };
    // SAFETY: every CPU runs on a stack block whose CpuInfo was written before the CPU started
    // using it (BSP: `init_block` first thing; APs: by the BSP before INIT-SIPI).
    unsafe { &*(cpu_info_addr(block_base(rsp)) as *const CpuInfo) }
}

/// Writes the `CpuInfo` of a block.
///
/// # Safety
/// `base` must be a writable, `STACK_SIZE`-aligned block owned by the CPU being described.
pub unsafe fn init_block(base: u64, info: CpuInfo) {
    // SAFETY: the caller guarantees the block is valid and ours to write.
    unsafe { (cpu_info_addr(base) as *mut CpuInfo).write(info) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_arithmetic() {
        let base = 0xffff_8300_0123_0000;
        assert_eq!(block_base(stack_top(base) - 8), base);
        assert_eq!(block_base(ist_top(base, 3) - 8), base);
        assert!(ist_top(base, 3) < stack_top(base) - 32 * 1024);
    }
}
