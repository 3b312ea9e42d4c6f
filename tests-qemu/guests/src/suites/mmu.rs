//! `mmu`: page-table management the way Linux does it. The suite builds its own L1/L2/L3 (and
//! a copy of the L4) from spare frames, pins and unpins them, hooks them into the address
//! space, switches `cr3` with `MMUEXT_NEW_BASEPTR`, updates entries with `mmu_update` (normal,
//! `PRESERVE_AD`, `MACHPHYS`, batches failing in the middle, foreign owners), writes PTEs
//! straight into a read-only mapped L1 (Xen's writable-page-table emulation), and exercises
//! `update_va_mapping`'s flush flags and the other `mmuext_op` commands.
//!
//! Every expected value is what Xen 4.17 does for a 64-bit PV dom0 (checked against the real
//! hypervisor by `tests-qemu/tests/pv_guests.rs`); details carry only values both hypervisors
//! must agree on (return codes, done counts, flag bits, booleans), never frame numbers.

use xen_abi::errno::Errno;
use xen_abi::memory::XENMEM_maximum_ram_page;
use xen_abi::xen::{
    DOMID_IO, DOMID_SELF, DOMID_XEN, MMU_MACHPHYS_UPDATE, MMU_NORMAL_PT_UPDATE,
    MMU_PT_UPDATE_NO_TRANSLATE, MMU_PT_UPDATE_PRESERVE_AD, MMUEXT_CLEAR_PAGE, MMUEXT_FLUSH_CACHE,
    MMUEXT_INVLPG_ALL, MMUEXT_INVLPG_LOCAL, MMUEXT_INVLPG_MULTI, MMUEXT_MARK_SUPER,
    MMUEXT_NEW_BASEPTR, MMUEXT_NEW_USER_BASEPTR, MMUEXT_PIN_L1_TABLE, MMUEXT_PIN_L2_TABLE,
    MMUEXT_PIN_L3_TABLE, MMUEXT_PIN_L4_TABLE, MMUEXT_TLB_FLUSH_ALL, MMUEXT_TLB_FLUSH_LOCAL,
    MMUEXT_TLB_FLUSH_MULTI, MMUEXT_UNPIN_TABLE, MmuUpdate, MmuextOp, StartInfo, UVMF_ALL,
    UVMF_INVLPG, UVMF_LOCAL, UVMF_NONE, UVMF_TLB_FLUSH,
};

use crate::events as ev;
use crate::hypercall as hc;
use crate::mm::{self, _PAGE_ACCESSED, _PAGE_PRESENT, _PAGE_RW, PAGE_SIZE, PTE_MFN_MASK};
use crate::probe;
use crate::verdict::{Hex, Rc, Suite};
use crate::window::{self, _PAGE_DIRTY};

const EINVAL: i64 = Rc::err(Errno::EINVAL);
const EBUSY: i64 = Rc::err(Errno::EBUSY);
const ENOSYS: i64 = Rc::err(Errno::ENOSYS);
const ESRCH: i64 = Rc::err(Errno::ESRCH);
const EFAULT: i64 = Rc::err(Errno::EFAULT);
const EPERM: i64 = Rc::err(Errno::EPERM);
const EOPNOTSUPP: i64 = Rc::err(Errno::EOPNOTSUPP);

/// Window used to fill frames (mapped writable only while filling).
const W_FILL: usize = 0;
/// Window mapping the test L1 read-only (for reading it and for the emulated writes).
const W_L1: usize = 1;
/// Window for the update_va_mapping checks and reading data frames.
const W_DATA: usize = 2;
/// Window for mappings of other owners' frames.
const W_OTHER: usize = 3;

/// First word of the data frame.
const MAGIC_A: u64 = 0x4d4d_5554_4553_5441; // "ATSETUMM"
/// First word of the second data frame.
const MAGIC_B: u64 = 0x4d4d_5554_4553_5442;
/// User-accessible.
const _PAGE_USER: u64 = 1 << 2;
/// Xen's marker of a 64-bit PV guest's kernel mappings (`_PAGE_GUEST_KERNEL`, PTE bit 52).
const _PAGE_GUEST_KERNEL: u64 = 1 << 52;
/// Global.
const _PAGE_GLOBAL: u64 = 1 << 8;
/// Present + accessed.
const PA: u64 = _PAGE_PRESENT | _PAGE_ACCESSED;
/// Present + writable + accessed: what a page-table entry pointing at a table carries.
const PRWA: u64 = _PAGE_PRESENT | _PAGE_RW | _PAGE_ACCESSED;

/// The spare frames the suite builds with.
#[derive(Clone, Copy)]
struct Frames {
    l1: u64,
    l2: u64,
    l3: u64,
    l4c: u64,
    data: u64,
    data_pfn: u64,
    data2: u64,
    data2_pfn: u64,
    bad: u64,
    /// The running L4 (start_info.pt_base).
    l4: u64,
    /// XENMEM_maximum_ram_page: an MFN no domain owns.
    max_page: u64,
}

impl Frames {
    /// An L1 entry Xen must refuse: a writable mapping of a frame in use as a page table
    /// (the running L4). Xen 4.17 accepts every flag combination in a dom0 L1 entry (bits
    /// 52..62 are the guest's, cache attributes are allowed with I/O privileges).
    fn bad_pte(&self) -> u64 {
        (self.l4 * PAGE_SIZE) | PRWA
    }
}

/// Runs the suite.
pub fn run(s: &mut Suite, si: &StartInfo) {
    // For reading vcpu_info.arch.cr2 after #PF probes.
    let shinfo = ev::map_shared_info(si) == 0;
    let mut spare = [(0u64, 0u64); 7];
    for (k, slot) in spare.iter_mut().enumerate() {
        match window::spare(si, k as u64) {
            Some(f) => *slot = f,
            None => {
                s.skip("setup", format_args!("no spare frame {k}"));
                return;
            }
        }
    }
    // SAFETY: XENMEM_maximum_ram_page takes no argument.
    let max_page = unsafe { hc::memory_op(XENMEM_maximum_ram_page, core::ptr::null_mut()) };
    let f = Frames {
        l1: spare[0].1,
        l2: spare[1].1,
        l3: spare[2].1,
        l4c: spare[3].1,
        data: spare[4].1,
        data_pfn: spare[4].0,
        data2: spare[5].1,
        data2_pfn: spare[5].0,
        bad: spare[6].1,
        l4: mm::p2m(si)[mm::va_to_pfn(si.pt_base) as usize],
        max_page: max_page.max(0) as u64,
    };
    let Some(slot) = free_l4_slot(si) else {
        s.skip("setup", format_args!("no free L4 slot"));
        return;
    };
    let test_va = 0xffff_0000_0000_0000 | (slot << 39);

    let prepared = fill(si, f.data, |i| if i == 0 { MAGIC_A } else { i as u64 })
        && fill(si, f.data2, |i| if i == 0 { MAGIC_B } else { !(i as u64) })
        && fill(si, f.l1, |_| 0)
        && fill(
            si,
            f.l2,
            |i| if i == 0 { (f.l1 * PAGE_SIZE) | PRWA } else { 0 },
        )
        && fill(
            si,
            f.l3,
            |i| if i == 0 { (f.l2 * PAGE_SIZE) | PRWA } else { 0 },
        )
        && fill(si, f.bad, |i| if i == 0 { f.bad_pte() } else { 0 });
    s.check(
        "setup.fill_spare_frames",
        prepared,
        format_args!("filled={prepared}"),
    );
    if !prepared {
        return;
    }

    let l1_ok = pin_l1(s, si, &f);
    if l1_ok {
        l1_updates(s, si, &f);
        ptwr(s, &f, shinfo);
        hierarchy(s, si, &f, slot, test_va, shinfo);
        other_owners(s, si, &f);
    } else {
        s.skip("l1", format_args!("the test L1 is not pinned"));
    }
    update_va_mapping_flags(s, si, &f, test_va);
    clear_copy(s, si, &f, l1_ok);
    tlb_ops(s);
    ldt(s);
    machphys(s, &f);
    teardown(s, si, &f, l1_ok);
}

/// A free kernel-half L4 slot of the running page tables.
fn free_l4_slot(si: &StartInfo) -> Option<u64> {
    (300..480u64).find(|&i| {
        // SAFETY: pt_base maps the running L4 read-only for the whole run.
        unsafe { ((si.pt_base + i * 8) as *const u64).read_volatile() == 0 }
    })
}

/// Fills frame `mfn` with `f(index)` through the fill window; false if it cannot be mapped.
fn fill(si: &StartInfo, mfn: u64, f: impl Fn(usize) -> u64) -> bool {
    if window::map(si, W_FILL, mfn, true) != 0 {
        return false;
    }
    window::fill(W_FILL, f);
    window::restore(si, W_FILL) == 0
}

/// One mmuext_op: its rc.
fn ext1(op: MmuextOp) -> i64 {
    ext(&[op], DOMID_SELF).0
}

/// A batch of mmuext_ops: (rc, done).
fn ext(ops: &[MmuextOp], dom: u16) -> (i64, u32) {
    // SAFETY: the suite only passes operations on its own spare frames and TLB flushes, which
    // cannot break the guest's own mappings.
    unsafe { hc::mmuext_op(ops, dom) }
}

/// A batch of mmu_updates: (rc, done).
fn upd(reqs: &[MmuUpdate], dom: u16) -> (i64, u32) {
    // SAFETY: the suite only updates its own spare page tables, its spare data frames and
    // the free L4 slot it found.
    unsafe { hc::mmu_update(reqs, dom) }
}

/// A normal update of entry `idx` of table `mfn`.
fn entry(mfn: u64, idx: u64, val: u64) -> MmuUpdate {
    MmuUpdate {
        ptr: (mfn * PAGE_SIZE + idx * 8) | MMU_NORMAL_PT_UPDATE,
        val,
    }
}

fn pin(level: u32, mfn: u64) -> i64 {
    let cmd = [
        MMUEXT_PIN_L1_TABLE,
        MMUEXT_PIN_L2_TABLE,
        MMUEXT_PIN_L3_TABLE,
        MMUEXT_PIN_L4_TABLE,
    ][level as usize - 1];
    ext1(MmuextOp::with_mfn(cmd, mfn))
}

fn unpin(mfn: u64) -> i64 {
    ext1(MmuextOp::with_mfn(MMUEXT_UNPIN_TABLE, mfn))
}

/// vCPU 0's `arch.cr2`, if shared_info is mapped.
fn cr2(shinfo: bool) -> Option<u64> {
    // SAFETY: vcpu_info() is mapped when shinfo is true; Xen writes cr2 when it delivers #PF.
    shinfo.then(|| unsafe { core::ptr::read_volatile(&raw const (*ev::vcpu_info()).arch.cr2) })
}

/// Pins the test L1; returns whether it is pinned.
fn pin_l1(s: &mut Suite, si: &StartInfo, f: &Frames) -> bool {
    // Xen cannot give a frame the L1 type while a writable mapping of it exists.
    let rc_map = window::map(si, W_FILL, f.l1, true);
    let rc = pin(1, f.l1);
    s.check(
        "pin_l1.writable_mapped",
        rc_map == 0 && rc == EINVAL,
        format_args!("rc={}", Rc(rc)),
    );
    if rc == 0 {
        unpin(f.l1);
    }
    window::restore(si, W_FILL);

    let rc = pin(1, f.l1);
    s.expect_rc("pin_l1", rc, 0);
    if rc != 0 {
        return false;
    }
    let rc = pin(1, f.l1);
    s.expect_rc("pin_l1.again", rc, EINVAL);
    let rc = pin(1, f.bad);
    s.expect_rc("pin_l1.bad_entry", rc, EBUSY);
    if rc == 0 {
        unpin(f.bad);
    }
    let rc = pin(1, f.max_page + 0x100);
    s.expect_rc("pin_l1.unowned_mfn", rc, EINVAL);
    let rc = pin(2, f.l1);
    s.expect_rc("pin.wrong_level", rc, EINVAL);
    if rc == 0 {
        unpin(f.l1);
    }
    let rc = window::map(si, W_L1, f.l1, true);
    s.expect_rc("map.pinned_l1_writable", rc, EBUSY);
    let rc = window::map(si, W_L1, f.l1, false);
    let same = rc == 0 && (0..512).all(|i| window::read(W_L1, i) == 0);
    s.check(
        "map.pinned_l1_readonly",
        rc == 0 && same,
        format_args!("rc={} reads_zero={same}", Rc(rc)),
    );
    true
}

fn l1_updates(s: &mut Suite, si: &StartInfo, f: &Frames) {
    let val = (f.data * PAGE_SIZE) | PRWA;
    let (rc, done) = upd(&[entry(f.l1, 0, val)], DOMID_SELF);
    let stored = window::read(W_L1, 0);
    // A 64-bit PV kernel runs in ring 3: Xen adds _PAGE_USER and its own _PAGE_GUEST_KERNEL
    // (bit 52) to kernel entries.
    s.check(
        "mmu_update.l1_entry",
        rc == 0 && done == 1 && stored ^ val == _PAGE_USER | _PAGE_GUEST_KERNEL,
        format_args!(
            "rc={} done={done} changed_bits={}",
            Rc(rc),
            Hex(stored ^ val)
        ),
    );
    let val = (f.data * PAGE_SIZE) | PA | _PAGE_USER;
    let (rc, done) = upd(&[entry(f.l1, 8, val)], DOMID_SELF);
    let stored = window::read(W_L1, 8);
    // User entries get _PAGE_GLOBAL instead.
    s.check(
        "mmu_update.l1_user_entry",
        rc == 0 && done == 1 && stored ^ val == _PAGE_GLOBAL,
        format_args!(
            "rc={} done={done} changed_bits={}",
            Rc(rc),
            Hex(stored ^ val)
        ),
    );
    upd(&[entry(f.l1, 8, 0)], DOMID_SELF);

    let reqs = [
        entry(f.l1, 1, (f.data * PAGE_SIZE) | PA),
        entry(f.l1, 2, f.bad_pte()),
        entry(f.l1, 3, (f.data * PAGE_SIZE) | PA),
    ];
    let (rc, done) = upd(&reqs, DOMID_SELF);
    let first = window::read(W_L1, 1) & _PAGE_PRESENT != 0;
    let second = window::read(W_L1, 2) != 0;
    let third = window::read(W_L1, 3) != 0;
    s.check(
        "mmu_update.batch_fail_middle",
        rc == EBUSY && done == 1 && first && !second && !third,
        format_args!("rc={} done={done} applied={first},{second},{third}", Rc(rc)),
    );

    // MMU_PT_UPDATE_PRESERVE_AD keeps the old entry's accessed/dirty bits.
    let ad = _PAGE_ACCESSED | _PAGE_DIRTY;
    let (rc0, _) = upd(
        &[entry(f.l1, 4, (f.data * PAGE_SIZE) | PA | ad)],
        DOMID_SELF,
    );
    let mut req = entry(f.l1, 4, (f.data * PAGE_SIZE) | _PAGE_PRESENT);
    req.ptr |= MMU_PT_UPDATE_PRESERVE_AD;
    let (rc, done) = upd(&[req], DOMID_SELF);
    let kept = window::read(W_L1, 4) & ad;
    let (rc2, _) = upd(
        &[entry(f.l1, 4, (f.data * PAGE_SIZE) | _PAGE_PRESENT)],
        DOMID_SELF,
    );
    let cleared = window::read(W_L1, 4) & ad;
    s.check(
        "mmu_update.preserve_ad",
        rc0 == 0 && rc == 0 && done == 1 && kept == ad && rc2 == 0 && cleared == 0,
        format_args!(
            "rc={} done={done} ad_after_preserve={} ad_after_normal={}",
            Rc(rc),
            Hex(kept),
            Hex(cleared)
        ),
    );

    // An ordinary (writable-type) frame: the update is a plain checked-free write.
    let (rc, done) = upd(&[entry(f.data, 8, 0x1234_5678)], DOMID_SELF);
    let rc_map = window::map(si, W_DATA, f.data, false);
    let applied = rc_map == 0 && window::read(W_DATA, 8) == 0x1234_5678;
    s.check(
        "mmu_update.plain_frame",
        rc == 0 && done == 1 && applied,
        format_args!("rc={} done={done} applied={applied}", Rc(rc)),
    );

    // MMU_PT_UPDATE_NO_TRANSLATE: for a PV guest, a normal update.
    let mut req = entry(f.l1, 6, (f.data * PAGE_SIZE) | PA);
    req.ptr |= MMU_PT_UPDATE_NO_TRANSLATE;
    let (rc, done) = upd(&[req], DOMID_SELF);
    let applied = window::read(W_L1, 6) & PTE_MFN_MASK == f.data * PAGE_SIZE;
    s.check(
        "mmu_update.no_translate",
        rc == 0 && done == 1 && applied,
        format_args!("rc={} done={done} applied={applied}", Rc(rc)),
    );
    upd(&[entry(f.l1, 6, 0)], DOMID_SELF);
    let (rc, done) = upd(&[entry(f.l1, 6, f.bad_pte())], DOMID_SELF);
    s.check(
        "mmu_update.pt_frame_writable",
        rc == EBUSY && done == 0,
        format_args!("rc={} done={done}", Rc(rc)),
    );
}

/// Writes into the read-only mapped, pinned L1: Xen emulates valid PTE writes and bounces a
/// #PF for invalid ones.
fn ptwr(s: &mut Suite, f: &Frames, shinfo: bool) {
    let addr = window::va(W_L1) + 5 * 8;
    let fault = probe::write_u64(addr, (f.data2 * PAGE_SIZE) | PA);
    let stored = window::read(W_L1, 5);
    let applied = stored & PTE_MFN_MASK == f.data2 * PAGE_SIZE && stored & _PAGE_PRESENT != 0;
    s.check(
        "ptwr.valid_pte",
        fault.is_none() && applied,
        format_args!("faulted={} applied={applied}", fault.is_some()),
    );

    let addr = window::va(W_L1) + 6 * 8;
    let fault = probe::write_u64(addr, f.bad_pte());
    let applied = window::read(W_L1, 6) != 0;
    let cr2_ok = cr2(shinfo) == Some(addr);
    match fault {
        Some(fl) => s.check(
            "ptwr.invalid_pte",
            fl.vector == 14 && fl.error_code == 3 && cr2_ok && !applied,
            format_args!("faulted=true {fl} cr2_ok={cr2_ok} applied={applied}"),
        ),
        None => s.check(
            "ptwr.invalid_pte",
            false,
            format_args!("faulted=false applied={applied}"),
        ),
    }
}

fn hierarchy(s: &mut Suite, si: &StartInfo, f: &Frames, slot: u64, test_va: u64, shinfo: bool) {
    let rc_map = window::map(si, W_FILL, f.l2, true);
    let rc = pin(2, f.l2);
    s.check(
        "pin_l2.writable_mapped",
        rc_map == 0 && rc == EINVAL,
        format_args!("rc={}", Rc(rc)),
    );
    if rc == 0 {
        unpin(f.l2);
    }
    window::restore(si, W_FILL);
    let rc2 = pin(2, f.l2);
    s.expect_rc("pin_l2", rc2, 0);
    let rc3 = pin(3, f.l3);
    s.expect_rc("pin_l3", rc3, 0);
    if rc2 != 0 || rc3 != 0 {
        return;
    }

    let (rc, done) = upd(&[entry(f.l4, slot, (f.l3 * PAGE_SIZE) | PRWA)], DOMID_SELF);
    s.check(
        "mmu_update.hook_l3_into_l4",
        rc == 0 && done == 1,
        format_args!("rc={} done={done}", Rc(rc)),
    );
    let read = probe::read_u64(test_va);
    s.check(
        "hierarchy.read",
        read == Ok(MAGIC_A),
        format_args!("magic={}", read == Ok(MAGIC_A)),
    );
    let fault = probe::write_u64(test_va + 8, 0xfeed);
    let rc_map = window::map(si, W_DATA, f.data, false);
    let written = rc_map == 0 && window::read(W_DATA, 1) == 0xfeed;
    s.check(
        "hierarchy.write",
        fault.is_none() && written,
        format_args!("faulted={} written={written}", fault.is_some()),
    );

    // Unpinning a table still referenced from the L4 only drops the pin.
    let rc = unpin(f.l3);
    let still = probe::read_u64(test_va) == Ok(MAGIC_A);
    s.check(
        "unpin_l3.in_use",
        rc == 0 && still,
        format_args!("rc={} still_mapped={still}", Rc(rc)),
    );
    let rc = unpin(f.l3);
    s.expect_rc("unpin_l3.again", rc, EINVAL);

    // Clear the L1 entry, flush the one page, and the read faults.
    let (rc, _) = upd(&[entry(f.l1, 0, 0)], DOMID_SELF);
    let rc_inv = ext1(MmuextOp::with_linear_addr(MMUEXT_INVLPG_LOCAL, test_va));
    let read = probe::read_u64(test_va);
    let cr2_ok = cr2(shinfo) == Some(test_va);
    s.check(
        "invlpg_local.after_unmap",
        rc == 0
            && rc_inv == 0
            && matches!(read, Err(fl) if fl.vector == 14 && fl.error_code == 0)
            && cr2_ok,
        format_args!(
            "rc={} faulted={} error_code={} cr2_ok={cr2_ok}",
            Rc(rc_inv),
            read.is_err(),
            Hex(read.err().map_or(0, |fl| fl.error_code))
        ),
    );
    upd(&[entry(f.l1, 0, (f.data * PAGE_SIZE) | PRWA)], DOMID_SELF);

    // Unhook from the running L4; the range is gone after a flush.
    let (rc, done) = upd(&[entry(f.l4, slot, 0)], DOMID_SELF);
    let rc_fl = ext1(MmuextOp::with_mfn(MMUEXT_TLB_FLUSH_LOCAL, 0));
    let read = probe::read_u64(test_va);
    s.check(
        "mmu_update.unhook_l3",
        rc == 0 && done == 1 && rc_fl == 0 && read.is_err(),
        format_args!("rc={} done={done} faulted={}", Rc(rc), read.is_err()),
    );

    // A copy of the L4 that has the test tables in `slot`: pin it, switch to it and back.
    let copied = fill(si, f.l4c, |i| {
        if i as u64 == slot {
            (f.l3 * PAGE_SIZE) | PRWA
        } else {
            // SAFETY: pt_base maps the running L4 read-only for the whole run.
            unsafe { ((si.pt_base + i as u64 * 8) as *const u64).read_volatile() }
        }
    });
    let rc = if copied { pin(4, f.l4c) } else { -1 };
    s.expect_rc("pin_l4.copy", rc, 0);
    if rc != 0 {
        return;
    }
    let rc = ext1(MmuextOp::with_mfn(MMUEXT_NEW_BASEPTR, f.l4c));
    let read = probe::read_u64(test_va);
    s.check(
        "new_baseptr.to_copy",
        rc == 0 && read == Ok(MAGIC_A),
        format_args!("rc={} test_range_mapped={}", Rc(rc), read == Ok(MAGIC_A)),
    );
    let rc = ext1(MmuextOp::with_mfn(MMUEXT_NEW_BASEPTR, f.l4));
    let read = probe::read_u64(test_va);
    s.check(
        "new_baseptr.back",
        rc == 0 && read.is_err(),
        format_args!("rc={} test_range_mapped={}", Rc(rc), read.is_ok()),
    );
    let rc = ext1(MmuextOp::with_mfn(MMUEXT_NEW_BASEPTR, f.l1));
    s.expect_rc("new_baseptr.not_an_l4", rc, EINVAL);

    let rc = ext1(MmuextOp::with_mfn(MMUEXT_NEW_USER_BASEPTR, f.l4c));
    s.expect_rc("new_user_baseptr.set", rc, 0);
    let rc = ext1(MmuextOp::with_mfn(MMUEXT_NEW_USER_BASEPTR, f.l1));
    s.expect_rc("new_user_baseptr.not_an_l4", rc, EINVAL);
    let rc = ext1(MmuextOp::with_mfn(MMUEXT_NEW_USER_BASEPTR, 0));
    s.expect_rc("new_user_baseptr.clear", rc, 0);

    let rc = unpin(f.l4c);
    s.expect_rc("unpin_l4.copy", rc, 0);
}

/// Mappings of frames the domain does not own as RAM: MMIO (local APIC, VGA), nothing at
/// all, and foreign owners through mmu_update's `foreigndom`.
fn other_owners(s: &mut Suite, si: &StartInfo, f: &Frames) {
    // Dom0 may map I/O memory it has access to (VGA, and the empty space above RAM), but not
    // the local APIC, which Xen keeps for itself.
    for (check, mfn, writable, want) in [
        ("map.lapic_mmio", 0xfee00, false, EPERM),
        ("map.vga_mmio", 0xb8, true, 0),
        ("map.above_ram", 0x10_0000, false, 0),
    ] {
        let rc = window::map(si, W_OTHER, mfn, writable);
        s.expect_rc(check, rc, want);
        if rc == 0 {
            window::restore(si, W_OTHER);
        }
    }
    // DOMID_IO maps I/O frames only; DOMID_XEN maps Xen's frames only: a RAM frame of dom0
    // is neither ("could not pin", EBUSY).
    for (check, target, dom, want) in [
        ("mmu_update.domid_io_vga", 0xb8, DOMID_IO, 0),
        ("mmu_update.domid_io_ram", f.data, DOMID_IO, EBUSY),
        ("mmu_update.domid_xen_ram", f.data, DOMID_XEN, EBUSY),
        ("mmu_update.no_such_domain", f.data, 5, ESRCH),
    ] {
        let (rc, done) = upd(&[entry(f.l1, 7, (target * PAGE_SIZE) | PA)], dom);
        let want_done = u32::from(want == 0);
        s.check(
            check,
            rc == want && done == want_done,
            format_args!("rc={} done={done}", Rc(rc)),
        );
        if rc == 0 {
            upd(&[entry(f.l1, 7, 0)], DOMID_SELF);
        }
    }
}

fn update_va_mapping_flags(s: &mut Suite, si: &StartInfo, f: &Frames, test_va: u64) {
    let vcpumask: u64 = 1;
    let mask_ptr = &raw const vcpumask as u64;
    let cases = [
        (
            "uvm.invlpg_local",
            f.data2,
            MAGIC_B,
            UVMF_INVLPG | UVMF_LOCAL,
        ),
        (
            "uvm.tlb_flush_local",
            f.data,
            MAGIC_A,
            UVMF_TLB_FLUSH | UVMF_LOCAL,
        ),
        ("uvm.invlpg_all", f.data2, MAGIC_B, UVMF_INVLPG | UVMF_ALL),
        (
            "uvm.tlb_flush_all",
            f.data,
            MAGIC_A,
            UVMF_TLB_FLUSH | UVMF_ALL,
        ),
        ("uvm.invlpg_multi", f.data2, MAGIC_B, UVMF_INVLPG | mask_ptr),
        (
            "uvm.tlb_flush_multi",
            f.data,
            MAGIC_A,
            UVMF_TLB_FLUSH | mask_ptr,
        ),
    ];
    for (check, mfn, magic, flags) in cases {
        let rc = window::map_pte(W_DATA, window::pte(mfn, false), flags);
        let seen = window::read(W_DATA, 0) == magic;
        s.check(
            check,
            rc == 0 && seen,
            format_args!("rc={} new_mapping_seen={seen}", Rc(rc)),
        );
    }
    let rc = window::map_pte(W_DATA, window::pte(f.data2, false), UVMF_NONE);
    s.expect_rc("uvm.no_flush", rc, 0);
    let rc = window::map_pte(W_DATA, window::pte(f.data, false), 3);
    s.expect_rc("uvm.flush_type_3", rc, 0);
    let rc = window::map_pte(W_DATA, window::pte(f.data2, false), UVMF_INVLPG | 0x1000);
    s.expect_rc("uvm.bad_vcpumask", rc, EFAULT);
    // SAFETY: the test range is not mapped (no L1 to update): Xen must refuse.
    let rc = unsafe { hc::update_va_mapping(test_va, window::pte(f.data, false), UVMF_INVLPG) };
    s.expect_rc("uvm.no_l1_table", rc, EINVAL);
    // SAFETY: a non-canonical address: Xen must refuse.
    let rc = unsafe {
        hc::update_va_mapping(
            0x0000_8000_0000_0000,
            window::pte(f.data, false),
            UVMF_INVLPG,
        )
    };
    s.expect_rc("uvm.non_canonical", rc, EINVAL);
    window::restore(si, W_DATA);
}

fn clear_copy(s: &mut Suite, si: &StartInfo, f: &Frames, l1_pinned: bool) {
    let rc = ext1(MmuextOp::with_mfn(MMUEXT_CLEAR_PAGE, f.data2));
    let rc_map = window::map(si, W_DATA, f.data2, false);
    let zero = rc_map == 0 && (0..512).all(|i| window::read(W_DATA, i) == 0);
    s.check(
        "mmuext.clear_page",
        rc == 0 && zero,
        format_args!("rc={} zeroed={zero}", Rc(rc)),
    );
    let rc = ext1(MmuextOp::copy_page(f.data2, f.data));
    let rc_a = window::map(si, W_OTHER, f.data, false);
    let same = rc_a == 0 && (0..512).all(|i| window::read(W_DATA, i) == window::read(W_OTHER, i));
    window::restore(si, W_OTHER);
    s.check(
        "mmuext.copy_page",
        rc == 0 && same,
        format_args!("rc={} copied={same}", Rc(rc)),
    );
    if l1_pinned {
        let rc = ext1(MmuextOp::copy_page(f.data2, f.l1));
        let same = (0..512).all(|i| window::read(W_DATA, i) == window::read(W_L1, i));
        s.check(
            "mmuext.copy_page_from_l1",
            rc == 0 && same,
            format_args!("rc={} copied={same}", Rc(rc)),
        );
        let rc = ext1(MmuextOp::with_mfn(MMUEXT_CLEAR_PAGE, f.l1));
        s.expect_rc("mmuext.clear_page_l1", rc, EINVAL);
        let rc = ext1(MmuextOp::copy_page(f.l1, f.data));
        s.expect_rc("mmuext.copy_page_to_l1", rc, EINVAL);
    }
    let rc = ext1(MmuextOp::with_mfn(MMUEXT_CLEAR_PAGE, f.max_page + 0x100));
    s.expect_rc("mmuext.clear_page_unowned", rc, EINVAL);
    let rc = ext1(MmuextOp::copy_page(f.data2, f.max_page + 0x100));
    s.expect_rc("mmuext.copy_page_unowned_src", rc, EINVAL);
    window::restore(si, W_DATA);
}

fn tlb_ops(s: &mut Suite) {
    let vcpumask: u64 = 1;
    let mask_ptr = &raw const vcpumask as u64;
    let va = window::va(W_DATA);
    let multi = |cmd, linear_addr, mask| MmuextOp {
        cmd,
        _pad0: 0,
        arg1: linear_addr,
        arg2: mask,
    };
    let ops = [
        MmuextOp::with_mfn(MMUEXT_TLB_FLUSH_LOCAL, 0),
        MmuextOp::with_linear_addr(MMUEXT_INVLPG_LOCAL, va),
        multi(MMUEXT_TLB_FLUSH_MULTI, 0, mask_ptr),
        multi(MMUEXT_INVLPG_MULTI, va, mask_ptr),
        MmuextOp::with_mfn(MMUEXT_TLB_FLUSH_ALL, 0),
        MmuextOp::with_linear_addr(MMUEXT_INVLPG_ALL, va),
    ];
    let (rc, done) = ext(&ops, DOMID_SELF);
    s.check(
        "mmuext.flush_batch",
        rc == 0 && done == 6,
        format_args!("rc={} done={done}", Rc(rc)),
    );
    let (rc, done) = ext(&[multi(MMUEXT_TLB_FLUSH_MULTI, 0, 0x1000)], DOMID_SELF);
    s.check(
        "mmuext.flush_multi_bad_mask",
        rc == EINVAL && done == 0,
        format_args!("rc={} done={done}", Rc(rc)),
    );
    let rc = ext1(MmuextOp::with_linear_addr(
        MMUEXT_INVLPG_ALL,
        0x0000_8000_0000_0000,
    ));
    s.expect_rc("mmuext.invlpg_all_non_canonical", rc, 0);
    let rc = ext1(MmuextOp::with_mfn(MMUEXT_FLUSH_CACHE, 0));
    s.expect_rc("mmuext.flush_cache", rc, 0);
    let (rc, done) = ext(&[MmuextOp::with_mfn(MMUEXT_TLB_FLUSH_LOCAL, 0)], DOMID_IO);
    s.check(
        "mmuext.foreign_flush",
        rc == EPERM,
        format_args!("rc={} done={done}", Rc(rc)),
    );
    let (rc, done) = ext(&[MmuextOp::with_mfn(MMUEXT_TLB_FLUSH_LOCAL, 0)], 5);
    s.check(
        "mmuext.no_such_domain",
        rc == ESRCH,
        format_args!("rc={} done={done}", Rc(rc)),
    );
    let ops = [
        MmuextOp::with_mfn(MMUEXT_TLB_FLUSH_LOCAL, 0),
        MmuextOp::with_mfn(0x7f, 0),
        MmuextOp::with_mfn(MMUEXT_TLB_FLUSH_LOCAL, 0),
    ];
    let (rc, done) = ext(&ops, DOMID_SELF);
    s.check(
        "mmuext.unknown_cmd",
        rc == ENOSYS && done == 1,
        format_args!("rc={} done={done}", Rc(rc)),
    );
    let rc = ext1(MmuextOp::with_mfn(14, 0));
    s.expect_rc("mmuext.cmd_14", rc, ENOSYS);
    let rc = ext1(MmuextOp::with_mfn(MMUEXT_MARK_SUPER, 0));
    s.expect_rc("mmuext.mark_super", rc, EOPNOTSUPP);
}

fn ldt(s: &mut Suite) {
    let rc = ext1(MmuextOp::set_ldt(0, 0));
    s.expect_rc("mmuext.set_ldt_none", rc, 0);
    let rc = ext1(MmuextOp::set_ldt(window::va(W_OTHER) + 8, 1));
    s.expect_rc("mmuext.set_ldt_misaligned", rc, EINVAL);
    let rc = ext1(MmuextOp::set_ldt(window::va(W_OTHER), 8193));
    s.expect_rc("mmuext.set_ldt_too_many", rc, EINVAL);
    let rc = ext1(MmuextOp::set_ldt(0x0000_8000_0000_0000, 1));
    s.expect_rc("mmuext.set_ldt_non_canonical", rc, EINVAL);
    let rc1 = ext1(MmuextOp::set_ldt(window::va(W_OTHER), 1));
    let rc2 = ext1(MmuextOp::set_ldt(0, 0));
    s.check(
        "mmuext.set_ldt_one_entry",
        rc1 == 0 && rc2 == 0,
        format_args!("rc={} rc_reset={}", Rc(rc1), Rc(rc2)),
    );
}

fn machphys(s: &mut Suite, f: &Frames) {
    let req = |mfn: u64, pfn: u64| MmuUpdate {
        ptr: (mfn * PAGE_SIZE) | MMU_MACHPHYS_UPDATE,
        val: pfn,
    };
    let (rc, done) = upd(&[req(f.data, f.data2_pfn)], DOMID_SELF);
    let moved = mm::m2p(f.data) == f.data2_pfn;
    let (rc2, _) = upd(&[req(f.data, f.data_pfn)], DOMID_SELF);
    let back = mm::m2p(f.data) == f.data_pfn;
    s.check(
        "mmu_update.machphys",
        rc == 0 && done == 1 && moved && rc2 == 0 && back,
        format_args!(
            "rc={} done={done} m2p_updated={moved} restored={back}",
            Rc(rc)
        ),
    );
    let (rc, done) = upd(&[req(f.max_page + 0x100, 0)], DOMID_SELF);
    s.check(
        "mmu_update.machphys_unowned",
        rc == EINVAL && done == 0,
        format_args!("rc={} done={done}", Rc(rc)),
    );
}

fn teardown(s: &mut Suite, si: &StartInfo, f: &Frames, l1_pinned: bool) {
    for w in [W_L1, W_DATA, W_OTHER] {
        window::restore(si, w);
    }
    let rc2 = unpin(f.l2);
    let rc1 = if l1_pinned { unpin(f.l1) } else { 0 };
    // Once nothing references them, the tables are ordinary frames again.
    let mut writable = 0;
    for mfn in [f.l1, f.l2, f.l3, f.l4c] {
        if window::map(si, W_FILL, mfn, true) == 0 {
            writable += 1;
        }
        window::restore(si, W_FILL);
    }
    s.check(
        "teardown",
        rc2 == 0 && rc1 == 0 && writable == 4,
        format_args!(
            "rc_unpin_l2={} rc_unpin_l1={} writable_again={writable}",
            Rc(rc2),
            Rc(rc1)
        ),
    );
}
