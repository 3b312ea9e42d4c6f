//! Per-CPU GDT and TSS in Xen's layout.
//!
//! PV guests use Xen's fixed selectors (`FLAT_RING3_CS64` = 0xe033 and friends from
//! `xen/include/public/arch-x86/xen-x86_64.h`), and a PV guest's own GDT frames occupy the first
//! 14 pages of the GDT. So the hypervisor's descriptors live in the page at byte offset 0xe000
//! (`FIRST_RESERVED_GDT_BYTE`), with the same entries as Xen's `gdt_table`
//! (`xen/arch/x86/boot/x86_64.S`). Each CPU's GDT is a full 64 KiB table: the running vCPU's
//! descriptors are copied into entries below 0xe000 (see `hypercall::desc` in the hypervisor).

use core::mem::size_of;

/// Byte offset of the hypervisor-reserved GDT page (`FIRST_RESERVED_GDT_BYTE`).
pub const FIRST_RESERVED_GDT_BYTE: u16 = 0xe000;
/// Ring-0 64-bit code (`__HYPERVISOR_CS`).
pub const HYPERVISOR_CS: u16 = 0xe008;
/// Ring-0 data (`__HYPERVISOR_DS32`), also SYSCALL's SS.
pub const HYPERVISOR_DS32: u16 = 0xe010;
/// Ring-3 32-bit code (`FLAT_RING3_CS32`); SYSRET's base selector.
pub const FLAT_RING3_CS32: u16 = 0xe023;
/// Ring-3 data (`FLAT_RING3_DS32`, also the 64-bit PV kernel's SS).
pub const FLAT_RING3_DS32: u16 = 0xe02b;
/// Ring-3 64-bit code (`FLAT_RING3_CS64`): PV 64-bit kernel and user code.
pub const FLAT_RING3_CS64: u16 = 0xe033;
/// Ring-0 32-bit code (`__HYPERVISOR_CS32`).
pub const HYPERVISOR_CS32: u16 = 0xe038;
/// The TSS descriptor (`TSS_SELECTOR`).
pub const TSS_SELECTOR: u16 = 0xe040;
/// The LDT descriptor (`LDT_SELECTOR`).
pub const LDT_SELECTOR: u16 = 0xe050;
/// The per-CPU descriptor whose limit is the CPU number (`PER_CPU_SELECTOR`).
pub const PER_CPU_SELECTOR: u16 = 0xe060;

/// IST slot (1-based, as in the IDT) for double faults.
pub const IST_DF: u8 = 1;
/// IST slot for NMIs.
pub const IST_NMI: u8 = 2;
/// IST slot for machine checks.
pub const IST_MCE: u8 = 3;

/// The 64-bit Task State Segment.
#[repr(C, packed(4))]
#[derive(Clone, Copy, Default)]
pub struct Tss {
    reserved0: u32,
    /// Stack pointers loaded on privilege change to ring 0-2.
    pub rsp: [u64; 3],
    reserved1: u64,
    /// Interrupt stack table (IST1-IST7 at indices 0-6).
    pub ist: [u64; 7],
    reserved2: u64,
    reserved3: u16,
    /// Offset of the I/O permission bitmap; past the limit means "no bitmap".
    pub iomap_base: u16,
}

/// Entries of the GDT below the hypervisor's reserved page: a PV guest's own descriptors
/// (`FIRST_RESERVED_GDT_ENTRY`).
pub const GUEST_GDT_ENTRIES: usize = FIRST_RESERVED_GDT_BYTE as usize / 8;

/// One CPU's GDT (16 pages: the running vCPU's descriptors in the first 14, the hypervisor's
/// in the page at 0xe000) and its TSS.
#[repr(C, align(4096))]
pub struct CpuTables {
    /// The whole GDT.
    pub gdt: [u64; 8192],
    /// This CPU's TSS.
    pub tss: Tss,
}

/// Descriptors of Xen's `gdt_table`, indexed from `FIRST_RESERVED_GDT_BYTE`.
const XEN_GDT_TABLE: [u64; 8] = [
    0,                     // 0xe000: unused
    0x00af_9b00_0000_ffff, // 0xe008: ring 0 code, 64-bit mode
    0x00cf_9300_0000_ffff, // 0xe010: ring 0 data
    0,                     // 0xe018: reserved
    0x00cf_fb00_0000_ffff, // 0xe023: ring 3 code, compatibility
    0x00cf_f300_0000_ffff, // 0xe02b: ring 3 data
    0x00af_fb00_0000_ffff, // 0xe033: ring 3 code, 64-bit mode
    0x00cf_9b00_0000_ffff, // 0xe038: ring 0 code, compatibility
];

/// A system-segment descriptor (16 bytes in long mode) for a TSS or LDT.
pub fn system_descriptor(base: u64, limit: u32, typ: u8) -> [u64; 2] {
    let low = u64::from(limit & 0xffff)
        | ((base & 0xff_ffff) << 16)
        | (u64::from(typ) << 40)
        | (1 << 47)
        | ((u64::from(limit) >> 16 & 0xf) << 48)
        | (((base >> 24) & 0xff) << 56);
    [low, base >> 32]
}

impl CpuTables {
    /// Tables for CPU `cpu` with IST stacks whose tops are `ist_tops` (DF, NMI, MCE) and the
    /// ring-0 stack used on entry from a guest, `rsp0`, on the heap (64 KiB: too big for a
    /// boot stack).
    pub fn new_boxed(cpu: u32, ist_tops: [u64; 3], rsp0: u64) -> alloc::boxed::Box<Self> {
        let b = alloc::boxed::Box::<Self>::new_zeroed();
        // SAFETY: all-zero bytes are a valid `CpuTables` (plain integers and arrays of them).
        let mut t = unsafe { b.assume_init() };
        t.setup(cpu, ist_tops, rsp0);
        t
    }

    /// Fills zeroed tables for CPU `cpu` (see [`CpuTables::new_boxed`]).
    fn setup(&mut self, cpu: u32, ist_tops: [u64; 3], rsp0: u64) {
        let gdt = &mut self.gdt;
        gdt[GUEST_GDT_ENTRIES..GUEST_GDT_ENTRIES + XEN_GDT_TABLE.len()]
            .copy_from_slice(&XEN_GDT_TABLE);
        // Per-CPU entry: a present, non-system data-less descriptor whose limit is the CPU
        // number, so `lsl` gives it to code that needs it cheaply (as Xen's RDTSCP fallback).
        gdt[usize::from(PER_CPU_SELECTOR / 8)] =
            0x0000_9100_0000_0000 | u64::from(cpu & 0xffff) | (u64::from(cpu >> 16 & 0xf) << 48);
        let mut tss = Tss {
            iomap_base: size_of::<Tss>() as u16,
            ..Tss::default()
        };
        tss.rsp[0] = rsp0;
        tss.ist[usize::from(IST_DF - 1)] = ist_tops[0];
        tss.ist[usize::from(IST_NMI - 1)] = ist_tops[1];
        tss.ist[usize::from(IST_MCE - 1)] = ist_tops[2];
        self.tss = tss;
    }

    /// The descriptors a PV guest may own (entries 0..7168).
    pub fn guest_entries_mut(&mut self) -> &mut [u64] {
        &mut self.gdt[..GUEST_GDT_ENTRIES]
    }

    /// Installs this CPU's TSS descriptor (called once the tables are at their final address).
    #[cfg(target_os = "none")]
    fn install_tss_descriptor(&mut self) {
        let base = &self.tss as *const Tss as u64;
        let d = system_descriptor(base, size_of::<Tss>() as u32 - 1, 0x9);
        let i = usize::from(TSS_SELECTOR / 8);
        self.gdt[i] = d[0];
        self.gdt[i + 1] = d[1];
    }

    /// The GDTR base.
    pub fn gdt_base(&self) -> u64 {
        self.gdt.as_ptr() as u64
    }

    /// Loads GDTR, reloads CS/SS/DS/ES and loads TR on the executing CPU.
    ///
    /// # Safety
    /// `self` must stay at this address for as long as the CPU runs with these tables (a
    /// `'static` per-CPU allocation), and the caller must be that CPU, in ring 0.
    #[cfg(target_os = "none")]
    pub unsafe fn load(&'static mut self) {
        self.install_tss_descriptor();
        let limit = FIRST_RESERVED_GDT_BYTE + (512 * 8 - 1);
        let gdtr = x86_64::structures::DescriptorTablePointer {
            limit,
            base: x86_64::VirtAddr::new(self.gdt_base()),
        };
        // SAFETY: the descriptors are valid and live forever (caller contract); the far return
        // reloads CS with the 64-bit ring-0 code selector of the table just loaded.
        unsafe {
            x86_64::instructions::tables::lgdt(&gdtr);
            core::arch::asm!(
                "push {cs}",
                "lea {tmp}, [rip + 2f]",
                "push {tmp}",
                "retfq",
                "2:",
                "mov ss, {ds:x}",
                "mov ds, {null:x}",
                "mov es, {null:x}",
                "ltr {tr:x}",
                cs = in(reg) u64::from(HYPERVISOR_CS),
                tmp = lateout(reg) _,
                ds = in(reg) u32::from(HYPERVISOR_DS32),
                null = in(reg) 0u32,
                tr = in(reg) u32::from(TSS_SELECTOR),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tss_is_architectural_size() {
        assert_eq!(size_of::<Tss>(), 104);
    }

    #[test]
    fn selectors_index_xen_table() {
        let t = CpuTables::new_boxed(3, [1, 2, 3], 4);
        let at = |sel: u16| t.gdt[usize::from(sel & !7) / 8];
        assert_eq!(at(HYPERVISOR_CS), 0x00af_9b00_0000_ffff);
        assert_eq!(at(FLAT_RING3_CS64), 0x00af_fb00_0000_ffff);
        assert_eq!(at(FLAT_RING3_DS32), 0x00cf_f300_0000_ffff);
        assert_eq!(at(PER_CPU_SELECTOR) & 0xffff, 3);
        // SYSRET derives CS32 = base, SS = base + 8, CS64 = base + 16 from STAR.
        assert_eq!(FLAT_RING3_CS32 + 8, FLAT_RING3_DS32);
        assert_eq!(FLAT_RING3_CS32 + 16, FLAT_RING3_CS64);
        assert_eq!(HYPERVISOR_CS + 8, HYPERVISOR_DS32);
        let ist = t.tss.ist;
        assert_eq!(ist[0], 1);
    }

    #[test]
    fn system_descriptor_encodes_base_and_limit() {
        let d = system_descriptor(0xffff_82d0_4012_3456, 103, 0x9);
        assert_eq!(d[0] & 0xffff, 103);
        assert_eq!((d[0] >> 16) & 0xff_ffff, 0x12_3456);
        assert_eq!((d[0] >> 56) & 0xff, 0x40);
        assert_eq!(d[1], 0xffff_82d0);
        assert_eq!((d[0] >> 40) & 0xff, 0x89);
    }
}
