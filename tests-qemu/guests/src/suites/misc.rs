//! `misc`: the remaining PV hypercalls a kernel makes: multicall, vm_assist, segment bases,
//! stack_switch, descriptors and the GDT, debug registers, fpu_taskswitch, physdev_op,
//! platform_op, the memory maps, console reads, shutdown codes, callbacks and moving
//! `vcpu_info` into a guest page.
//!
//! Every expected value is what Xen 4.17 does for a 64-bit PV dom0 (checked against the real
//! hypervisor by `tests-qemu/tests/pv_guests.rs`); details carry only values both hypervisors
//! must agree on. `register_vcpu_info` cannot be undone, so it comes last.

use core::arch::asm;
use core::ptr;

use xen_abi::arch_x86::{
    FLAT_KERNEL_SS, FLAT_USER_DS32, SEGBASE_FS, SEGBASE_GS_KERNEL, SEGBASE_GS_USER,
    SEGBASE_GS_USER_SEL,
};
use xen_abi::callback::{
    CALLBACKOP_register, CALLBACKOP_unregister, CALLBACKTYPE_event, CALLBACKTYPE_nmi,
    CallbackRegister, CallbackUnregister,
};
use xen_abi::errno::Errno;
use xen_abi::hypercall as nr;
use xen_abi::memory::{
    E820_RAM, E820Entry, XENMEM_machine_memory_map, XENMEM_maximum_gpfn, XENMEM_memory_map,
    XenMemoryMap,
};
use xen_abi::physdev::{PHYSDEVOP_irq_status_query, PHYSDEVOP_set_iopl, PhysdevIrqStatusQuery};
use xen_abi::platform::{
    XENPF_get_cpu_version, XENPF_get_cpuinfo, XenPlatformOp, XenpfPcpuVersion, XenpfPcpuinfo,
};
use xen_abi::sched::{
    SCHEDOP_remote_shutdown, SCHEDOP_shutdown_code, SHUTDOWN_poweroff, SchedRemoteShutdown,
    SchedShutdown,
};
use xen_abi::vcpu::{
    VCPUOP_get_physid, VCPUOP_register_vcpu_info, VcpuGetPhysid, VcpuRegisterVcpuInfo,
};
use xen_abi::version::{XENVER_guest_handle, XENVER_pagesize, XENVER_version};
use xen_abi::xen::{
    CONSOLEIO_read, DOMID_SELF, MulticallEntry, StartInfo, UVMF_INVLPG, VMASST_CMD_disable,
    VMASST_CMD_enable, VMASST_TYPE_4gb_segments, VMASST_TYPE_m2p_strict,
    VMASST_TYPE_runstate_update_flag, VMASST_TYPE_writable_pagetables, VcpuInfo,
};

use crate::console::CStr;
use crate::events as ev;
use crate::hypercall as hc;
use crate::mm::{self, PAGE_SIZE};
use crate::probe;
use crate::verdict::{Hex, Rc, Suite};
use crate::window;

const EINVAL: i64 = Rc::err(Errno::EINVAL);
const ENOSYS: i64 = Rc::err(Errno::ENOSYS);
const EPERM: i64 = Rc::err(Errno::EPERM);
const EFAULT: i64 = Rc::err(Errno::EFAULT);
const ENOENT: i64 = Rc::err(Errno::ENOENT);
const ESRCH: i64 = Rc::err(Errno::ESRCH);
const EACCES: i64 = Rc::err(Errno::EACCES);
const ENXIO: i64 = Rc::err(Errno::ENXIO);
const ENODEV: i64 = Rc::err(Errno::ENODEV);

/// A page of the image.
#[repr(C, align(4096))]
struct Page([u64; 512]);

/// Descriptors written with update_descriptor.
static mut DESC_PAGE: Page = Page([0; 512]);
/// The GDT frame for set_gdt (read-only mapped while it is the GDT).
static mut GDT_PAGE: Page = Page([0; 512]);
/// A GDT frame with an invalid descriptor.
static mut BAD_GDT_PAGE: Page = Page([0; 512]);
/// Where vcpu_info moves.
static mut VCPU_INFO_PAGE: Page = Page([0; 512]);
/// Read through %fs and %gs.
static FS_WORD: u64 = 0x4653_4241_5345_2121;
static GS_WORD: u64 = 0x4753_4241_5345_2121;
/// A debug register target (never written).
static DR_TARGET: u64 = 0;

/// Runs the suite.
pub fn run(s: &mut Suite, si: &StartInfo) {
    let rc = ev::map_shared_info(si);
    s.expect_rc("shared_info.map_writable", rc, 0);
    multicall(s, si);
    vm_assist(s);
    segment_bases(s);
    stack_switch(s);
    update_descriptor(s, si);
    set_gdt(s, si);
    debugregs(s);
    fpu_taskswitch(s);
    physdev(s);
    platform(s);
    memory_maps(s, si);
    console_read(s);
    sched(s);
    callbacks(s);
    vcpu_info(s, si);
    uvm_otherdomain(s);
}

/// `update_va_mapping_otherdomain`: an unknown owner domain, and an address in the hypervisor
/// range with the caller as owner (both refused before any page table is touched).
fn uvm_otherdomain(s: &mut Suite) {
    const DOMID_SELF: u64 = 0x7ff0;
    // SAFETY: both calls are refused; no mapping changes.
    let rc = unsafe { hc::hypercall5(nr::update_va_mapping_otherdomain, 0x1000, 0, 0, 5, 0) };
    s.expect_rc("uvm_otherdomain.no_such_domain", rc, ESRCH);
    // SAFETY: as above.
    let rc = unsafe {
        hc::hypercall5(
            nr::update_va_mapping_otherdomain,
            0xffff_8300_0000_0000,
            0,
            0,
            DOMID_SELF,
            0,
        )
    };
    s.expect_rc("uvm_otherdomain.hypervisor_range", rc, EINVAL);
}

/// The machine frame of one of the image's pages.
fn mfn_of(si: &StartInfo, va: u64) -> u64 {
    mm::p2m(si)[mm::va_to_pfn(va) as usize]
}

fn hypercall(op: u64, a1: u64, a2: u64, a3: u64) -> i64 {
    // SAFETY: the callers pass arguments pointing at live local structures (or plain values)
    // of the shape the hypercall expects, and nothing that would break the guest.
    unsafe { hc::hypercall3(op, a1, a2, a3) }
}

fn multicall(s: &mut Suite, si: &StartInfo) {
    let mut handle = [0xffu8; 16];
    let w = 3;
    let own = mfn_of(si, window::va(w));
    let mut calls = [
        MulticallEntry {
            op: nr::xen_version,
            args: [u64::from(XENVER_version), 0, 0, 0, 0, 0],
            result: 0xdead,
        },
        MulticallEntry {
            op: 60,
            result: 0xdead,
            ..MulticallEntry::default()
        },
        MulticallEntry {
            op: nr::xen_version,
            args: [u64::from(XENVER_pagesize), 0, 0, 0, 0, 0],
            result: 0xdead,
        },
        MulticallEntry {
            op: nr::multicall,
            result: 0xdead,
            ..MulticallEntry::default()
        },
        MulticallEntry {
            op: nr::xen_version,
            args: [
                u64::from(XENVER_guest_handle),
                handle.as_mut_ptr() as u64,
                0,
                0,
                0,
                0,
            ],
            result: 0xdead,
        },
        MulticallEntry {
            op: nr::update_va_mapping,
            args: [window::va(w), window::pte(own, false), UVMF_INVLPG, 0, 0, 0],
            result: 0xdead,
        },
        MulticallEntry {
            op: 1000,
            result: 0xdead,
            ..MulticallEntry::default()
        },
    ];
    calls[3].args = [calls.as_ptr() as u64, 1, 0, 0, 0, 0];
    let rc = hypercall(
        nr::multicall,
        calls.as_mut_ptr() as u64,
        calls.len() as u64,
        0,
    );
    let r = |i: usize| Rc(calls[i].result as i64);
    let zero = handle.iter().all(|&b| b == 0);
    s.check(
        "multicall.results",
        rc == 0
            && calls[0].result == 0x4_0011
            && r(1).0 == ENOSYS
            && calls[2].result == 4096
            && r(3).0 == EINVAL
            && calls[4].result == 0
            && zero
            && calls[5].result == 0
            && r(6).0 == ENOSYS,
        format_args!(
            "rc={} results={},{},{},{},{},{},{} handle_written={zero}",
            Rc(rc),
            Hex(calls[0].result),
            r(1),
            r(2),
            r(3),
            r(4),
            r(5),
            r(6)
        ),
    );
    window::restore(si, w);
    let rc = hypercall(nr::multicall, calls.as_mut_ptr() as u64, 0, 0);
    s.expect_rc("multicall.empty", rc, 0);
    let rc = hypercall(nr::multicall, 0x1000, 1, 0);
    s.expect_rc("multicall.bad_list", rc, EFAULT);
}

fn vm_assist(s: &mut Suite) {
    let va = |cmd: u32, ty: u32| hypercall(nr::vm_assist, u64::from(cmd), u64::from(ty), 0);
    for (check, cmd, ty, want) in [
        (
            "vm_assist.enable_writable_pagetables",
            VMASST_CMD_enable,
            VMASST_TYPE_writable_pagetables,
            0,
        ),
        (
            "vm_assist.enable_runstate_update_flag",
            VMASST_CMD_enable,
            VMASST_TYPE_runstate_update_flag,
            0,
        ),
        (
            "vm_assist.disable_runstate_update_flag",
            VMASST_CMD_disable,
            VMASST_TYPE_runstate_update_flag,
            0,
        ),
        (
            "vm_assist.enable_m2p_strict",
            VMASST_CMD_enable,
            VMASST_TYPE_m2p_strict,
            0,
        ),
        (
            "vm_assist.disable_m2p_strict",
            VMASST_CMD_disable,
            VMASST_TYPE_m2p_strict,
            0,
        ),
        (
            "vm_assist.enable_4gb_segments",
            VMASST_CMD_enable,
            VMASST_TYPE_4gb_segments,
            0,
        ),
        (
            "vm_assist.disable_4gb_segments",
            VMASST_CMD_disable,
            VMASST_TYPE_4gb_segments,
            0,
        ),
        ("vm_assist.type_6", VMASST_CMD_enable, 6, EINVAL),
        ("vm_assist.type_31", VMASST_CMD_enable, 31, EINVAL),
        ("vm_assist.type_64", VMASST_CMD_enable, 64, EINVAL),
        (
            "vm_assist.bad_cmd",
            2,
            VMASST_TYPE_runstate_update_flag,
            ENOSYS,
        ),
        ("vm_assist.bad_cmd_bad_type", 2, 6, EINVAL),
    ] {
        s.expect_rc(check, va(cmd, ty), want);
    }
}

fn set_segment_base(which: u32, base: u64) -> i64 {
    hypercall(nr::set_segment_base, u64::from(which), base, 0)
}

fn read_fs0() -> u64 {
    let v: u64;
    // SAFETY: reads the word at %fs:0, which the caller pointed at FS_WORD.
    unsafe { asm!("mov %fs:0, {v}", v = out(reg) v, options(att_syntax, nostack, readonly)) };
    v
}

fn read_gs0() -> u64 {
    let v: u64;
    // SAFETY: reads the word at %gs:0, which the caller pointed at GS_WORD.
    unsafe { asm!("mov %gs:0, {v}", v = out(reg) v, options(att_syntax, nostack, readonly)) };
    v
}

fn gs_selector() -> u16 {
    let v: u32;
    // SAFETY: reading a segment selector has no side effect.
    unsafe { asm!("mov %gs, {v:e}", v = out(reg) v, options(att_syntax, nostack, nomem)) };
    v as u16
}

fn segment_bases(s: &mut Suite) {
    let rc = set_segment_base(SEGBASE_FS, &raw const FS_WORD as u64);
    let seen = rc == 0 && read_fs0() == FS_WORD;
    let rc0 = set_segment_base(SEGBASE_FS, 0);
    s.check(
        "set_segment_base.fs",
        rc == 0 && seen && rc0 == 0,
        format_args!("rc={} fs_relative_read={seen}", Rc(rc)),
    );
    let rc = set_segment_base(SEGBASE_GS_KERNEL, &raw const GS_WORD as u64);
    let seen = rc == 0 && read_gs0() == GS_WORD;
    s.check(
        "set_segment_base.gs_kernel",
        rc == 0 && seen,
        format_args!("rc={} gs_relative_read={seen}", Rc(rc)),
    );
    let rc = set_segment_base(SEGBASE_GS_USER, &raw const FS_WORD as u64);
    let kernel_kept = read_gs0() == GS_WORD;
    s.check(
        "set_segment_base.gs_user",
        rc == 0 && kernel_kept,
        format_args!("rc={} kernel_gs_kept={kernel_kept}", Rc(rc)),
    );
    let rc = set_segment_base(SEGBASE_GS_USER_SEL, u64::from(FLAT_USER_DS32));
    let sel = gs_selector();
    let kernel_kept = read_gs0() == GS_WORD;
    s.check(
        "set_segment_base.gs_user_sel",
        rc == 0 && sel == FLAT_USER_DS32 && kernel_kept,
        format_args!(
            "rc={} gs={} kernel_gs_kept={kernel_kept}",
            Rc(rc),
            Hex(sel.into())
        ),
    );
    // A selector that does not load: Xen loads the null selector and still returns 0.
    let rc = set_segment_base(SEGBASE_GS_USER_SEL, 0x1234);
    let sel = gs_selector();
    s.check(
        "set_segment_base.gs_user_sel_bad",
        rc == 0 && sel == 0,
        format_args!("rc={} gs={}", Rc(rc), Hex(sel.into())),
    );
    let rc = set_segment_base(SEGBASE_GS_USER_SEL, 0);
    let sel = gs_selector();
    s.check(
        "set_segment_base.gs_user_sel_null",
        rc == 0 && sel == 0,
        format_args!("rc={} gs={}", Rc(rc), Hex(sel.into())),
    );
    let rc = set_segment_base(SEGBASE_FS, 0x0000_8000_0000_0000);
    s.expect_rc("set_segment_base.non_canonical", rc, EINVAL);
    let rc = set_segment_base(4, 0);
    s.expect_rc("set_segment_base.bad_which", rc, EINVAL);
    set_segment_base(SEGBASE_GS_KERNEL, 0);
    set_segment_base(SEGBASE_GS_USER, 0);
}

fn stack_switch(s: &mut Suite) {
    let rsp: u64;
    // SAFETY: reads the stack pointer.
    unsafe { asm!("mov %rsp, {r}", r = out(reg) rsp, options(att_syntax, nomem, nostack)) };
    let rc = hypercall(
        nr::stack_switch,
        u64::from(FLAT_KERNEL_SS),
        (rsp & !0xf) - 4096,
        0,
    );
    s.expect_rc("stack_switch", rc, 0);
}

/// A 64-bit code segment, DPL 0.
const CODE64_DPL0: u64 = 0x0020_9a00_0000_0000;
/// A 64-bit code segment, DPL 3.
const CODE64_DPL3: u64 = 0x0020_fa00_0000_0000;
/// A flat data segment, DPL 0.
const DATA_DPL0: u64 = 0x00cf_9200_0000_ffff;
/// A flat data segment, DPL 3.
const DATA_DPL3: u64 = 0x00cf_f200_0000_ffff;
/// The same, not present.
const DATA_NOT_PRESENT: u64 = 0x00cf_1200_0000_ffff;
/// A present 64-bit TSS descriptor (system segments are refused).
const TSS: u64 = 0x0000_8900_0000_0067;
/// A call gate to FLAT_KERNEL_CS:0x12345678, DPL 3.
const CALL_GATE: u64 = 0x1234_ec00_e033_5678;
/// [`CALL_GATE`] as Xen stores it: DPL 0, the original DPL in the selector's RPL.
const CALL_GATE_STORED: u64 = 0x1234_8c00_e033_5678;
/// The same with a data selector as target.
const CALL_GATE_BAD_SEL: u64 = 0x1234_ec00_e02b_5678;

fn update_descriptor(s: &mut Suite, si: &StartInfo) {
    let page = &raw mut DESC_PAGE;
    let ma = mfn_of(si, page as u64) * PAGE_SIZE;
    let read = |i: usize| {
        // SAFETY: DESC_PAGE is a page of the image that only Xen writes while this runs.
        unsafe { ptr::read_volatile(&raw const (*page).0[i]) }
    };
    let upd = |i: u64, d: u64| hypercall(nr::update_descriptor, ma + i * 8, d, 0);
    // Xen raises DPL 0 (and 1, 2) to 3 for a 64-bit PV guest.
    // A call gate keeps its DPL in the target selector's RPL and gets DPL 0, so that using it
    // traps to Xen. Not-present descriptors are stored as they are.
    for (i, (check, desc, want)) in [
        ("update_descriptor.code64_dpl0", CODE64_DPL0, CODE64_DPL3),
        ("update_descriptor.data_dpl0", DATA_DPL0, DATA_DPL3),
        ("update_descriptor.data_dpl3", DATA_DPL3, DATA_DPL3),
        (
            "update_descriptor.not_present",
            DATA_NOT_PRESENT,
            DATA_NOT_PRESENT,
        ),
        ("update_descriptor.call_gate", CALL_GATE, CALL_GATE_STORED),
    ]
    .into_iter()
    .enumerate()
    {
        let rc = upd(i as u64, desc);
        let stored = read(i);
        s.check(
            check,
            rc == 0 && stored == want,
            format_args!("rc={} stored={}", Rc(rc), Hex(stored)),
        );
    }
    for (check, addr, desc, want) in [
        ("update_descriptor.tss", ma + 8 * 8, TSS, EINVAL),
        (
            "update_descriptor.call_gate_bad_selector",
            ma + 8 * 8,
            CALL_GATE_BAD_SEL,
            EINVAL,
        ),
        (
            "update_descriptor.misaligned",
            ma + 8 * 8 + 4,
            DATA_DPL3,
            EINVAL,
        ),
        (
            "update_descriptor.page_table_frame",
            mfn_of(si, si.pt_base) * PAGE_SIZE,
            DATA_DPL3,
            EINVAL,
        ),
        (
            "update_descriptor.unowned_frame",
            0x7ff_ffff_f000,
            DATA_DPL3,
            EINVAL,
        ),
    ] {
        let rc = hypercall(nr::update_descriptor, addr, desc, 0);
        s.expect_rc(check, rc, want);
    }
}

/// Remaps one of the image's pages read-only (`writable = false`) or back.
fn remap_own(si: &StartInfo, va: u64, writable: bool) -> i64 {
    let pte = window::pte(mfn_of(si, va), writable);
    // SAFETY: only changes the access rights of a page this suite owns.
    unsafe { hc::update_va_mapping(va, pte, UVMF_INVLPG) }
}

fn set_gdt_hc(frames: &[u64], entries: u64) -> i64 {
    hypercall(nr::set_gdt, frames.as_ptr() as u64, entries, 0)
}

fn set_gdt(s: &mut Suite, si: &StartInfo) {
    let gdt = &raw mut GDT_PAGE;
    let va = gdt as u64;
    // SAFETY: GDT_PAGE is writable until remapped below; nothing else uses it.
    unsafe {
        ptr::write_volatile(&raw mut (*gdt).0[1], DATA_DPL3);
        ptr::write_volatile(&raw mut (*gdt).0[2], CODE64_DPL0);
    }
    let frames = [mfn_of(si, va)];
    let rc = set_gdt_hc(&frames, 3);
    s.expect_rc("set_gdt.writable_frame", rc, EINVAL);
    let rc_ro = remap_own(si, va, false);
    let rc = set_gdt_hc(&frames, 7169);
    s.expect_rc("set_gdt.too_many_entries", rc, EINVAL);
    let rc = set_gdt_hc(&frames, 3);
    s.check(
        "set_gdt",
        rc_ro == 0 && rc == 0,
        format_args!("rc={}", Rc(rc)),
    );
    if rc != 0 {
        remap_own(si, va, true);
        return;
    }
    let es = probe::load_es(0x0b);
    s.check(
        "set_gdt.load_data_selector",
        es == Ok(0x0b),
        format_args!("loaded={}", es.is_ok()),
    );
    let es = probe::load_es(0x1b);
    match es {
        Err(f) => s.check(
            "set_gdt.load_empty_slot",
            f.vector == 13 && f.error_code == 0x18,
            format_args!("faulted=true {f}"),
        ),
        Ok(_) => s.check(
            "set_gdt.load_empty_slot",
            false,
            format_args!("faulted=false"),
        ),
    }
    // update_descriptor works on a live GDT frame.
    let rc = hypercall(
        nr::update_descriptor,
        frames[0] * PAGE_SIZE + 3 * 8,
        DATA_DPL3,
        0,
    );
    let es = probe::load_es(0x1b);
    s.check(
        "set_gdt.update_descriptor_live",
        rc == 0 && es == Ok(0x1b),
        format_args!("rc={} loaded={}", Rc(rc), es.is_ok()),
    );
    let _ = probe::load_es(0);
    let rc = set_gdt_hc(&frames, 0);
    let rc_rw = remap_own(si, va, true);
    s.check(
        "set_gdt.release",
        rc == 0 && rc_rw == 0,
        format_args!("rc={} writable_again={}", Rc(rc), rc_rw == 0),
    );

    let bad = &raw mut BAD_GDT_PAGE;
    // SAFETY: BAD_GDT_PAGE is writable; nothing else uses it.
    unsafe { ptr::write_volatile(&raw mut (*bad).0[5], TSS) };
    let rc_ro = remap_own(si, bad as u64, false);
    let rc = set_gdt_hc(&[mfn_of(si, bad as u64)], 16);
    s.check(
        "set_gdt.invalid_descriptor",
        rc_ro == 0 && rc == EINVAL,
        format_args!("rc={}", Rc(rc)),
    );
    remap_own(si, bad as u64, true);
}

fn set_debugreg(reg: u64, value: u64) -> i64 {
    hypercall(nr::set_debugreg, reg, value, 0)
}

fn get_debugreg(reg: u64) -> i64 {
    hypercall(nr::get_debugreg, reg, 0, 0)
}

fn debugregs(s: &mut Suite) {
    let target = &raw const DR_TARGET as u64;
    let rc = set_debugreg(0, target);
    let back = get_debugreg(0) as u64 == target;
    s.check(
        "debugreg.dr0",
        rc == 0 && back,
        format_args!("rc={} readback={back}", Rc(rc)),
    );
    let rc = set_debugreg(0, 0xffff_8000_0000_0000);
    s.expect_rc("debugreg.dr0_hypervisor_range", rc, EPERM);
    let rc = set_debugreg(6, 0);
    let v = get_debugreg(6);
    s.check(
        "debugreg.dr6_reserved_bits",
        rc == 0 && v == 0xffff_0ff0,
        format_args!("rc={} dr6={}", Rc(rc), Hex(v as u64)),
    );
    let rc = set_debugreg(6, 1 << 32);
    s.expect_rc("debugreg.dr6_high_bits", rc, EINVAL);
    let rc = set_debugreg(4, 0);
    let v4 = get_debugreg(4);
    s.check(
        "debugreg.dr4_aliases_dr6",
        rc == 0 && v4 == get_debugreg(6),
        format_args!("rc={} dr4={}", Rc(rc), Hex(v4 as u64)),
    );
    // DR0 as a 1-byte write breakpoint (never written).
    let rc = set_debugreg(7, 0x1_0001);
    let v = get_debugreg(7);
    let v5 = get_debugreg(5);
    s.check(
        "debugreg.dr7_enable",
        rc == 0 && v == 0x1_0401 && v5 == v,
        format_args!("rc={} dr7={} dr5_same={}", Rc(rc), Hex(v as u64), v5 == v),
    );
    let rc = set_debugreg(7, 0);
    let v = get_debugreg(7);
    s.check(
        "debugreg.dr7_disable",
        rc == 0 && v == 0x400,
        format_args!("rc={} dr7={}", Rc(rc), Hex(v as u64)),
    );
    let rc = set_debugreg(7, 1 << 13);
    s.expect_rc("debugreg.dr7_general_detect", rc, EPERM);
    let rc = set_debugreg(7, 1 << 32);
    s.expect_rc("debugreg.dr7_high_bits", rc, EINVAL);
    let rc = set_debugreg(7, 0x2_0001);
    s.expect_rc("debugreg.dr7_io_breakpoint", rc, EPERM);
    let rc = set_debugreg(8, 0);
    s.expect_rc("debugreg.set_dr8", rc, ENODEV);
    let rc = get_debugreg(8);
    s.expect_rc("debugreg.get_dr8", rc, ENODEV);
    set_debugreg(0, 0);
    set_debugreg(6, 0);
}

fn fpu_taskswitch(s: &mut Suite) {
    let rc = hypercall(nr::fpu_taskswitch, 1, 0, 0);
    let first = probe::fpu_insn();
    let second = probe::fpu_insn();
    s.check(
        "fpu_taskswitch.set",
        rc == 0 && matches!(first, Some(f) if f.vector == 7) && second.is_none(),
        format_args!(
            "rc={} first_faulted={} vector={} second_faulted={}",
            Rc(rc),
            first.is_some(),
            first.map_or(0, |f| f.vector),
            second.is_some()
        ),
    );
    let rc1 = hypercall(nr::fpu_taskswitch, 1, 0, 0);
    let rc2 = hypercall(nr::fpu_taskswitch, 0, 0, 0);
    let fault = probe::fpu_insn();
    s.check(
        "fpu_taskswitch.clear",
        rc1 == 0 && rc2 == 0 && fault.is_none(),
        format_args!("rc={} faulted={}", Rc(rc2), fault.is_some()),
    );
}

fn physdev_op<T>(cmd: u32, arg: *mut T) -> i64 {
    hypercall(nr::physdev_op, u64::from(cmd), arg as u64, 0)
}

fn physdev(s: &mut Suite) {
    for (check, iopl, want) in [
        ("physdev_op.set_iopl_1", 1, 0),
        ("physdev_op.set_iopl_4", 4, EINVAL),
        ("physdev_op.set_iopl_0", 0, 0),
    ] {
        let mut arg: u32 = iopl;
        s.expect_rc(check, physdev_op(PHYSDEVOP_set_iopl, &raw mut arg), want);
    }
    let rc = physdev_op::<u32>(PHYSDEVOP_set_iopl, ptr::null_mut());
    s.expect_rc("physdev_op.set_iopl_null", rc, EFAULT);
    let mut q = PhysdevIrqStatusQuery {
        irq: 0xffff,
        flags: 0,
    };
    let rc = physdev_op(PHYSDEVOP_irq_status_query, &raw mut q);
    s.expect_rc("physdev_op.irq_status_query_bad_irq", rc, EINVAL);
    let rc = physdev_op::<u32>(99, ptr::null_mut());
    s.expect_rc("physdev_op.unknown_cmd", rc, ENOSYS);
}

fn platform_op(op: &mut XenPlatformOp) -> i64 {
    hypercall(nr::platform_op, op as *mut _ as u64, 0, 0)
}

fn platform(s: &mut Suite) {
    for (check, cpu) in [
        ("platform_op.get_cpuinfo_0", 0),
        ("platform_op.get_cpuinfo_1", 1),
    ] {
        let mut op = XenPlatformOp::new(
            XENPF_get_cpuinfo,
            &XenpfPcpuinfo {
                xen_cpuid: cpu,
                ..XenpfPcpuinfo::default()
            },
        );
        let rc = platform_op(&mut op);
        let i: XenpfPcpuinfo = op.arg().unwrap_or_default();
        s.check(
            check,
            rc == 0 && i.flags == 1,
            format_args!(
                "rc={} flags={} max_present={} apic_id={} acpi_id={}",
                Rc(rc),
                i.flags,
                i.max_present,
                i.apic_id,
                i.acpi_id
            ),
        );
    }
    let mut op = XenPlatformOp::new(
        XENPF_get_cpuinfo,
        &XenpfPcpuinfo {
            xen_cpuid: 64,
            ..XenpfPcpuinfo::default()
        },
    );
    let rc = platform_op(&mut op);
    let i: XenpfPcpuinfo = op.arg().unwrap_or_default();
    s.check(
        "platform_op.get_cpuinfo_absent",
        rc == 0 && i.flags == 2,
        format_args!(
            "rc={} flags={} max_present={}",
            Rc(rc),
            i.flags,
            i.max_present
        ),
    );
    let mut op = XenPlatformOp::new(XENPF_get_cpu_version, &XenpfPcpuVersion::default());
    let rc = platform_op(&mut op);
    let v: XenpfPcpuVersion = op.arg().unwrap_or_default();
    s.check(
        "platform_op.get_cpu_version_0",
        rc == 0,
        format_args!(
            "rc={} vendor={} family={} model={} stepping={}",
            Rc(rc),
            CStr(&v.vendor_id),
            v.family,
            v.model,
            v.stepping
        ),
    );
    let mut op = XenPlatformOp::new(XENPF_get_cpuinfo, &XenpfPcpuinfo::default());
    op.interface_version = 0x0300_0000;
    let rc = platform_op(&mut op);
    s.expect_rc("platform_op.bad_interface_version", rc, EACCES);
    let mut op = XenPlatformOp::new(0x7f, &XenpfPcpuinfo::default());
    let rc = platform_op(&mut op);
    s.expect_rc("platform_op.unknown_cmd", rc, ENOSYS);
}

/// A check name built at run time.
struct Name {
    buf: [u8; 64],
    len: usize,
}

impl Default for Name {
    fn default() -> Self {
        Name {
            buf: [0; 64],
            len: 0,
        }
    }
}

impl Name {
    fn as_str(&self) -> &str {
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("?")
    }
}

impl core::fmt::Write for Name {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let end = self.len + s.len();
        if end > self.buf.len() {
            return Err(core::fmt::Error);
        }
        self.buf[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// Room for the machine memory map.
const MAX_E820: usize = 128;

fn memory_maps(s: &mut Suite, si: &StartInfo) {
    let mut buf = [E820Entry::default(); MAX_E820];
    let mut map = XenMemoryMap {
        nr_entries: MAX_E820 as u32,
        _pad0: 0,
        buffer: xen_abi::xen::GuestHandle::from_ptr(buf.as_mut_ptr()),
    };
    // SAFETY: XENMEM_memory_map reads the xen_memory_map and writes up to nr_entries entries.
    let rc = unsafe { hc::memory_op(XENMEM_memory_map, (&raw mut map).cast()) };
    // A PV dom0 has no pseudo-physical memory map in Xen 4.17 (Linux falls back).
    s.expect_rc("memory_op.memory_map", rc, ENOSYS);

    let mut count = XenMemoryMap {
        nr_entries: 0,
        _pad0: 0,
        buffer: xen_abi::xen::GuestHandle::NULL,
    };
    // SAFETY: a NULL buffer only asks for the count.
    let rc_count = unsafe { hc::memory_op(XENMEM_machine_memory_map, (&raw mut count).cast()) };
    let mut map = XenMemoryMap {
        nr_entries: MAX_E820 as u32,
        _pad0: 0,
        buffer: xen_abi::xen::GuestHandle::from_ptr(buf.as_mut_ptr()),
    };
    // SAFETY: Xen writes up to nr_entries entries into buf.
    let rc = unsafe { hc::memory_op(XENMEM_machine_memory_map, (&raw mut map).cast()) };
    let n = (map.nr_entries as usize).min(MAX_E820);
    let entries = &buf[..n];
    let sorted = entries.windows(2).all(|w| {
        let (a_end, b) = (w[0].addr + w[0].size, w[1].addr);
        a_end <= b
    });
    let ram = entries.iter().filter(|e| e.type_ == E820_RAM).count();
    s.check(
        "memory_op.machine_memory_map",
        rc == 0 && n > 0 && sorted && rc_count == 0 && count.nr_entries == map.nr_entries,
        format_args!(
            "rc={} nr_entries={} ram_entries={ram} sorted={sorted} count_only={}",
            Rc(rc),
            map.nr_entries,
            count.nr_entries
        ),
    );
    // The map itself (Xen's e820 plus UNUSABLE entries for the I/O ranges dom0 may not
    // access), one verdict per entry.
    for (i, e) in entries.iter().enumerate() {
        let (addr, size, ty) = (e.addr, e.size, e.type_);
        let mut name = Name::default();
        let _ = core::fmt::Write::write_fmt(
            &mut name,
            format_args!("memory_op.machine_memory_map.entry_{i:02}"),
        );
        s.check(
            name.as_str(),
            size > 0,
            format_args!("addr={} size={} type={ty}", Hex(addr), Hex(size)),
        );
    }
    let mut small = XenMemoryMap {
        nr_entries: 1,
        _pad0: 0,
        buffer: xen_abi::xen::GuestHandle::from_ptr(buf.as_mut_ptr()),
    };
    // SAFETY: as above, with room for one entry.
    let rc = unsafe { hc::memory_op(XENMEM_machine_memory_map, (&raw mut small).cast()) };
    s.expect_rc("memory_op.machine_memory_map_too_small", rc, EINVAL);

    // A PV guest's maximum gpfn is shared_info.arch.max_pfn - 1, which the guest sets
    // (0 until then).
    let maximum_gpfn = || {
        let mut domid = DOMID_SELF;
        // SAFETY: XENMEM_maximum_gpfn reads a domid_t.
        unsafe { hc::memory_op(XENMEM_maximum_gpfn, (&raw mut domid).cast()) }
    };
    let rc = maximum_gpfn();
    s.expect_rc("memory_op.maximum_gpfn", rc, 0);
    if ev::mapped() {
        let sh = ev::shared_info();
        // SAFETY: shared_info is mapped writable; arch.max_pfn belongs to the guest.
        unsafe { ptr::write_volatile(&raw mut (*sh).arch.max_pfn, si.nr_pages) };
        let rc = maximum_gpfn();
        // SAFETY: as above.
        unsafe { ptr::write_volatile(&raw mut (*sh).arch.max_pfn, 0) };
        s.check(
            "memory_op.maximum_gpfn_from_shared_info",
            rc == si.nr_pages as i64 - 1,
            format_args!("rc_is_nr_pages_minus_1={}", rc == si.nr_pages as i64 - 1),
        );
    } else {
        s.skip(
            "memory_op.maximum_gpfn_from_shared_info",
            format_args!("no shared_info"),
        );
    }
    let mut domid: u16 = 5;
    // SAFETY: as above.
    let rc = unsafe { hc::memory_op(XENMEM_maximum_gpfn, (&raw mut domid).cast()) };
    s.expect_rc("memory_op.maximum_gpfn_no_such_domain", rc, ESRCH);
}

fn console_read(s: &mut Suite) {
    let mut buf = [0u8; 16];
    let rc = hypercall(
        nr::console_io,
        u64::from(CONSOLEIO_read),
        buf.len() as u64,
        buf.as_mut_ptr() as u64,
    );
    s.expect_rc("console_io.read", rc, 0);
    let rc = hypercall(
        nr::console_io,
        u64::from(CONSOLEIO_read),
        0,
        buf.as_mut_ptr() as u64,
    );
    s.expect_rc("console_io.read_zero", rc, 0);
}

fn sched(s: &mut Suite) {
    // Latching poweroff keeps the final SCHEDOP_shutdown(poweroff) a poweroff.
    let mut code = SchedShutdown {
        reason: SHUTDOWN_poweroff,
    };
    let rc = hypercall(
        nr::sched_op,
        u64::from(SCHEDOP_shutdown_code),
        &raw mut code as u64,
        0,
    );
    s.expect_rc("sched_op.shutdown_code", rc, 0);
    let rc = hypercall(nr::sched_op, u64::from(SCHEDOP_shutdown_code), 0, 0);
    s.expect_rc("sched_op.shutdown_code_null", rc, EFAULT);
    let mut remote = SchedRemoteShutdown {
        domain_id: 5,
        _pad0: 0,
        reason: SHUTDOWN_poweroff,
    };
    let rc = hypercall(
        nr::sched_op,
        u64::from(SCHEDOP_remote_shutdown),
        &raw mut remote as u64,
        0,
    );
    s.expect_rc("sched_op.remote_shutdown_no_such_domain", rc, ESRCH);
}

fn callback_op<T>(cmd: u32, arg: &T) -> i64 {
    hypercall(nr::callback_op, u64::from(cmd), arg as *const T as u64, 0)
}

fn callbacks(s: &mut Suite) {
    let stub = |vector: u64| default_trap_stub() + 16 * vector;
    let reg = |type_, address| CallbackRegister {
        type_,
        flags: 0,
        _pad0: 0,
        address,
    };
    let rc = callback_op(
        CALLBACKOP_register,
        &reg(CALLBACKTYPE_event, ev::entry_address()),
    );
    s.expect_rc("callback_op.register_event", rc, 0);
    let rc = callback_op(CALLBACKOP_register, &reg(CALLBACKTYPE_nmi, stub(2)));
    s.expect_rc("callback_op.register_nmi", rc, 0);
    let rc = callback_op(
        CALLBACKOP_unregister,
        &CallbackUnregister {
            type_: CALLBACKTYPE_nmi,
            _unused: 0,
        },
    );
    s.expect_rc("callback_op.unregister_nmi", rc, 0);
    let rc = callback_op(
        CALLBACKOP_unregister,
        &CallbackUnregister {
            type_: CALLBACKTYPE_event,
            _unused: 0,
        },
    );
    s.expect_rc("callback_op.unregister_event", rc, EINVAL);
    let rc = callback_op(CALLBACKOP_register, &reg(99, stub(2)));
    s.expect_rc("callback_op.register_bad_type", rc, ENOSYS);
    let rc = callback_op(
        CALLBACKOP_register,
        &reg(CALLBACKTYPE_event, 0x0000_8000_0000_0000),
    );
    s.expect_rc("callback_op.register_non_canonical", rc, EINVAL);
    let rc = callback_op(7, &reg(CALLBACKTYPE_event, ev::entry_address()));
    s.expect_rc("callback_op.bad_cmd", rc, ENOSYS);
    // set_callbacks(event, failsafe, syscall): the failsafe path reports like a #GP.
    let rc = hypercall(nr::set_callbacks, ev::entry_address(), stub(13), stub(6));
    s.expect_rc("set_callbacks", rc, 0);
}

/// The default trap stubs of `entry.rs` (16 bytes per vector).
fn default_trap_stub() -> u64 {
    unsafe extern "C" {
        static pvtest_trap_stubs: u8;
    }
    (&raw const pvtest_trap_stubs) as u64
}

fn vcpu_info(s: &mut Suite, si: &StartInfo) {
    if !ev::mapped() {
        s.skip("vcpu_info", format_args!("shared_info not mapped"));
        return;
    }
    let rc = ev::register_callback();
    let mut physid = VcpuGetPhysid { phys_id: 0 };
    // SAFETY: VCPUOP_get_physid writes a vcpu_get_physid.
    let rc_p = unsafe { hc::vcpu_op(VCPUOP_get_physid, 0, (&raw mut physid).cast()) };
    s.expect_rc("vcpu_op.get_physid", rc_p, EINVAL);

    let page = &raw mut VCPU_INFO_PAGE;
    let mfn = mfn_of(si, page as u64);
    let register = |mfn: u64, offset: u32, vcpu: u32| {
        let mut r = VcpuRegisterVcpuInfo {
            mfn,
            offset,
            rsvd: 0,
        };
        // SAFETY: Xen reads the vcpu_register_vcpu_info; on success it uses the named area of
        // a page of this image that nothing else touches.
        unsafe { hc::vcpu_op(VCPUOP_register_vcpu_info, vcpu, (&raw mut r).cast()) }
    };
    s.expect_rc(
        "vcpu_op.register_vcpu_info_misaligned",
        register(mfn, 4, 0),
        ENXIO,
    );
    s.expect_rc(
        "vcpu_op.register_vcpu_info_crosses_page",
        register(mfn, 4096 - 32, 0),
        ENXIO,
    );
    s.expect_rc(
        "vcpu_op.register_vcpu_info_page_table",
        register(mfn_of(si, si.pt_base), 0, 0),
        EINVAL,
    );
    s.expect_rc(
        "vcpu_op.register_vcpu_info_no_such_vcpu",
        register(mfn, 64, 1),
        ENOENT,
    );
    let mask_before = ev::upcall_mask();
    let rc_reg = register(mfn, 64, 0);
    let vi = (page as u64 + 64) as *mut VcpuInfo;
    // SAFETY: Xen now uses this vcpu_info; volatile reads because it writes it.
    let (pending, mask, sel) = unsafe {
        (
            ptr::read_volatile(&raw const (*vi).evtchn_upcall_pending),
            ptr::read_volatile(&raw const (*vi).evtchn_upcall_mask),
            ptr::read_volatile(&raw const (*vi).evtchn_pending_sel),
        )
    };
    s.check(
        "vcpu_op.register_vcpu_info",
        rc_reg == 0 && pending == 1 && mask == mask_before && sel == u64::MAX,
        format_args!(
            "rc={} upcall_pending={pending} mask={mask} pending_sel={}",
            Rc(rc_reg),
            Hex(sel)
        ),
    );
    if rc_reg != 0 {
        for check in [
            "vcpu_op.register_vcpu_info_again",
            "vcpu_info.time_in_new_area",
            "vcpu_info.spurious_upcall",
            "vcpu_info.ipi_via_new_area",
        ] {
            s.skip(check, format_args!("vcpu_info not moved"));
        }
        return;
    }
    ev::set_vcpu_info(vi as u64);
    s.expect_rc(
        "vcpu_op.register_vcpu_info_again",
        register(mfn, 128, 0),
        EINVAL,
    );
    let (t, stable) = ev::read_time();
    s.check(
        "vcpu_info.time_in_new_area",
        stable && t.version & 1 == 0 && t.system_time > 0 && t.tsc_to_system_mul != 0,
        format_args!(
            "even={} system_time_positive={}",
            t.version & 1 == 0,
            t.system_time > 0
        ),
    );
    // The "everything pending" Xen set is delivered once events are unmasked in the new area.
    ev::reset();
    let got = rc == 0 && ev::wait_upcalls(1, 300_000_000);
    let u = ev::first();
    s.check(
        "vcpu_info.spurious_upcall",
        got && u.pending == 1 && u.mask == 1 && u.saved_mask == 0,
        format_args!("upcall={got} pending={} mask={}", u.pending, u.mask),
    );
    // An IPI is delivered through the new area.
    let (rc, port) = ev::bind_ipi(0);
    if rc == 0 {
        ev::set_port_mask(port, false);
        ev::drain();
        let rc = ev::send(port);
        let pending_new = ev::upcall_pending();
        let got = ev::wait_upcalls(1, 300_000_000);
        s.check(
            "vcpu_info.ipi_via_new_area",
            rc == 0 && pending_new == 1 && got && ev::seen(port),
            format_args!(
                "rc={} upcall_pending={pending_new} upcall={got} port_bit={}",
                Rc(rc),
                ev::seen(port)
            ),
        );
        ev::close(port);
    } else {
        s.skip(
            "vcpu_info.ipi_via_new_area",
            format_args!("bind_ipi rc={}", Rc(rc)),
        );
    }
    ev::set_upcall_mask(1);
}
