//! `HYPERVISOR_memory_op` (Xen's `do_memory_op`, `xen/common/memory.c`, and `arch_memory_op`).

use super::Ctx;
use crate::guest_mem::{read_guest, write_guest};
use xen_abi::errno::Errno;
use xenolith_arch::layout::{RO_MPT_VIRT_END, RO_MPT_VIRT_START};

use xen_abi::memory::{
    XENMEM_current_reservation, XENMEM_machine_memory_map, XENMEM_machphys_mapping,
    XENMEM_maximum_gpfn, XENMEM_maximum_ram_page, XENMEM_maximum_reservation,
};

/// The machine's memory map as the loader reported it, for `XENMEM_machine_memory_map`.
pub static MACHINE_MEMORY_MAP: spin::Once<alloc::vec::Vec<xenolith_boot::MemoryRegion>> =
    spin::Once::new();
use xen_abi::xen::DOMID_SELF;
/// The low bits of `cmd` select the operation; the rest is a continuation's start extent.
const MEMOP_CMD_MASK: u32 = (1 << 6) - 1;

/// The machine map as Xen reports it to dom0: the loader's map with the IO-APIC and local
/// APIC windows added as reserved, sorted.
fn machine_map() -> alloc::vec::Vec<xenolith_boot::MemoryRegion> {
    use xenolith_boot::{MemoryKind, MemoryRegion};
    let mut map = MACHINE_MEMORY_MAP.get().cloned().unwrap_or_default();
    for (base, len) in [(0xfec0_0000u64, 0x1000u64), (0xfee0_0000, 0x10_0000)] {
        if !map.iter().any(|r| r.base < base + len && base < r.end()) {
            map.push(MemoryRegion {
                base,
                len,
                kind: MemoryKind::Reserved,
            });
        }
    }
    map.sort_by_key(|r| r.base);
    map
}

/// `memory_op(cmd, arg)`.
pub fn do_memory_op(ctx: &mut Ctx<'_>, a: [u64; 5]) -> Result<i64, Errno> {
    let d = ctx.vcpu.domain();
    match a[0] as u32 & MEMOP_CMD_MASK {
        XENMEM_maximum_ram_page => Ok(crate::mm::m2p::max_page() as i64),
        op @ (XENMEM_current_reservation | XENMEM_maximum_reservation | XENMEM_maximum_gpfn) => {
            let domid: u16 = read_guest(a[1])?;
            let d = if domid == DOMID_SELF || domid == d.id {
                d
            } else {
                // rcu_lock_domain_by_any_id, then XSM's XSM_TARGET: the control domain only.
                let other = crate::domain::registry::get_live(domid).ok_or(Errno::ESRCH)?;
                if !d.privileged {
                    return Err(Errno::EPERM);
                }
                other
            };
            Ok(match op {
                XENMEM_current_reservation => d.tot_pages,
                XENMEM_maximum_reservation => d.max_pages,
                // PV: the guest's own view, `shared_info.arch.max_pfn`, minus one (0 until
                // the guest sets it), as Xen's domain_get_maximum_gpfn.
                _ => {
                    let si = xenolith_arch::layout::phys_to_virt(d.shared_info_mfn << 12);
                    // SAFETY: the domain's shared_info page is direct-mapped; arch.max_pfn
                    // is the first word of arch_shared_info at offset 3088.
                    let max_pfn = unsafe { ((si + 3088) as *const u64).read_volatile() };
                    max_pfn.max(1) - 1
                }
            } as i64)
        }
        XENMEM_machphys_mapping => {
            // The hardware domain learns the real top of RAM (no memory hotplug here);
            // others the table's capacity (Xen's subarch_memory_op).
            let max_mfn = if d.privileged {
                crate::mm::m2p::max_page() - 1
            } else {
                ((RO_MPT_VIRT_END - RO_MPT_VIRT_START) >> 3) - 1
            };
            let m = [RO_MPT_VIRT_START, RO_MPT_VIRT_END, max_mfn];
            write_guest(a[1], &m).map(|_| 0)
        }
        XENMEM_machine_memory_map => {
            if !d.privileged {
                return Err(Errno::EPERM);
            }
            // struct xen_memory_map { unsigned int nr_entries; XEN_GUEST_HANDLE(void) buffer; }
            let mut b = [0u8; 16];
            crate::guest_mem::copy_from_guest(&mut b, a[1])?;
            let room = u32::from_le_bytes(b[..4].try_into().unwrap_or_default()) as usize;
            let buffer = u64::from_le_bytes(b[8..16].try_into().unwrap_or_default());
            let map = machine_map();
            if buffer == 0 {
                // Count only.
                crate::guest_mem::copy_to_guest(a[1], &(map.len() as u32).to_le_bytes())?;
                return Ok(0);
            }
            if room < map.len() {
                return Err(Errno::EINVAL);
            }
            let n = map.len();
            let mut out = alloc::vec::Vec::with_capacity(n * 20);
            for r in &map[..n] {
                out.extend_from_slice(&r.base.to_le_bytes());
                out.extend_from_slice(&r.len.to_le_bytes());
                out.extend_from_slice(&r.kind.e820_type().to_le_bytes());
            }
            crate::guest_mem::copy_to_guest(buffer, &out)?;
            crate::guest_mem::copy_to_guest(a[1], &(n as u32).to_le_bytes())?;
            Ok(0)
        }
        _ => Err(Errno::ENOSYS),
    }
}
