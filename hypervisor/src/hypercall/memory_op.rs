//! `HYPERVISOR_memory_op` (Xen's `do_memory_op`, `xen/common/memory.c`, and `arch_memory_op`).

use super::Ctx;
use crate::guest_mem::{read_guest, write_guest};
use xen_abi::errno::Errno;
use xenolith_arch::layout::{RO_MPT_VIRT_END, RO_MPT_VIRT_START};

use xen_abi::memory::{
    XENMEM_current_reservation, XENMEM_machphys_mapping, XENMEM_maximum_gpfn,
    XENMEM_maximum_ram_page, XENMEM_maximum_reservation,
};
use xen_abi::xen::DOMID_SELF;
/// The low bits of `cmd` select the operation; the rest is a continuation's start extent.
const MEMOP_CMD_MASK: u32 = (1 << 6) - 1;

/// `memory_op(cmd, arg)`.
pub fn do_memory_op(ctx: &mut Ctx<'_>, a: [u64; 5]) -> Result<i64, Errno> {
    let d = ctx.vcpu.domain();
    match a[0] as u32 & MEMOP_CMD_MASK {
        XENMEM_maximum_ram_page => Ok(crate::mm::m2p::max_page() as i64),
        op @ (XENMEM_current_reservation | XENMEM_maximum_reservation | XENMEM_maximum_gpfn) => {
            let domid: u16 = read_guest(a[1])?;
            if domid != DOMID_SELF && domid != d.id {
                // Only the caller itself until more domains exist.
                return Err(Errno::ESRCH);
            }
            Ok(match op {
                XENMEM_current_reservation => d.tot_pages,
                XENMEM_maximum_reservation => d.max_pages,
                _ => d.max_pfn - 1,
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
        _ => Err(Errno::ENOSYS),
    }
}
