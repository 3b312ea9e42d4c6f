//! Hypercalls from HVM (PVH) guests: Xen's `hvm_hypercall` table. The PV-only hypercalls
//! (page tables, descriptor tables, trap tables, callbacks, stack switching, segment bases,
//! debug registers) are not in it and return `-ENOSYS`, as on Xen. A 64-bit caller passes
//! arguments in `rdi rsi rdx r10 r8`; a 32-bit one in `ebx ecx edx esi edi`, and only the
//! hypercalls whose arguments have the same layout in both ABIs are accepted from it (no
//! compat translation yet).

#![allow(non_upper_case_globals)] // Xen's constant names, as spelled in its headers

use super::HvmDomain;
use crate::domain::Vcpu;
use crate::guest_mem::{read_guest, write_guest};
use crate::hypercall::{Ctx, Handler};
use xen_abi::errno::Errno;
use xen_abi::hvm::{
    HVM_PARAM_CALLBACK_IRQ, HVMOP_get_param, HVMOP_get_time, HVMOP_set_evtchn_upcall_vector,
    HVMOP_set_param, XenHvmEvtchnUpcallVector, XenHvmGetTime, XenHvmParam,
};
use xen_abi::hypercall as nr;
use xen_abi::memory::{
    XENMAPSPACE_grant_table, XENMAPSPACE_shared_info, XENMEM_add_to_physmap,
    XENMEM_current_reservation, XENMEM_decrease_reservation, XENMEM_maximum_gpfn,
    XENMEM_maximum_reservation, XENMEM_memory_map, XENMEM_populate_physmap, XenAddToPhysmap,
    XenMemoryReservation,
};
use xen_abi::xen::DOMID_SELF;
use xenolith_arch::trap::TrapFrame;

/// The handler for HVM hypercall `number`, if HVM guests have it.
fn lookup(number: u64) -> Option<Handler> {
    match number {
        nr::memory_op => Some(do_memory_op),
        nr::hvm_op => Some(do_hvm_op),
        nr::console_io
        | nr::xen_version
        | nr::sched_op
        | nr::vcpu_op
        | nr::set_timer_op
        | nr::event_channel_op
        | nr::grant_table_op
        | nr::physdev_op
        | nr::platform_op => crate::hypercall::lookup(number),
        _ => None,
    }
}

/// Hypercalls a 32-bit caller may make: their arguments are scalars or structures laid out
/// the same way in the 32- and 64-bit ABIs.
fn compat_safe(number: u64) -> bool {
    matches!(
        number,
        nr::console_io
            | nr::xen_version
            | nr::sched_op
            | nr::set_timer_op
            | nr::event_channel_op
            | nr::hvm_op
    )
}

/// Runs the hypercall in `frame` (the guest's registers, rip past the VMCALL/VMMCALL) for
/// `v`, a 64-bit caller if `long`, and stores the result in `frame.rax`.
pub fn dispatch(v: &mut Vcpu, frame: &mut TrapFrame, long: bool) {
    let (number, args) = if long {
        (
            frame.rax,
            [frame.rdi, frame.rsi, frame.rdx, frame.r10, frame.r8],
        )
    } else {
        let m = |r: u64| r & 0xffff_ffff;
        (
            m(frame.rax),
            [
                m(frame.rbx),
                m(frame.rcx),
                m(frame.rdx),
                m(frame.rsi),
                m(frame.rdi),
            ],
        )
    };
    let handler = lookup(number).filter(|_| long || compat_safe(number));
    let mut ctx = Ctx {
        vcpu: v,
        regs: frame,
    };
    let ret = match handler {
        Some(h) => match h(&mut ctx, args) {
            Ok(r) => r as u64,
            Err(e) => e.to_ret() as u64,
        },
        None => Errno::ENOSYS.to_ret() as u64,
    };
    ctx.regs.rax = if long { ret } else { ret & 0xffff_ffff };
}

fn hvm(v: &Vcpu) -> Result<&HvmDomain, Errno> {
    v.domain().hvm.as_ref().ok_or(Errno::ENOSYS)
}

/// `HYPERVISOR_hvm_op(op, arg)` for the guest itself.
fn do_hvm_op(ctx: &mut Ctx<'_>, a: [u64; 5]) -> Result<i64, Errno> {
    let d = ctx.vcpu.domain();
    match a[0] as u32 {
        op @ (HVMOP_set_param | HVMOP_get_param) => {
            let mut p: XenHvmParam = read_guest(a[1])?;
            if p.domid != DOMID_SELF && p.domid != d.id {
                // Another domain's parameters: the toolstack's (not supported here).
                return Err(if crate::domain::registry::get(p.domid).is_some() {
                    Errno::EPERM
                } else {
                    Errno::ESRCH
                });
            }
            let index = p.index as usize;
            if index >= super::HVM_NR_PARAMS {
                return Err(Errno::EINVAL);
            }
            let h = hvm(ctx.vcpu)?;
            if op == HVMOP_set_param {
                // What a guest may set on itself (Xen's `hvm_allow_set_param`): the callback.
                if p.index != HVM_PARAM_CALLBACK_IRQ {
                    return Err(Errno::EPERM);
                }
                h.params.lock()[index] = p.value;
                Ok(0)
            } else {
                p.value = h.params.lock()[index];
                write_guest(a[1], &p).map(|_| 0)
            }
        }
        HVMOP_set_evtchn_upcall_vector => {
            let op: XenHvmEvtchnUpcallVector = read_guest(a[1])?;
            if op.vector < 0x10 {
                return Err(Errno::EINVAL);
            }
            let w = d.vcpu_ptr(op.vcpu).ok_or(Errno::ENOENT)?;
            // SAFETY: vCPUs live as long as their domain; the per-vCPU vector is read by its
            // own CPU on entry, a racing read only delays or advances its first use.
            let w = unsafe { &mut *w };
            if let Some(hv) = w.hvm.as_mut() {
                hv.upcall_vector = op.vector;
            }
            Ok(0)
        }
        HVMOP_get_time => write_guest(
            a[1],
            &XenHvmGetTime {
                now: crate::pv::time::now(),
            },
        )
        .map(|_| 0),
        _ => Err(Errno::ENOSYS),
    }
}

/// `HYPERVISOR_memory_op` for an HVM guest: its physmap (shared_info and grant frames mapped
/// where it asks), its memory map and reservation queries.
fn do_memory_op(ctx: &mut Ctx<'_>, a: [u64; 5]) -> Result<i64, Errno> {
    let d = ctx.vcpu.domain();
    let h = hvm(ctx.vcpu)?;
    match a[0] as u32 & 0x3f {
        XENMEM_add_to_physmap => {
            let x: XenAddToPhysmap = read_guest(a[1])?;
            if x.domid != DOMID_SELF && x.domid != d.id {
                return Err(Errno::EPERM);
            }
            let mfn = match x.space {
                XENMAPSPACE_shared_info if x.idx == 0 => d.shared_info_mfn,
                XENMAPSPACE_shared_info => return Err(Errno::EINVAL),
                XENMAPSPACE_grant_table if x.idx & (1 << 31) == 0 => {
                    crate::hypercall::grant_table_op::shared_frame_for_physmap(
                        ctx.vcpu,
                        x.idx as u32,
                    )?
                }
                _ => return Err(Errno::ENOSYS),
            };
            let gpa = x.gpfn.checked_mul(4096).ok_or(Errno::EINVAL)?;
            if gpa >= 1 << 48 {
                return Err(Errno::EINVAL);
            }
            // The RAM page that was there stays with the domain (Xen would free it; the
            // domain's accounting is unchanged here).
            h.p2m
                .map(&mut super::HostFrames, gpa, mfn << 12, 4096)
                .map_err(|_| Errno::ENOMEM)?;
            Ok(0)
        }
        XENMEM_memory_map => {
            // struct xen_memory_map { unsigned int nr_entries; XEN_GUEST_HANDLE(void) buffer; }
            let mut b = [0u8; 16];
            crate::guest_mem::copy_from_guest(&mut b, a[1])?;
            let room = u32::from_le_bytes(b[..4].try_into().unwrap_or_default()) as usize;
            let buffer = u64::from_le_bytes(b[8..16].try_into().unwrap_or_default());
            let n = h.e820.len().min(room);
            let mut out = alloc::vec::Vec::with_capacity(n * 20);
            for e in &h.e820[..n] {
                out.extend_from_slice(&e.addr.to_le_bytes());
                out.extend_from_slice(&e.size.to_le_bytes());
                out.extend_from_slice(&e.kind.to_le_bytes());
            }
            crate::guest_mem::copy_to_guest(buffer, &out)?;
            crate::guest_mem::copy_to_guest(a[1], &(n as u32).to_le_bytes())?;
            Ok(0)
        }
        op @ (XENMEM_decrease_reservation | XENMEM_populate_physmap) => {
            let r: XenMemoryReservation = read_guest(a[1])?;
            if r.domid != DOMID_SELF && r.domid != d.id {
                return Err(Errno::EPERM);
            }
            // Single pages only (what balloon drivers use); larger extents are refused.
            if r.extent_order != 0 {
                return Err(Errno::EINVAL);
            }
            let mut done = 0i64;
            for i in 0..r.nr_extents {
                let gfn: u64 = read_guest(r.extent_start.0.wrapping_add(i * 8))?;
                let ok = if op == XENMEM_decrease_reservation {
                    remove_page(d, h, gfn)
                } else {
                    add_page(d, h, gfn)
                };
                if !ok {
                    break;
                }
                done += 1;
            }
            if op == XENMEM_decrease_reservation && done != 0 && h.vendor == super::Vendor::Vmx {
                // A removed EPT translation may be cached; this CPU is the only one that ran
                // the domain's (single) vCPU.
                xenolith_arch::hvm::vmx::flush_ept(&h.p2m);
            }
            Ok(done)
        }
        XENMEM_current_reservation | XENMEM_maximum_reservation | XENMEM_maximum_gpfn => {
            crate::hypercall::memory_op::do_memory_op(ctx, a)
        }
        _ => Err(Errno::ENOSYS),
    }
}

/// Takes RAM page `gfn` away from the guest (`decrease_reservation`): its frame goes back to
/// the free pool. False if nothing the guest owns is mapped there.
fn remove_page(d: &crate::domain::Domain, h: &HvmDomain, gfn: u64) -> bool {
    use crate::pvmm::{FrameEnv, PageInfo};
    let Some(pa) = gfn
        .checked_mul(4096)
        .filter(|&gpa| gpa < 1 << 48)
        .and_then(|gpa| h.p2m.translate(gpa))
    else {
        return false;
    };
    let mfn = pa >> 12;
    let mut env = crate::mm::frametable::lock();
    let Some(page) = env.page_mut(mfn) else {
        return false;
    };
    // Only an ordinary RAM page of the guest's: not shared_info, grant or ring frames.
    if *page != PageInfo::assigned(d.id) || mfn == d.shared_info_mfn {
        return false;
    }
    h.p2m.unmap(gfn * 4096);
    *page = PageInfo::FREE;
    drop(env);
    crate::mm::frames::free(mfn << 12, 0);
    d.transferred
        .fetch_sub(1, core::sync::atomic::Ordering::Relaxed);
    true
}

/// Backs `gfn` with a fresh, zeroed frame (`populate_physmap`). False if the domain is at its
/// allocation ceiling, memory is short, or `gfn` is already backed.
fn add_page(d: &crate::domain::Domain, h: &HvmDomain, gfn: u64) -> bool {
    use crate::pvmm::{FrameEnv, PageInfo};
    use core::sync::atomic::Ordering;
    let Some(gpa) = gfn.checked_mul(4096).filter(|&gpa| gpa < 1 << 48) else {
        return false;
    };
    let allocated = d.tot_pages as i64 + d.transferred.load(Ordering::Relaxed);
    if allocated >= d.max_pages as i64 || h.p2m.translate(gpa).is_some() {
        return false;
    }
    let Ok(frames) = crate::domain::build::allocate(1) else {
        return false;
    };
    let mfn = frames[0];
    if let Some(p) = crate::mm::frametable::lock().page_mut(mfn) {
        *p = PageInfo::assigned(d.id);
    }
    crate::mm::m2p::set(mfn, gfn);
    if h.p2m
        .map(&mut super::HostFrames, gpa, mfn << 12, 4096)
        .is_err()
    {
        if let Some(p) = crate::mm::frametable::lock().page_mut(mfn) {
            *p = PageInfo::FREE;
        }
        crate::mm::frames::free(mfn << 12, 0);
        return false;
    }
    d.transferred.fetch_add(1, Ordering::Relaxed);
    true
}
