//! `HYPERVISOR_grant_table_op` (Xen's `do_grant_table_op`, `xen/common/grant_table.c`): the
//! guest-memory half of every `GNTTABOP_*`. The operations themselves are the grant-table
//! core's (`crate::gnttab`, whose module documentation lists what this layer owes each one);
//! they run on the machine through `domain::grants::Host`.
//!
//! The one difference from Xen: no preemption (an array is processed in one go, so no
//! continuation is ever created; the `cache_flush` scan position a continuation would carry in
//! the command's upper bits is still honoured).

use super::Ctx;
use crate::domain::grants::{self, Host};
use crate::gnttab::GrantHost;
use crate::gnttab::layout::{CMD_MASK, CONTINUATION_ARG_SHIFT};
use crate::gnttab::ops::cache_flush::{CacheFlushStep, cache_flush};
use crate::gnttab::ops::copy::CopyBatch;
use crate::gnttab::ops::unmap::{
    PendingUnmap, UNMAP_BATCH, complete_unmap, unmap_and_replace, unmap_grant_ref,
};
use crate::gnttab::ops::{map, setup, swap, transfer};
use crate::guest_mem::{copy_to_guest, read_guest, write_guest};
use alloc::vec::Vec;
use core::mem::size_of;
use xen_abi::errno::Errno;
use xen_abi::grant_table::{
    GNTST_bad_virt_addr, GNTST_okay, GNTTABOP_cache_flush, GNTTABOP_copy,
    GNTTABOP_get_status_frames, GNTTABOP_get_version, GNTTABOP_map_grant_ref, GNTTABOP_query_size,
    GNTTABOP_set_version, GNTTABOP_setup_table, GNTTABOP_swap_grant_ref, GNTTABOP_transfer,
    GNTTABOP_unmap_and_replace, GNTTABOP_unmap_grant_ref, GnttabCacheFlush, GnttabCopy,
    GnttabGetStatusFrames, GnttabGetVersion, GnttabMapGrantRef, GnttabQuerySize, GnttabSetVersion,
    GnttabSetupTable, GnttabSwapGrantRef, GnttabTransfer, GnttabUnmapAndReplace,
    GnttabUnmapGrantRef,
};
use xenolith_arch::layout::HYPERVISOR_VIRT_END;
use zerocopy::{FromBytes, IntoBytes};

/// `guest_handle_okay(uop, count)` (`array_access_ok`): the size does not overflow and the
/// array *starts* in guest space (Xen's 64-bit `access_ok` checks only the start address, so
/// an empty array at a hypervisor address is refused too). Each element is checked again when
/// it is copied.
fn array_ok<T>(uop: u64, count: u32) -> bool {
    let fits = u64::from(count) < u64::MAX / size_of::<T>() as u64;
    fits && !(1 << 47..HYPERVISOR_VIRT_END).contains(&uop)
}

/// The address of element `i` of the array at `uop` (wrapping like the guest's pointer
/// arithmetic; the copy checks the result).
fn element_addr<T>(uop: u64, i: u32) -> u64 {
    uop.wrapping_add(u64::from(i).wrapping_mul(size_of::<T>() as u64))
}

/// Element `i` of the array at `uop`.
fn element<T: FromBytes + IntoBytes>(uop: u64, i: u32) -> Result<T, Errno> {
    read_guest(element_addr::<T>(uop, i))
}

/// `__copy_field_to_guest(uop, &op, status)`: the `i16` at byte `offset` of element `i`.
fn put_status<T>(uop: u64, i: u32, offset: usize, status: i16) -> Result<(), Errno> {
    let at = element_addr::<T>(uop, i).wrapping_add(offset as u64);
    copy_to_guest(at, &status.to_le_bytes())
}

/// Writes a frame list (`setup_table`, `get_status_frames`): `GNTST_bad_virt_addr` at the
/// first fault, as Xen.
fn put_frames(list: u64, frames: &[u64]) -> i16 {
    for (i, f) in frames.iter().enumerate() {
        if copy_to_guest(list.wrapping_add(i as u64 * 8), &f.to_le_bytes()).is_err() {
            return GNTST_bad_virt_addr;
        }
    }
    GNTST_okay
}

/// `grant_table_op(cmd, uop, count)`.
pub fn do_grant_table_op(ctx: &mut Ctx<'_>, a: [u64; 5]) -> Result<i64, Errno> {
    let (cmd, uop, count) = (a[0] as u32, a[1], a[2] as u32);
    if (count as i32) < 0 {
        return Err(Errno::EINVAL);
    }
    let opaque = cmd & !CMD_MASK;
    let cmd = cmd & CMD_MASK;
    if cmd != GNTTABOP_cache_flush && opaque != 0 {
        return Err(Errno::EINVAL);
    }
    let host = Host::for_vcpu(ctx.vcpu);
    let me = ctx.vcpu.domain().id;
    let vcpu = ctx.vcpu.id;
    let rc = op(
        &host,
        me,
        vcpu,
        cmd,
        uop,
        count,
        opaque >> CONTINUATION_ARG_SHIFT,
    );
    // Unmapping may have released the last pin on a dead domain's table.
    grants::reap();
    if host.take_crash() == Some(me) {
        // unmap found a mapping of a domain that no longer exists (Xen's "naughty" case).
        crate::domain::crash(
            ctx.vcpu,
            ctx.regs,
            "grant unmap of a domain that no longer exists",
        );
    }
    rc
}

fn op(
    host: &Host,
    me: u16,
    vcpu: u32,
    cmd: u32,
    uop: u64,
    count: u32,
    cur_ref: u32,
) -> Result<i64, Errno> {
    match cmd {
        GNTTABOP_map_grant_ref => {
            if !array_ok::<GnttabMapGrantRef>(uop, count) {
                return Err(Errno::EFAULT);
            }
            for i in 0..count {
                let mut op: GnttabMapGrantRef = element(uop, i)?;
                map::map_grant_ref(host, me, vcpu, &mut op);
                write_guest(element_addr::<GnttabMapGrantRef>(uop, i), &op)?;
            }
            Ok(0)
        }
        GNTTABOP_unmap_grant_ref => {
            if !array_ok::<GnttabUnmapGrantRef>(uop, count) {
                return Err(Errno::EFAULT);
            }
            unmap_batches(host, me, count, |i| {
                let mut op: GnttabUnmapGrantRef = element(uop, i)?;
                let p = unmap_grant_ref(host, me, &mut op);
                Ok((p, put_status::<GnttabUnmapGrantRef>(uop, i, 20, op.status)))
            })
        }
        GNTTABOP_unmap_and_replace => {
            if !array_ok::<GnttabUnmapAndReplace>(uop, count) {
                return Err(Errno::EFAULT);
            }
            unmap_batches(host, me, count, |i| {
                let mut op: GnttabUnmapAndReplace = element(uop, i)?;
                let p = unmap_and_replace(host, me, &mut op);
                Ok((
                    p,
                    put_status::<GnttabUnmapAndReplace>(uop, i, 20, op.status),
                ))
            })
        }
        GNTTABOP_setup_table => {
            if count != 1 {
                return Err(Errno::EINVAL);
            }
            let mut op: GnttabSetupTable = read_guest(uop)?;
            if !array_ok::<u64>(op.frame_list.0, op.nr_frames) {
                return Err(Errno::EFAULT);
            }
            op.status = match setup::setup_table(host, me, op.dom, op.nr_frames) {
                Ok(frames) => put_frames(op.frame_list.0, &frames),
                Err(st) => st,
            };
            put_status::<GnttabSetupTable>(uop, 0, 8, op.status)?;
            Ok(0)
        }
        GNTTABOP_transfer => {
            if !crate::options::gnttab_booted().transfer {
                return Err(Errno::EOPNOTSUPP);
            }
            if !array_ok::<GnttabTransfer>(uop, count) {
                return Err(Errno::EFAULT);
            }
            for i in 0..count {
                let mut op: GnttabTransfer = element(uop, i)?;
                transfer::transfer(host, me, &mut op);
                put_status::<GnttabTransfer>(uop, i, 16, op.status)?;
            }
            Ok(0)
        }
        GNTTABOP_copy => {
            if !array_ok::<GnttabCopy>(uop, count) {
                return Err(Errno::EFAULT);
            }
            let mut batch = CopyBatch::new();
            let mut rc = Ok(0);
            for i in 0..count {
                let mut op: GnttabCopy = match element(uop, i) {
                    Ok(op) => op,
                    Err(e) => {
                        rc = Err(e);
                        break;
                    }
                };
                batch.copy_one(host, me, &mut op);
                if let Err(e) = put_status::<GnttabCopy>(uop, i, 36, op.status) {
                    rc = Err(e);
                    break;
                }
            }
            batch.finish(host);
            rc
        }
        GNTTABOP_query_size => {
            if count != 1 {
                return Err(Errno::EINVAL);
            }
            let mut op: GnttabQuerySize = read_guest(uop)?;
            match setup::query_size(host, me, op.dom) {
                Ok((nr, max)) => {
                    op.nr_frames = nr;
                    op.max_nr_frames = max;
                    op.status = GNTST_okay;
                }
                Err(st) => op.status = st,
            }
            write_guest(uop, &op)?;
            Ok(0)
        }
        GNTTABOP_set_version => {
            let mut op: GnttabSetVersion = read_guest(uop)?;
            let r = setup::set_version(host, me, op.version);
            op.version = r.version;
            write_guest(uop, &op)?;
            r.result.map(|()| 0)
        }
        GNTTABOP_get_status_frames => {
            if count != 1 {
                return Err(Errno::EINVAL);
            }
            let mut op: GnttabGetStatusFrames = read_guest(uop)?;
            if !array_ok::<u64>(op.frame_list.0, op.nr_frames) {
                return Err(Errno::EFAULT);
            }
            op.status = match setup::get_status_frames(host, me, op.dom, op.nr_frames) {
                Ok(frames) => put_frames(op.frame_list.0, &frames),
                Err(st) => st,
            };
            put_status::<GnttabGetStatusFrames>(uop, 0, 6, op.status)?;
            Ok(0)
        }
        GNTTABOP_get_version => {
            let op: GnttabGetVersion = read_guest(uop)?;
            let version = setup::get_version(host, me, op.dom)?;
            copy_to_guest(uop.wrapping_add(4), &version.to_le_bytes())?;
            Ok(0)
        }
        GNTTABOP_swap_grant_ref => {
            if !array_ok::<GnttabSwapGrantRef>(uop, count) {
                return Err(Errno::EFAULT);
            }
            for i in 0..count {
                let op: GnttabSwapGrantRef = element(uop, i)?;
                let st = swap::swap_grant_ref(host, me, op.ref_a, op.ref_b);
                put_status::<GnttabSwapGrantRef>(uop, i, 8, st)?;
            }
            Ok(0)
        }
        GNTTABOP_cache_flush => {
            if !array_ok::<GnttabCacheFlush>(uop, count) {
                return Err(Errno::EFAULT);
            }
            let mut cur_ref = cur_ref;
            for i in 0..count {
                let op: GnttabCacheFlush = element(uop, i)?;
                while cache_flush(host, me, &op, &mut cur_ref)? == CacheFlushStep::Again {}
                cur_ref = 0;
            }
            Ok(0)
        }
        // GNTTABOP_dump_table (3) among them, as in Xen 4.17.
        _ => Err(Errno::ENOSYS),
    }
}

/// One element's first phase of an unmap, and whether its status could be written back.
type UnmapOne = (Option<PendingUnmap>, Result<(), Errno>);

/// The unmap loop of `gnttab_unmap_grant_ref`: `one(i)` unmaps element `i` (first phase) and
/// reports whether its status could be written back. Every batch of [`UNMAP_BATCH`] is
/// followed by a TLB flush of the caller's CPUs, then the second phases; on a fault the
/// elements done so far are still flushed and completed, and the hypercall fails `-EFAULT`.
fn unmap_batches(
    host: &Host,
    me: u16,
    count: u32,
    mut one: impl FnMut(u32) -> Result<UnmapOne, Errno>,
) -> Result<i64, Errno> {
    let mut i = 0;
    while i < count {
        let end = count.min(i + UNMAP_BATCH as u32);
        let mut pending = Vec::with_capacity(UNMAP_BATCH);
        let mut rc = Ok(0);
        while i < end {
            match one(i) {
                Ok((p, written)) => {
                    pending.extend(p);
                    if let Err(e) = written {
                        rc = Err(e);
                        break;
                    }
                }
                Err(e) => {
                    rc = Err(e);
                    break;
                }
            }
            i += 1;
        }
        host.flush_tlb(me);
        for p in pending {
            complete_unmap(host, me, p);
        }
        rc?;
    }
    Ok(0)
}

/// The machine frame of the caller's shared grant frame `idx`, growing the table to include
/// it (an HVM guest's `XENMEM_add_to_physmap(XENMAPSPACE_grant_table)`, Xen's
/// `gnttab_map_frame`).
pub fn shared_frame_for_physmap(v: &crate::domain::Vcpu, idx: u32) -> Result<u64, Errno> {
    let host = Host::for_vcpu(v);
    let me = v.domain().id;
    let frames = setup::setup_table(&host, me, me, idx + 1).map_err(|_| Errno::EINVAL)?;
    frames.get(idx as usize).copied().ok_or(Errno::EINVAL)
}
