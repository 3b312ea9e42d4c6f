//! The PV MMU hypercalls: `mmu_update`, `update_va_mapping`, `mmuext_op` (Xen's
//! `xen/arch/x86/mm.c`). The page-type rules live in `crate::pvmm`; this is the argument
//! handling, the guest page-table walk and the TLB maintenance around them.

use super::Ctx;
use crate::guest_mem::{copy_from_guest, copy_to_guest, range_ok, read_guest};
use crate::mm::{frametable, m2p};
use crate::pvmm::{self, FrameEnv, Level, MmuCtx};
use crate::sched::{self, CpuMask};
use xen_abi::errno::Errno;
use xen_abi::xen::{
    DOMID_IO, DOMID_SELF, MMU_MACHPHYS_UPDATE, MMUEXT_CLEAR_PAGE, MMUEXT_COPY_PAGE,
    MMUEXT_FLUSH_CACHE, MMUEXT_FLUSH_CACHE_GLOBAL, MMUEXT_INVLPG_ALL, MMUEXT_INVLPG_LOCAL,
    MMUEXT_INVLPG_MULTI, MMUEXT_NEW_BASEPTR, MMUEXT_NEW_USER_BASEPTR, MMUEXT_PIN_L1_TABLE,
    MMUEXT_PIN_L2_TABLE, MMUEXT_PIN_L3_TABLE, MMUEXT_PIN_L4_TABLE, MMUEXT_SET_LDT,
    MMUEXT_TLB_FLUSH_ALL, MMUEXT_TLB_FLUSH_LOCAL, MMUEXT_TLB_FLUSH_MULTI, MMUEXT_UNPIN_TABLE,
    UVMF_FLUSHTYPE_MASK, UVMF_INVLPG, UVMF_TLB_FLUSH,
};
use xenolith_arch::cpu;

/// `count`'s top bit marks a preempted batch being continued (`MMU_UPDATE_PREEMPTED`).
const PREEMPTED: u64 = 1 << 31;

/// The owner of the frames an operation maps (`get_pg_owner`): the caller, or `DOMID_IO` for
/// the hardware domain. Other domains come with multi-domain support.
fn pg_owner(ctx: &Ctx<'_>, foreigndom: u16) -> Result<u16, Errno> {
    let d = ctx.vcpu.domain();
    match foreigndom {
        DOMID_SELF => Ok(d.id),
        x if x == d.id => Ok(d.id),
        DOMID_IO if d.privileged => Ok(DOMID_IO),
        xen_abi::xen::DOMID_XEN if d.privileged => Ok(xen_abi::xen::DOMID_XEN),
        _ => Err(Errno::ESRCH),
    }
}

/// `mmu_update(reqs, count, done, foreigndom)`.
pub fn do_mmu_update(ctx: &mut Ctx<'_>, a: [u64; 5]) -> Result<i64, Errno> {
    let (reqs, count, pdone) = (a[0], a[1] & !PREEMPTED & 0xffff_ffff, a[2]);
    let caller = ctx.vcpu.domain().id;
    let owner = pg_owner(ctx, a[3] as u16)?;
    let mctx = MmuCtx {
        caller,
        pt_owner: caller,
        pg_owner: owner,
    };
    let mut done = 0u64;
    let mut rc = Ok(0);
    let mut need_flush = false;
    while done < count {
        let mut b = [0u8; 16];
        if let Err(e) = copy_from_guest(&mut b, reqs + done * 16) {
            rc = Err(e);
            break;
        }
        let ptr = u64::from_le_bytes(b[..8].try_into().unwrap_or_default());
        let val = u64::from_le_bytes(b[8..].try_into().unwrap_or_default());
        let r = if ptr & 7 == MMU_MACHPHYS_UPDATE {
            // No translation changes (as before, still followed by the flush).
            need_flush = true;
            machphys_update(ptr >> 12, val, owner)
        } else {
            let mut env = frametable::lock();
            let old = l1_entry(&env, ptr);
            let r = pvmm::mmu_pt_update(&mut env, mctx, ptr, val);
            if r.is_ok() && !l1_update_needs_no_flush(&env, old) {
                need_flush = true;
            }
            r
        };
        if let Err(e) = r {
            rc = Err(e);
            break;
        }
        done += 1;
    }
    // Like Xen, an update of an L1 entry flushes nothing: the guest asks for the flushes its
    // own mappings need (`mmuext_op`, `update_va_mapping` flags). Isolation does not depend on
    // it: a frame whose last writable mapping went away can only become a page table (or a
    // descriptor page) through a type change, which flushes every CPU of the owner itself
    // (`flush_tlb_for_type_change`). What the type rules do not cover is an entry whose old
    // frame was freed by the update (its last reference dropped), and changes to L2-L4
    // entries (whole subtrees, and the tables the hypervisor walks): those still flush
    // locally, as every update did before.
    if need_flush {
        cpu::flush_tlb_local();
    }
    if pdone != 0 {
        copy_to_guest(pdone, &(done as u32).to_le_bytes())?;
    }
    rc
}

/// Before an `MMU_*_PT_UPDATE` at `ptr`: the old value of the entry if the table is an L1
/// page table (a frame with a frame-table entry), else `None`.
fn l1_entry(env: &frametable::Env<'_>, ptr: u64) -> Option<u64> {
    let table = ptr >> 12;
    let index = ((ptr & 0xfff) / 8) as usize;
    env.page(table)
        .is_some_and(|p| p.page_type() == pvmm::PageType::L1)
        .then(|| env.read_entry(table, index))
}

/// After a successful update of an entry that held `old` (from [`l1_entry`]): true if no
/// flush is needed, i.e. the table was an L1 and the frame the old entry mapped (if present)
/// still has a general reference, so it was neither freed nor handed to anyone else; a stale
/// translation of it is the guest's own business, as on Xen.
fn l1_update_needs_no_flush(env: &frametable::Env<'_>, old: Option<u64>) -> bool {
    match old {
        None => false,
        Some(old) if old & 1 == 0 => true,
        Some(old) => {
            let mfn = (old & 0x000f_ffff_ffff_f000) >> 12;
            env.page(mfn).is_some_and(|p| p.count() != 0)
        }
    }
}

/// `MMU_MACHPHYS_UPDATE`: the guest records its frame number for one of its frames.
fn machphys_update(mfn: u64, gpfn: u64, owner: u16) -> Result<(), Errno> {
    let env = frametable::lock();
    match env.page(mfn) {
        Some(p) if p.owner == owner => {
            m2p::set(mfn, gpfn);
            Ok(())
        }
        _ => Err(Errno::EINVAL),
    }
}

/// Walks the vCPU's current page tables to the L1 mapping `va` (Xen's `map_guest_l1e`):
/// returns the L1's frame and the entry index, or `None` if a level is absent or a superpage.
fn guest_l1(env: &frametable::Env<'_>, l4: u64, va: u64) -> Option<(u64, usize)> {
    let mut table = l4;
    for level in (2..=4u32).rev() {
        let e = env.read_entry(table, ((va >> (12 + 9 * (level - 1))) & 511) as usize);
        if e & 1 == 0 || (level < 4 && e & 0x80 != 0) {
            return None;
        }
        table = (e & 0x000f_ffff_ffff_f000) >> 12;
    }
    Some((table, ((va >> 12) & 511) as usize))
}

/// `update_va_mapping(va, val, flags)`.
pub fn do_update_va_mapping(ctx: &mut Ctx<'_>, a: [u64; 5]) -> Result<i64, Errno> {
    let (va, val, flags) = (a[0], a[1], a[2]);
    if !range_ok(va, 1) {
        return Err(Errno::EINVAL);
    }
    let caller = ctx.vcpu.domain().id;
    let l4 = if ctx.vcpu.pv.kernel_mode {
        ctx.vcpu.pv.guest_table
    } else {
        ctx.vcpu.pv.guest_table_user
    };
    {
        let mut env = frametable::lock();
        let (l1, index) = guest_l1(&env, l4, va).ok_or(Errno::EINVAL)?;
        pvmm::update_va_mapping_l1(&mut env, MmuCtx::local(caller), l1, index, val)?;
    }
    // UVMF_LOCAL (0), UVMF_ALL, or else the rest of `flags` points to a vCPU mask.
    // As in Xen, the mask is only read when a flush is asked for.
    if flags & UVMF_FLUSHTYPE_MASK == 0 {
        return Ok(0);
    }
    let remote = match flags & !UVMF_FLUSHTYPE_MASK {
        0 => CpuMask::default(),
        xen_abi::xen::UVMF_ALL => sched::cpus_of_vcpus(ctx.vcpu, u64::MAX),
        ptr => sched::cpus_of_vcpus(ctx.vcpu, read_guest::<u64>(ptr)?),
    };
    match flags & UVMF_FLUSHTYPE_MASK {
        UVMF_TLB_FLUSH => cpu::flush_tlb_local(),
        UVMF_INVLPG => cpu::invlpg(va),
        _ => {}
    }
    // Remote INVLPG is done as a full flush.
    sched::flush_cpus(&remote);
    Ok(0)
}

/// `update_va_mapping_otherdomain(va, val, flags, domid)`: as `update_va_mapping`, with the
/// new entry's frame owned by `domid` (`get_pg_owner`: the caller itself, or `DOMID_IO` for the
/// hardware domain, until other domains exist).
pub fn do_update_va_mapping_otherdomain(ctx: &mut Ctx<'_>, a: [u64; 5]) -> Result<i64, Errno> {
    let owner = pg_owner(ctx, a[3] as u16)?;
    if owner != ctx.vcpu.domain().id {
        // Mapping I/O frames this way is what mmu_update with DOMID_IO is for; Xen accepts it,
        // Xenolith does not route foreign owners through update_va_mapping yet.
        return Err(Errno::ENOSYS);
    }
    do_update_va_mapping(ctx, a)
}

/// `mmuext_op(ops, count, done, foreigndom)`.
pub fn do_mmuext_op(ctx: &mut Ctx<'_>, a: [u64; 5]) -> Result<i64, Errno> {
    let (ops, count, pdone) = (a[0], a[1] & !PREEMPTED & 0xffff_ffff, a[2]);
    let caller = ctx.vcpu.domain().id;
    let owner = pg_owner(ctx, a[3] as u16)?;
    let mut done = 0u64;
    let mut rc = Ok(0);
    while done < count {
        let mut b = [0u8; 24];
        if let Err(e) = copy_from_guest(&mut b, ops + done * 24) {
            rc = Err(e);
            break;
        }
        let cmd = u32::from_le_bytes(b[..4].try_into().unwrap_or_default());
        let arg1 = u64::from_le_bytes(b[8..16].try_into().unwrap_or_default());
        let arg2 = u64::from_le_bytes(b[16..24].try_into().unwrap_or_default());
        if let Err(e) = mmuext_one(ctx, caller, owner, cmd, arg1, arg2) {
            rc = Err(e);
            break;
        }
        done += 1;
    }
    if pdone != 0 {
        copy_to_guest(pdone, &(done as u32).to_le_bytes())?;
    }
    rc
}

/// Runs `f` on the direct-map address of `mfn` while holding a writable type reference on it
/// (so it cannot be a page table or descriptor page meanwhile).
fn with_writable_page(dom: u16, mfn: u64, f: impl FnOnce(*mut u8)) -> Result<(), Errno> {
    let mut env = frametable::lock();
    pvmm::get_page_and_type(&mut env, mfn, dom, pvmm::PageType::Writable)
        .map_err(|_| Errno::EINVAL)?;
    f(xenolith_arch::layout::phys_to_virt(mfn << 12) as *mut u8);
    pvmm::put_page_and_type(&mut env, mfn);
    Ok(())
}

fn mmuext_one(
    ctx: &mut Ctx<'_>,
    caller: u16,
    owner: u16,
    cmd: u32,
    arg1: u64,
    arg2: u64,
) -> Result<(), Errno> {
    // Only (un)pinning may name another domain's frames (Xen: -EPERM for the rest).
    let pin_op = matches!(
        cmd,
        MMUEXT_PIN_L1_TABLE
            | MMUEXT_PIN_L2_TABLE
            | MMUEXT_PIN_L3_TABLE
            | MMUEXT_PIN_L4_TABLE
            | MMUEXT_UNPIN_TABLE
    );
    if owner != caller && !pin_op {
        return Err(Errno::EPERM);
    }
    // The other CPUs a flush reaches: the vCPU mask at `arg2` (MULTI) or every vCPU (ALL).
    let remote = match cmd {
        MMUEXT_TLB_FLUSH_MULTI | MMUEXT_INVLPG_MULTI => {
            let mask = read_guest::<u64>(arg2).map_err(|_| Errno::EINVAL)?;
            sched::cpus_of_vcpus(ctx.vcpu, mask)
        }
        MMUEXT_TLB_FLUSH_ALL | MMUEXT_INVLPG_ALL => sched::cpus_of_vcpus(ctx.vcpu, u64::MAX),
        _ => CpuMask::default(),
    };
    let pin = |level| {
        let mut env = frametable::lock();
        pvmm::pin_table(&mut env, owner, arg1, level)
    };
    match cmd {
        MMUEXT_PIN_L1_TABLE => pin(Level::L1),
        MMUEXT_PIN_L2_TABLE => pin(Level::L2),
        MMUEXT_PIN_L3_TABLE => pin(Level::L3),
        MMUEXT_PIN_L4_TABLE => pin(Level::L4),
        MMUEXT_UNPIN_TABLE => {
            let mut env = frametable::lock();
            pvmm::unpin_table(&mut env, owner, arg1)
        }
        MMUEXT_NEW_BASEPTR => {
            let mut env = frametable::lock();
            pvmm::new_baseptr(&mut env, caller, owner, &mut ctx.vcpu.pv.guest_table, arg1)?;
            if ctx.vcpu.pv.kernel_mode {
                // SAFETY: the table was just validated as this domain's L4 with the
                // hypervisor slots in place.
                unsafe { cpu::write_cr3(ctx.vcpu.pv.guest_table << 12) };
            }
            // A new address space: user mappings are global (see `adjust_guest_l1e`), so the
            // old ones go only with a global flush (Xen's `write_ptbase`).
            cpu::flush_tlb_global();
            Ok(())
        }
        MMUEXT_NEW_USER_BASEPTR => {
            let mut env = frametable::lock();
            pvmm::new_user_baseptr(
                &mut env,
                caller,
                owner,
                &mut ctx.vcpu.pv.guest_table_user,
                arg1,
            )
        }
        // MULTI/ALL: this CPU only if its vCPU is in the mask (ALL: always), the others by
        // shootdown (a remote INVLPG is done as a full flush).
        MMUEXT_TLB_FLUSH_LOCAL | MMUEXT_TLB_FLUSH_MULTI | MMUEXT_TLB_FLUSH_ALL => {
            cpu::flush_tlb_local();
            sched::flush_cpus(&remote);
            Ok(())
        }
        MMUEXT_INVLPG_LOCAL | MMUEXT_INVLPG_MULTI | MMUEXT_INVLPG_ALL => {
            if range_ok(arg1, 1) {
                cpu::invlpg(arg1);
                sched::flush_cpus(&remote);
            }
            Ok(())
        }
        MMUEXT_SET_LDT => {
            // arg1 = linear base, arg2 = entries (Xen's checks). The LDT is recorded; it is
            // not shadow-mapped yet, so LDT selectors fault (64-bit Linux uses none).
            if arg1 & 0xfff != 0 || !range_ok(arg1, 1) || arg2 > 8192 {
                return Err(Errno::EINVAL);
            }
            ctx.vcpu.pv.ldt = (arg1, arg2);
            Ok(())
        }
        // Superpage marking was removed from Xen's PV MMU.
        xen_abi::xen::MMUEXT_MARK_SUPER | xen_abi::xen::MMUEXT_UNMARK_SUPER => {
            Err(Errno::EOPNOTSUPP)
        }
        MMUEXT_CLEAR_PAGE => with_writable_page(owner, arg1, |p| {
            // SAFETY: a page of the domain held writable for the duration.
            unsafe { core::ptr::write_bytes(p, 0, 4096) }
        }),
        MMUEXT_COPY_PAGE => {
            // The source must be the domain's and readable (a general reference suffices).
            let src = xenolith_arch::layout::phys_to_virt(arg2 << 12) as *const u8;
            {
                let mut env = frametable::lock();
                pvmm::get_page(&mut env, arg2, owner).map_err(|_| Errno::EINVAL)?;
            }
            let r = with_writable_page(owner, arg1, |dst| {
                // SAFETY: both frames belong to the domain and are referenced meanwhile.
                unsafe { core::ptr::copy(src, dst, 4096) }
            });
            let mut env = frametable::lock();
            pvmm::put_page(&mut env, arg2);
            r
        }
        MMUEXT_FLUSH_CACHE | MMUEXT_FLUSH_CACHE_GLOBAL => {
            if !ctx.vcpu.domain().privileged {
                return Err(Errno::EACCES);
            }
            // SAFETY: WBINVD only writes back and invalidates caches.
            unsafe { core::arch::asm!("wbinvd", options(nostack)) };
            Ok(())
        }
        _ => {
            crate::printk!(
                "{}v{} mmuext_op command {cmd} not implemented\n",
                ctx.vcpu.domain().label(),
                ctx.vcpu.id
            );
            Err(Errno::ENOSYS)
        }
    }
}
