//! `smp` (only when named; needs `dom0_max_vcpus=2`): bringing up a secondary vCPU of a PVH
//! domain the way FreeBSD PVH does, with `VCPUOP_initialise` on a `vcpu_hvm_context`
//! (`xen_abi::hvm::VcpuHvmContext`) and `VCPUOP_up`; what vCPU 1 finds when it starts; and
//! taking it down again, first with `VCPUOP_down` on itself, then (after `VCPUOP_up` resumed
//! it) with `cli; hlt`, which Xen's HVM code treats as the vCPU going offline.
//!
//! vCPU 0 alone prints: vCPU 1 reports through atomics and moves on only when vCPU 0 says so,
//! so the transcript's order does not depend on how the two interleave. Every wait on vCPU 0 is
//! bounded (PV clock time) and spins with `SCHEDOP_yield`, so a broken hypervisor gives FAIL
//! verdicts instead of a hang. With one vCPU the suite prints one SKIP. vCPU 1 ends offline.
//!
//! Details carry only host-independent values: return codes, booleans, vCPU ids, selectors.

use core::arch::{asm, global_asm};
use core::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering};

use xen_abi::errno::Errno;
use xen_abi::hvm::{VcpuHvmContext, VcpuHvmX86_32, VcpuHvmX86_64};
use xen_abi::hypercall as nr;
use xen_abi::sched::SCHEDOP_yield;
use xen_abi::vcpu::{VCPUOP_down, VCPUOP_initialise, VCPUOP_is_up, VCPUOP_up};
use xen_abi::version::XENVER_version;

use crate::boot::{CODE64_SEL, DATA_SEL};
use crate::console::println;
use crate::events::{ensure_shared_info, vcpu0};
use crate::hypercall::{cpuid, hypercall3};
use crate::pvclock::now;
use crate::suites::Env;
use crate::verdict::{Hex, Rc, Suite};

const EINVAL: i64 = Rc::err(Errno::EINVAL);
const ENOENT: i64 = Rc::err(Errno::ENOENT);
const EEXIST: i64 = Rc::err(Errno::EEXIST);

/// How long vCPU 0 waits for vCPU 1 (generous: QEMU's vCPU threads may be descheduled on a
/// loaded host; a correct run never waits this long).
const WAIT_NS: u64 = 5_000_000_000;
/// Size of vCPU 1's stack.
const AP_STACK_SIZE: usize = 16 * 1024;
/// What vCPU 1 finds in `rdi` at its entry (set in its context).
const AP_MAGIC: u64 = 0x5056_4831_6170_6d67;
/// `RFLAGS` in the context: only the always-one bit (interrupts off).
const AP_RFLAGS: u64 = 0x2;
/// Leaf base+4 eax: `XEN_HVM_CPUID_VCPU_ID_PRESENT`.
const XEN_HVM_CPUID_VCPU_ID_PRESENT: u32 = 1 << 3;
/// `EFER`.
const MSR_EFER: u32 = 0xc000_0080;

/// `CR0.PG`.
const X86_CR0_PG: u64 = 1 << 31;

// vCPU 0 to vCPU 1: go on to the next step.
/// vCPU 1 may take itself down with `VCPUOP_down`.
static GO_DOWN: AtomicBool = AtomicBool::new(false);
/// vCPU 1 may `cli; hlt`.
static GO_HALT: AtomicBool = AtomicBool::new(false);

// What vCPU 0 gives vCPU 1.
/// vCPU 0's CR0, CR3, CR4, EFER (vCPU 1 compares its own).
static BSP_CR0: AtomicU64 = AtomicU64::new(0);
static BSP_CR3: AtomicU64 = AtomicU64::new(0);
static BSP_CR4: AtomicU64 = AtomicU64::new(0);
static BSP_EFER: AtomicU64 = AtomicU64::new(0);
/// Xen's first CPUID leaf.
static LEAF_BASE: AtomicU32 = AtomicU32::new(0);

/// A `lgdt`/`lidt` operand.
#[repr(C, packed)]
struct DescPtr {
    limit: u16,
    base: u64,
}

/// vCPU 0's GDTR and IDTR (`sgdt`/`sidt`), which vCPU 1's entry loads; only accessed through
/// raw pointers, written before `VCPUOP_up`.
static mut AP_GDTR: DescPtr = DescPtr { limit: 0, base: 0 };
static mut AP_IDTR: DescPtr = DescPtr { limit: 0, base: 0 };

// What vCPU 1 saw.
/// Set once vCPU 1's entry checks are done.
static ALIVE: AtomicBool = AtomicBool::new(false);
/// `rdi` at entry was [`AP_MAGIC`].
static AP_RDI_OK: AtomicBool = AtomicBool::new(false);
/// `rsp` at entry was the top of its stack.
static AP_RSP_OK: AtomicBool = AtomicBool::new(false);
/// `RFLAGS` at entry.
static AP_RFLAGS_SEEN: AtomicU64 = AtomicU64::new(u64::MAX);
/// `CS` at entry, before the far return to vCPU 0's GDT.
static AP_CS_ENTRY: AtomicU64 = AtomicU64::new(u64::MAX);
/// `CS` and `SS` after loading the GDT.
static AP_CS: AtomicU64 = AtomicU64::new(u64::MAX);
static AP_SS: AtomicU64 = AtomicU64::new(u64::MAX);
/// CR0, CR3, CR4 and EFER were vCPU 0's.
static AP_CRS_MATCH: AtomicBool = AtomicBool::new(false);
/// vCPU 1's GDTR and IDTR (`sgdt`/`sidt`) were vCPU 0's.
static AP_TABLES_MATCH: AtomicBool = AtomicBool::new(false);
/// CPUID leaf base+4: eax had `XEN_HVM_CPUID_VCPU_ID_PRESENT`; ebx.
static AP_VCPU_ID_PRESENT: AtomicBool = AtomicBool::new(false);
static AP_VCPU_ID: AtomicU32 = AtomicU32::new(u32::MAX);
/// `XENVER_version` from vCPU 1.
static AP_VERSION: AtomicI64 = AtomicI64::new(i64::MIN);
/// `VCPUOP_is_up(1)` and `VCPUOP_is_up(0)` from vCPU 1.
static AP_IS_UP_SELF: AtomicI64 = AtomicI64::new(i64::MIN);
static AP_IS_UP_0: AtomicI64 = AtomicI64::new(i64::MIN);
/// `VCPUOP_down(1)` from vCPU 1 returned (once `VCPUOP_up` resumed it), with this value.
static AP_DOWN_RC: AtomicI64 = AtomicI64::new(i64::MIN);
/// vCPU 1 ran on after `cli; hlt` (it should never).
static AP_HLT_RETURNED: AtomicBool = AtomicBool::new(false);

global_asm!(
    ".pushsection .text.pvhtest_smp, \"ax\"",
    // vCPU 1 starts here in long mode on vCPU 0's page tables, with CS/DS/SS as the hypervisor
    // made them and no usable GDT or IDT: rdi = AP_MAGIC, rsp = stack top, interrupts off.
    // Record rsp, rflags and cs, load vCPU 0's GDT and IDT, reload the segment registers from
    // that GDT (a far return for CS), then call ap_main(rdi, rsp, rflags, cs).
    ".balign 16",
    ".global pvhtest_smp_ap_entry",
    "pvhtest_smp_ap_entry:",
    "    cld",
    "    mov %rsp, %rsi",
    "    pushfq",
    "    pop %rdx",
    "    xor %ecx, %ecx",
    "    mov %cs, %cx",
    "    lgdt {gdtr}(%rip)",
    "    lidt {idtr}(%rip)",
    "    pushq ${code64}",
    "    lea 1f(%rip), %rax",
    "    push %rax",
    "    lretq",
    "1:  mov ${data}, %eax",
    "    mov %eax, %ds",
    "    mov %eax, %es",
    "    mov %eax, %ss",
    "    xor %eax, %eax",
    "    mov %eax, %fs",
    "    mov %eax, %gs",
    "    and $-16, %rsp",
    "    call {ap_main}",
    "    ud2",
    ".popsection",
    ".pushsection .bss.pvhtest_smp_stack, \"aw\", @nobits",
    ".balign 4096",
    "pvhtest_smp_ap_stack:",
    ".skip {stack_size}",
    ".global pvhtest_smp_ap_stack_top",
    "pvhtest_smp_ap_stack_top:",
    ".popsection",
    gdtr = sym AP_GDTR,
    idtr = sym AP_IDTR,
    code64 = const CODE64_SEL,
    data = const DATA_SEL,
    ap_main = sym ap_main,
    stack_size = const AP_STACK_SIZE,
    options(att_syntax)
);

unsafe extern "C" {
    /// vCPU 1's entry point.
    static pvhtest_smp_ap_entry: u8;
    /// The top of vCPU 1's stack.
    static pvhtest_smp_ap_stack_top: u8;
}

fn ap_entry() -> u64 {
    (&raw const pvhtest_smp_ap_entry) as u64
}

fn ap_stack_top() -> u64 {
    (&raw const pvhtest_smp_ap_stack_top) as u64
}

// ---------------------------------------------------------------------------------------------
// Hypercalls and registers.

/// `VCPUOP_<cmd>(vcpu)` for the commands that take no argument.
fn vcpu_op0(cmd: u32, vcpu: u32) -> i64 {
    // SAFETY: VCPUOP_is_up, VCPUOP_up and VCPUOP_down take no argument; the null pointer is
    // never read.
    unsafe { hypercall3(nr::vcpu_op, u64::from(cmd), u64::from(vcpu), 0) }
}

fn is_up(vcpu: u32) -> i64 {
    vcpu_op0(VCPUOP_is_up, vcpu)
}

/// `VCPUOP_initialise(vcpu, ctx)`.
fn initialise(vcpu: u32, ctx: &mut VcpuHvmContext) -> i64 {
    // SAFETY: `ctx` is a vcpu_hvm_context the hypervisor only reads; the only context that can
    // start a vCPU sends it to this suite's entry stub on its own stack.
    unsafe {
        hypercall3(
            nr::vcpu_op,
            u64::from(VCPUOP_initialise),
            u64::from(vcpu),
            (ctx as *mut VcpuHvmContext) as u64,
        )
    }
}

fn xen_version() -> i64 {
    // SAFETY: XENVER_version takes no argument.
    unsafe { hypercall3(nr::xen_version, u64::from(XENVER_version), 0, 0) }
}

fn sched_yield() {
    // SAFETY: SCHEDOP_yield takes no argument.
    unsafe { hypercall3(nr::sched_op, u64::from(SCHEDOP_yield), 0, 0) };
}

/// CR0, CR3, CR4 and EFER of the running vCPU.
fn control_regs() -> [u64; 4] {
    let (cr0, cr3, cr4): (u64, u64, u64);
    let (lo, hi): (u32, u32);
    // SAFETY: reading control registers and EFER has no side effects.
    unsafe {
        asm!(
            "mov {0}, cr0",
            "mov {1}, cr3",
            "mov {2}, cr4",
            out(reg) cr0,
            out(reg) cr3,
            out(reg) cr4,
            options(nomem, nostack)
        );
        asm!("rdmsr", in("ecx") MSR_EFER, out("eax") lo, out("edx") hi, options(nomem, nostack));
    }
    [cr0, cr3, cr4, (u64::from(hi) << 32) | u64::from(lo)]
}

/// The running vCPU's GDTR and IDTR as (limit, base) pairs.
fn tables() -> [(u16, u64); 2] {
    let mut gdtr = DescPtr { limit: 0, base: 0 };
    let mut idtr = DescPtr { limit: 0, base: 0 };
    // SAFETY: SGDT and SIDT store 10 bytes each into the local operands.
    unsafe {
        asm!(
            "sgdt [{0}]",
            "sidt [{1}]",
            in(reg) &raw mut gdtr,
            in(reg) &raw mut idtr,
            options(nostack)
        )
    };
    [(gdtr.limit, gdtr.base), (idtr.limit, idtr.base)]
}

// ---------------------------------------------------------------------------------------------
// vCPU 1.

/// vCPU 1's code after its entry stub: checks what it was started with, makes hypercalls,
/// then takes itself down (`VCPUOP_down`) and, once brought up again, halts with interrupts
/// off. Never returns.
extern "C" fn ap_main(rdi: u64, entry_rsp: u64, rflags: u64, cs: u64) -> ! {
    AP_RDI_OK.store(rdi == AP_MAGIC, Ordering::SeqCst);
    AP_RSP_OK.store(entry_rsp == ap_stack_top(), Ordering::SeqCst);
    AP_RFLAGS_SEEN.store(rflags, Ordering::SeqCst);
    AP_CS_ENTRY.store(cs, Ordering::SeqCst);
    let (cs, ss): (u16, u16);
    // SAFETY: reading segment selectors has no side effects.
    unsafe {
        asm!("mov {0:x}, cs", "mov {1:x}, ss", out(reg) cs, out(reg) ss, options(nomem, nostack))
    };
    AP_CS.store(u64::from(cs), Ordering::SeqCst);
    AP_SS.store(u64::from(ss), Ordering::SeqCst);
    let bsp = [&BSP_CR0, &BSP_CR3, &BSP_CR4, &BSP_EFER].map(|a| a.load(Ordering::SeqCst));
    AP_CRS_MATCH.store(control_regs() == bsp, Ordering::SeqCst);
    // SAFETY: vCPU 0 wrote both before VCPUOP_up and does not write them again.
    let want = unsafe { [(AP_GDTR.limit, AP_GDTR.base), (AP_IDTR.limit, AP_IDTR.base)] };
    AP_TABLES_MATCH.store(tables() == want, Ordering::SeqCst);
    let (eax, ebx, _, _) = cpuid(LEAF_BASE.load(Ordering::SeqCst) + 4);
    AP_VCPU_ID_PRESENT.store(eax & XEN_HVM_CPUID_VCPU_ID_PRESENT != 0, Ordering::SeqCst);
    AP_VCPU_ID.store(ebx, Ordering::SeqCst);
    AP_VERSION.store(xen_version(), Ordering::SeqCst);
    AP_IS_UP_SELF.store(is_up(1), Ordering::SeqCst);
    AP_IS_UP_0.store(is_up(0), Ordering::SeqCst);
    ALIVE.store(true, Ordering::SeqCst);

    while !GO_DOWN.load(Ordering::SeqCst) {
        core::hint::spin_loop();
    }
    // Returns only when vCPU 0 brings this vCPU up again.
    let rc = vcpu_op0(VCPUOP_down, 1);
    AP_DOWN_RC.store(rc, Ordering::SeqCst);

    while !GO_HALT.load(Ordering::SeqCst) {
        core::hint::spin_loop();
    }
    loop {
        // SAFETY: parks this vCPU with interrupts off; it touches no memory.
        unsafe { asm!("cli", "hlt", options(nomem, nostack)) };
        AP_HLT_RETURNED.store(true, Ordering::SeqCst);
    }
}

// ---------------------------------------------------------------------------------------------
// vCPU 0.

/// Spins (yielding) until `done()` or [`WAIT_NS`] pass; whether `done()` became true.
fn wait_for(mut done: impl FnMut() -> bool) -> bool {
    // SAFETY: shared_info is mapped (checked by `run`); no reference is created.
    let time = unsafe { &raw const (*vcpu0()).time };
    let deadline = now(time) + WAIT_NS;
    loop {
        if done() {
            return true;
        }
        if now(time) > deadline {
            return done();
        }
        sched_yield();
    }
}

/// vCPU 0's registers as a 64-bit context starting vCPU 1 at its entry stub.
fn good_regs() -> VcpuHvmX86_64 {
    let [cr0, cr3, cr4, efer] = control_regs();
    VcpuHvmX86_64 {
        rsp: ap_stack_top(),
        rdi: AP_MAGIC,
        rip: ap_entry(),
        rflags: AP_RFLAGS,
        cr0,
        cr3,
        cr4,
        efer,
        ..VcpuHvmX86_64::default()
    }
}

pub fn run(s: &mut Suite, env: &Env) {
    let rc = is_up(1);
    if rc == ENOENT {
        s.skip("vcpus", format_args!("is_up_1={} one_vcpu", Rc(rc)));
        return;
    }
    s.expect_rc("is_up_1_before", rc, 0);
    if !ensure_shared_info() {
        s.check("setup", false, format_args!("shared_info not mapped"));
        return;
    }
    let [cr0, cr3, cr4, efer] = control_regs();
    for (a, v) in [
        (&BSP_CR0, cr0),
        (&BSP_CR3, cr3),
        (&BSP_CR4, cr4),
        (&BSP_EFER, efer),
    ] {
        a.store(v, Ordering::SeqCst);
    }
    LEAF_BASE.store(env.leaves.base, Ordering::SeqCst);
    let [(gdt_limit, gdt_base), (idt_limit, idt_base)] = tables();
    // SAFETY: vCPU 1 is down (checked above) and reads these only after VCPUOP_up.
    unsafe {
        AP_GDTR = DescPtr {
            limit: gdt_limit,
            base: gdt_base,
        };
        AP_IDTR = DescPtr {
            limit: idt_limit,
            base: idt_base,
        };
    }

    s.expect_rc("up_uninitialised", vcpu_op0(VCPUOP_up, 1), EINVAL);
    refused_contexts(s);

    let mut ctx = VcpuHvmContext::from_x86_64(&good_regs());
    let rc = initialise(1, &mut ctx);
    s.expect_rc("initialise_64b", rc, 0);
    if rc != 0 {
        return;
    }
    s.expect_rc("is_up_1_initialised", is_up(1), 0);
    let mut again = VcpuHvmContext::from_x86_64(&good_regs());
    s.expect_rc("initialise_again", initialise(1, &mut again), EEXIST);
    let rc = vcpu_op0(VCPUOP_up, 1);
    s.expect_rc("up", rc, 0);
    if rc != 0 {
        return;
    }

    let alive = wait_for(|| ALIVE.load(Ordering::SeqCst));
    s.check("ap.started", alive, format_args!("alive={alive}"));
    if !alive {
        return;
    }
    ap_report(s);
    s.expect_rc("is_up_1_running", is_up(1), 1);

    // vCPU 1 takes itself down; it stays inside the hypercall until brought up again.
    GO_DOWN.store(true, Ordering::SeqCst);
    let down = wait_for(|| is_up(1) == 0);
    let returned = AP_DOWN_RC.load(Ordering::SeqCst) != i64::MIN;
    s.check(
        "self_down",
        down && !returned,
        format_args!("is_up_1={} returned={returned}", Rc(is_up(1))),
    );
    s.expect_rc("up_again", vcpu_op0(VCPUOP_up, 1), 0);
    let resumed = wait_for(|| AP_DOWN_RC.load(Ordering::SeqCst) != i64::MIN);
    let rc = AP_DOWN_RC.load(Ordering::SeqCst);
    s.check(
        "resumed",
        resumed && rc == 0,
        format_args!("resumed={resumed} down_rc={}", Rc(rc)),
    );
    s.expect_rc("is_up_1_resumed", is_up(1), 1);

    // `cli; hlt`: Xen takes an HVM vCPU that halts with interrupts off offline.
    GO_HALT.store(true, Ordering::SeqCst);
    let halted = wait_for(|| is_up(1) == 0);
    let ran_on = AP_HLT_RETURNED.load(Ordering::SeqCst);
    s.check(
        "hlt_down",
        halted && !ran_on,
        format_args!("is_up_1={} ran_on={ran_on}", Rc(is_up(1))),
    );
    let mut late = VcpuHvmContext::from_x86_64(&good_regs());
    s.expect_rc("initialise_after_down", initialise(1, &mut late), EEXIST);
}

/// Contexts `VCPUOP_initialise` must refuse (vCPU 1 stays uninitialised).
fn refused_contexts(s: &mut Suite) {
    let mut no_paging = good_regs();
    no_paging.cr0 &= !X86_CR0_PG;
    let mut non_canonical = good_regs();
    non_canonical.rip = 0x0000_8000_0000_0000;
    let mut bad_mode = VcpuHvmContext::from_x86_64(&good_regs());
    bad_mode.mode = 2;
    let mut bad_pad = VcpuHvmContext::from_x86_64(&good_regs());
    bad_pad.pad = 1;
    // All-zero 32-bit registers: CS has null attributes.
    let null_cs = VcpuHvmContext::from_x86_32(&VcpuHvmX86_32::default());
    for (name, mut ctx) in [
        (
            "initialise_64b_no_paging",
            VcpuHvmContext::from_x86_64(&no_paging),
        ),
        (
            "initialise_64b_non_canonical_rip",
            VcpuHvmContext::from_x86_64(&non_canonical),
        ),
        ("initialise_bad_mode", bad_mode),
        ("initialise_bad_pad", bad_pad),
        ("initialise_32b_null_cs", null_cs),
    ] {
        s.expect_rc(name, initialise(1, &mut ctx), EINVAL);
    }
    s.expect_rc("is_up_1_after_refused", is_up(1), 0);
}

/// The checks on what vCPU 1 saw.
fn ap_report(s: &mut Suite) {
    let rdi = AP_RDI_OK.load(Ordering::SeqCst);
    let rsp = AP_RSP_OK.load(Ordering::SeqCst);
    let rflags = AP_RFLAGS_SEEN.load(Ordering::SeqCst);
    s.check(
        "ap.entry_regs",
        rdi && rsp && rflags == AP_RFLAGS,
        format_args!("rdi_ok={rdi} rsp_ok={rsp} rflags={}", Hex(rflags)),
    );
    let crs = AP_CRS_MATCH.load(Ordering::SeqCst);
    s.check("ap.control_regs", crs, format_args!("same_as_vcpu0={crs}"));
    // The entry selector is the hypervisor's choice (Xen: 0); informational only.
    println!(
        "PVHTEST info smp ap cs_at_entry={}",
        Hex(AP_CS_ENTRY.load(Ordering::SeqCst))
    );
    let tables = AP_TABLES_MATCH.load(Ordering::SeqCst);
    let (cs, ss) = (AP_CS.load(Ordering::SeqCst), AP_SS.load(Ordering::SeqCst));
    s.check(
        "ap.gdt_idt",
        tables && cs == u64::from(CODE64_SEL) && ss == u64::from(DATA_SEL),
        format_args!("loaded={tables} cs={} ss={}", Hex(cs), Hex(ss)),
    );
    let present = AP_VCPU_ID_PRESENT.load(Ordering::SeqCst);
    let id = AP_VCPU_ID.load(Ordering::SeqCst);
    s.check(
        "ap.cpuid_vcpu_id",
        present && id == 1,
        format_args!("present={present} vcpu_id={id}"),
    );
    let same = AP_VERSION.load(Ordering::SeqCst) == xen_version();
    s.check("ap.xen_version", same, format_args!("same_as_vcpu0={same}"));
    let (me, bsp) = (
        AP_IS_UP_SELF.load(Ordering::SeqCst),
        AP_IS_UP_0.load(Ordering::SeqCst),
    );
    s.check(
        "ap.is_up",
        me == 1 && bsp == 1,
        format_args!("self={} vcpu0={}", Rc(me), Rc(bsp)),
    );
}
