//! `smp`: the SMP side of the PV ABI, for a dom0 with two vCPUs (`dom0_max_vcpus=2`): the vCPU
//! state machine (`VCPUOP_is_up`, `VCPUOP_initialise`, `VCPUOP_up`, `VCPUOP_down`), moving a
//! down vCPU's `vcpu_info` into a guest page, bringing vCPU 1 up on a `vcpu_guest_context` built
//! the way Linux's `cpu_initialize_context` builds one, hypercalls and event upcalls on vCPU 1,
//! IPIs in both directions, and taking vCPU 1 down (from vCPU 0, then by itself) and up again.
//!
//! The suite runs on vCPU 0, which alone prints: vCPU 1 runs a small command loop
//! (`ap_main`) and reports through atomics, so the transcript's order does not depend on how
//! the two vCPUs interleave. Every wait is bounded (system time from the PV clock) and spins
//! with `SCHEDOP_yield`, so a broken hypervisor produces FAIL verdicts instead of a hang.
//!
//! With one vCPU (the other suites run with `dom0_max_vcpus=1`) the suite prints a single SKIP.
//! It leaves vCPU 1 down, which is why it runs last.
//!
//! Every expected value is what Xen 4.17 does for a 64-bit PV dom0 (checked against the real
//! hypervisor by `tests-qemu/tests/pv_smp.rs`); details carry only return codes, states, counts
//! and booleans.

use core::arch::{asm, global_asm};
use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering};

use xen_abi::arch_x86::{
    FLAT_KERNEL_CS, FLAT_KERNEL_SS, VGCF_in_kernel, VcpuGuestContext, xen_pfn_to_cr3,
};
use xen_abi::errno::Errno;
use xen_abi::event_channel::EVTCHNSTAT_ipi;
use xen_abi::hypercall as nr;
use xen_abi::sched::{SCHEDOP_block, SCHEDOP_poll, SCHEDOP_yield, SchedPoll};
use xen_abi::vcpu::{
    RUNSTATE_offline, VCPUOP_down, VCPUOP_get_runstate_info, VCPUOP_initialise, VCPUOP_is_up,
    VCPUOP_register_vcpu_info, VCPUOP_up, VcpuRegisterVcpuInfo, VcpuRunstateInfo,
};
use xen_abi::version::XENVER_version;
use xen_abi::xen::{GuestHandle, StartInfo, VcpuInfo};

use crate::events as ev;
use crate::hypercall as hc;
use crate::mm;
use crate::verdict::{Hex, Rc, Suite};

const EINVAL: i64 = Rc::err(Errno::EINVAL);
const ENOENT: i64 = Rc::err(Errno::ENOENT);
const EEXIST: i64 = Rc::err(Errno::EEXIST);

/// One millisecond in ns.
const MS: u64 = 1_000_000;
/// How long vCPU 0 waits for something vCPU 1 must do (generous: QEMU's vCPU threads may be
/// descheduled on a loaded host; a correct run never waits this long).
const WAIT: u64 = 5_000 * MS;
/// How long vCPU 1's heartbeat must stand still to count as stopped.
const QUIET: u64 = 20 * MS;
/// IPI round trips in each direction.
const ROUNDS: u32 = 10;
/// Size of vCPU 1's stack.
const AP_STACK_SIZE: usize = 16 * 1024;
/// What vCPU 1 finds in `rdi` at its entry (set in its `vcpu_guest_context`).
const AP_MAGIC: u64 = 0x5350_7631_6172_6773;

// Commands from vCPU 0 to vCPU 1: `CMD` holds `seq << 8 | op`; vCPU 1 stores `seq` in `ACK`
// once it has done (or, for `OP_BLOCK` and `OP_SELF_DOWN`, started) the command.
/// Do nothing but acknowledge.
const OP_PING: u64 = 1;
/// Acknowledge, then `SCHEDOP_block` (events enabled) until the next command.
const OP_BLOCK: u64 = 2;
/// `EVTCHNOP_send` on `SEND_PORT`, result in `SEND_RC`.
const OP_SEND: u64 = 3;
/// Acknowledge, then `VCPUOP_down` on itself.
const OP_SELF_DOWN: u64 = 4;

/// The current command.
static CMD: AtomicU64 = AtomicU64::new(0);
/// The last command vCPU 1 acknowledged.
static ACK: AtomicU64 = AtomicU64::new(0);
/// Set by vCPU 1 once its entry checks are done.
static ALIVE: AtomicBool = AtomicBool::new(false);
/// Bumped by vCPU 1 on every pass of its command loop.
static HEARTBEAT: AtomicU64 = AtomicU64::new(0);
/// VA of vCPU 1's `vcpu_info`.
static AP_VCPU_INFO: AtomicU64 = AtomicU64::new(0);
/// The port vCPU 1's upcall handler looks at (0: none).
static AP_PORT: AtomicU32 = AtomicU32::new(0);
/// Upcalls vCPU 1 took.
static AP_UPCALLS: AtomicU32 = AtomicU32::new(0);
/// Events on `AP_PORT` vCPU 1's upcall handler consumed.
static AP_HITS: AtomicU32 = AtomicU32::new(0);
/// The port `OP_SEND` sends on.
static SEND_PORT: AtomicU32 = AtomicU32::new(0);
/// `OP_SEND`'s result.
static SEND_RC: AtomicI64 = AtomicI64::new(i64::MIN);

// What vCPU 1 found at its entry and got from its own hypercalls.
/// `rdi` at entry was [`AP_MAGIC`].
static AP_RDI_OK: AtomicBool = AtomicBool::new(false);
/// `rsp` at entry was the top of its stack.
static AP_RSP_OK: AtomicBool = AtomicBool::new(false);
/// `cs` at entry.
static AP_CS: AtomicU64 = AtomicU64::new(0);
/// `evtchn_upcall_mask` of its `vcpu_info` at entry.
static AP_MASK: AtomicU32 = AtomicU32::new(0xff);
/// `VCPUOP_is_up(1)` from vCPU 1.
static AP_IS_UP_SELF: AtomicI64 = AtomicI64::new(i64::MIN);
/// `VCPUOP_is_up(0)` from vCPU 1.
static AP_IS_UP_0: AtomicI64 = AtomicI64::new(i64::MIN);
/// `XENVER_version` from vCPU 1.
static AP_VERSION: AtomicI64 = AtomicI64::new(i64::MIN);
/// `VCPUOP_get_runstate_info(1)` from vCPU 1: rc.
static AP_RUNSTATE_RC: AtomicI64 = AtomicI64::new(i64::MIN);
/// `VCPUOP_get_runstate_info(1)` from vCPU 1: state.
static AP_RUNSTATE: AtomicI64 = AtomicI64::new(-1);
/// vCPU 1's `vcpu_time_info`: bit 0 stable and even, bit 1 version non-zero, bit 2 system
/// time positive, bit 3 multiplier set.
static AP_TIME: AtomicU32 = AtomicU32::new(0);
/// `VCPUOP_down` on itself returned (after vCPU 0 brought it up again), with this value.
static AP_SELF_DOWN_RC: AtomicI64 = AtomicI64::new(i64::MIN);

/// A page of the image.
#[repr(C, align(4096))]
struct Page([u8; 4096]);

/// Where vCPU 1's `vcpu_info` moves (offset 0); only accessed through raw pointers.
static mut AP_VCPU_INFO_PAGE: Page = Page([0; 4096]);

global_asm!(
    ".pushsection .text.pvtest_smp, \"ax\"",
    // vCPU 1 starts here, on the context vCPU 0 gave it: rdi = AP_MAGIC, rsp = stack top.
    ".balign 16",
    ".global pvtest_smp_ap_entry",
    "pvtest_smp_ap_entry:",
    "    cld",
    "    mov %rsp, %rsi",
    "    and $-16, %rsp",
    "    call {ap_main}",
    "    ud2",
    ".popsection",
    ".pushsection .bss.pvtest_smp_stack, \"aw\", @nobits",
    ".balign 4096",
    "pvtest_smp_ap_stack:",
    ".skip {stack_size}",
    "pvtest_smp_ap_stack_top:",
    ".popsection",
    ap_main = sym ap_main,
    stack_size = const AP_STACK_SIZE,
    options(att_syntax)
);

// vCPU 1's event callback: the same entry as `pvtest_event_entry`.
crate::events::upcall_entry!("pvtest_smp", "pvtest_smp_ap_event_entry", ap_event_handler);

unsafe extern "C" {
    /// vCPU 1's entry point.
    static pvtest_smp_ap_entry: u8;
    /// vCPU 1's event callback.
    static pvtest_smp_ap_event_entry: u8;
    /// The top of vCPU 1's stack.
    static pvtest_smp_ap_stack_top: u8;
}

fn ap_stack_top() -> u64 {
    (&raw const pvtest_smp_ap_stack_top) as u64
}

// ---------------------------------------------------------------------------------------------
// Hypercalls.

/// `vcpu_op(cmd, vcpu, arg)` on a local structure (or none).
fn vcpu_op<T>(cmd: u32, vcpu: u32, arg: Option<&mut T>) -> i64 {
    let p = arg.map_or(ptr::null_mut(), |a| (a as *mut T).cast());
    // SAFETY: `arg` is the structure `cmd` takes (the callers pick the pairing) or null; the
    // contexts given to VCPUOP_initialise only start vCPU 1 at this suite's entry stub, on its
    // own stack.
    unsafe { hc::vcpu_op(cmd, vcpu, p) }
}

fn is_up(vcpu: u32) -> i64 {
    vcpu_op::<()>(VCPUOP_is_up, vcpu, None)
}

/// `VCPUOP_get_runstate_info(vcpu)`: (rc, state).
fn runstate(vcpu: u32) -> (i64, i32) {
    let mut info = VcpuRunstateInfo {
        state: -1,
        ..VcpuRunstateInfo::default()
    };
    let rc = vcpu_op(VCPUOP_get_runstate_info, vcpu, Some(&mut info));
    (rc, info.state)
}

fn sched_op0(cmd: u32) -> i64 {
    // SAFETY: SCHEDOP_yield and SCHEDOP_block take no argument.
    unsafe { hc::hypercall3(nr::sched_op, u64::from(cmd), 0, 0) }
}

fn sched_yield() {
    sched_op0(SCHEDOP_yield);
}

/// `SCHEDOP_poll` on one port with an absolute `timeout`.
fn poll(port: u32, timeout: u64) -> i64 {
    let ports = [port];
    let mut p = SchedPoll {
        ports: GuestHandle::from_ptr(ports.as_ptr()),
        nr_ports: 1,
        _pad0: 0,
        timeout,
    };
    // SAFETY: Xen reads the sched_poll and the one port it names.
    unsafe {
        hc::hypercall3(
            nr::sched_op,
            u64::from(SCHEDOP_poll),
            (&raw mut p) as u64,
            0,
        )
    }
}

fn xen_version() -> i64 {
    // SAFETY: XENVER_version takes no argument.
    unsafe { hc::xen_version(XENVER_version, ptr::null_mut()) }
}

/// The running base pointer's frame, from the emulated `mov %cr3`.
fn current_l4_mfn() -> u64 {
    let cr3: u64;
    // SAFETY: a PV kernel's `mov %cr3` faults and the hypervisor emulates it (the `emul` suite
    // checks it), returning the machine address of the running L4; nothing else changes.
    unsafe { asm!("mov {}, cr3", out(reg) cr3, options(nomem, nostack)) };
    (cr3 & mm::PTE_MFN_MASK) / mm::PAGE_SIZE
}

// ---------------------------------------------------------------------------------------------
// vCPU 1.

fn ap_vcpu_info() -> *mut VcpuInfo {
    AP_VCPU_INFO.load(Ordering::SeqCst) as *mut VcpuInfo
}

fn ap_set_upcall_mask(mask: u8) {
    // SAFETY: AP_VCPU_INFO points at vCPU 1's live vcpu_info; the guest owns this byte.
    unsafe { ptr::write_volatile(&raw mut (*ap_vcpu_info()).evtchn_upcall_mask, mask) };
}

/// vCPU 1's event handler: Linux's 2-level scan, limited to `AP_PORT` (the only port bound to
/// vCPU 1; the words also hold vCPU 0's ports, which are not vCPU 1's to consume).
extern "C" fn ap_event_handler() {
    let vi = ap_vcpu_info();
    // SAFETY: vi is vCPU 1's mapped vcpu_info; the guest clears its own pending flag first.
    unsafe { ptr::write_volatile(&raw mut (*vi).evtchn_upcall_pending, 0) };
    // SAFETY: evtchn_pending_sel is 8-byte aligned and Xen sets bits in it atomically.
    let sel_word = unsafe { AtomicU64::from_ptr(&raw mut (*vi).evtchn_pending_sel) };
    let sel = sel_word.swap(0, Ordering::SeqCst);
    let port = AP_PORT.load(Ordering::SeqCst);
    if port != 0
        && sel & (1 << (port / 64)) != 0
        && ev::port_pending(port)
        && !ev::port_masked(port)
    {
        ev::clear_port_pending(port);
        AP_HITS.fetch_add(1, Ordering::SeqCst);
    }
    AP_UPCALLS.fetch_add(1, Ordering::SeqCst);
}

/// vCPU 1's own checks, right after it started.
fn ap_entry_checks(magic: u64, entry_rsp: u64) {
    let cs: u64;
    // SAFETY: reading the code segment selector has no side effects.
    unsafe { asm!("mov {:x}, cs", out(reg) cs, options(nomem, nostack, preserves_flags)) };
    let vi = ap_vcpu_info();
    // SAFETY: vi is vCPU 1's mapped vcpu_info; volatile because Xen writes it.
    let mask = unsafe { ptr::read_volatile(&raw const (*vi).evtchn_upcall_mask) };
    AP_RDI_OK.store(magic == AP_MAGIC, Ordering::SeqCst);
    AP_RSP_OK.store(entry_rsp == ap_stack_top(), Ordering::SeqCst);
    AP_CS.store(cs & 0xffff, Ordering::SeqCst);
    AP_MASK.store(u32::from(mask), Ordering::SeqCst);

    AP_IS_UP_SELF.store(is_up(1), Ordering::SeqCst);
    AP_IS_UP_0.store(is_up(0), Ordering::SeqCst);
    AP_VERSION.store(xen_version(), Ordering::SeqCst);
    let (rc, state) = runstate(1);
    AP_RUNSTATE_RC.store(rc, Ordering::SeqCst);
    AP_RUNSTATE.store(i64::from(state), Ordering::SeqCst);

    // SAFETY: vi is mapped; `time` is a plain field inside it.
    let t = unsafe { &raw const (*vi).time };
    let mut bits = 0;
    for _ in 0..10_000 {
        // SAFETY: t points at vCPU 1's vcpu_time_info; volatile because Xen updates it.
        let v1 = unsafe { ptr::read_volatile(&raw const (*t).version) };
        // SAFETY: as above.
        let copy = unsafe { ptr::read_volatile(t) };
        // SAFETY: as above.
        let v2 = unsafe { ptr::read_volatile(&raw const (*t).version) };
        if v1 == v2 && v1 & 1 == 0 {
            bits = 1
                | u32::from(v1 != 0) << 1
                | u32::from(copy.system_time > 0) << 2
                | u32::from(copy.tsc_to_system_mul != 0) << 3;
            break;
        }
    }
    AP_TIME.store(bits, Ordering::SeqCst);
}

/// vCPU 1: records its entry state, then runs vCPU 0's commands (yielding between polls, so
/// it always passes through the hypervisor).
extern "C" fn ap_main(magic: u64, entry_rsp: u64) -> ! {
    ap_entry_checks(magic, entry_rsp);
    ALIVE.store(true, Ordering::SeqCst);
    let mut done = 0;
    loop {
        HEARTBEAT.fetch_add(1, Ordering::SeqCst);
        let cmd = CMD.load(Ordering::SeqCst);
        let seq = cmd >> 8;
        if seq == done {
            sched_yield();
            continue;
        }
        done = seq;
        match cmd & 0xff {
            OP_BLOCK => {
                ACK.store(seq, Ordering::SeqCst);
                // SCHEDOP_block enables events; the upcall's HYPERVISOR_iret keeps them
                // enabled. vCPU 0 sends an event after posting the next command.
                while CMD.load(Ordering::SeqCst) >> 8 == seq {
                    HEARTBEAT.fetch_add(1, Ordering::SeqCst);
                    sched_op0(SCHEDOP_block);
                }
                ap_set_upcall_mask(1);
                continue;
            }
            OP_SEND => {
                let rc = ev::send(SEND_PORT.load(Ordering::SeqCst));
                SEND_RC.store(rc, Ordering::SeqCst);
            }
            OP_SELF_DOWN => {
                ACK.store(seq, Ordering::SeqCst);
                let rc = vcpu_op::<()>(VCPUOP_down, 1, None);
                AP_SELF_DOWN_RC.store(rc, Ordering::SeqCst);
                continue;
            }
            _ => {}
        }
        ACK.store(seq, Ordering::SeqCst);
    }
}

// ---------------------------------------------------------------------------------------------
// vCPU 0's side.

/// Spins (yielding) until `cond` holds or `budget_ns` of system time passed; returns `cond`.
fn wait_for(budget_ns: u64, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = ev::now_ns().saturating_add(budget_ns);
    loop {
        if cond() {
            return true;
        }
        if ev::now_ns() > deadline {
            return cond();
        }
        sched_yield();
    }
}

/// Posts commands to vCPU 1.
struct Ap {
    seq: u64,
}

impl Ap {
    /// Posts `op` and returns its sequence number.
    fn post(&mut self, op: u64) -> u64 {
        self.seq += 1;
        CMD.store(self.seq << 8 | op, Ordering::SeqCst);
        self.seq
    }

    /// Waits for vCPU 1 to acknowledge command `seq`.
    fn acked(seq: u64) -> bool {
        wait_for(WAIT, || ACK.load(Ordering::SeqCst) >= seq)
    }

    /// Posts `op` and waits for the acknowledgement.
    fn command(&mut self, op: u64) -> bool {
        let seq = self.post(op);
        Self::acked(seq)
    }
}

/// Waits (up to [`WAIT`]) for vCPU 1's heartbeat to stand still for [`QUIET`].
fn heartbeat_stopped() -> bool {
    let deadline = ev::now_ns() + WAIT;
    let mut last = HEARTBEAT.load(Ordering::SeqCst);
    let mut since = ev::now_ns();
    loop {
        sched_yield();
        let now = ev::now_ns();
        let beat = HEARTBEAT.load(Ordering::SeqCst);
        if beat != last {
            last = beat;
            since = now;
        } else if now.saturating_sub(since) >= QUIET {
            return true;
        }
        if now > deadline {
            return false;
        }
    }
}

/// Whether vCPU 1's heartbeat moves (within [`WAIT`]).
fn heartbeat_moves() -> bool {
    let start = HEARTBEAT.load(Ordering::SeqCst);
    wait_for(WAIT, || HEARTBEAT.load(Ordering::SeqCst) != start)
}

/// Runs the suite.
pub fn run(s: &mut Suite, si: &StartInfo) {
    let rc1 = is_up(1);
    if rc1 != 0 && rc1 != 1 {
        // One vCPU (vCPU 1 does not exist): nothing to check.
        s.skip("vcpus", format_args!("is_up_1={} one_vcpu", Rc(rc1)));
        return;
    }
    let rc = ev::map_shared_info(si);
    s.expect_rc("shared_info.map_writable", rc, 0);
    if rc != 0 {
        s.skip("rest", format_args!("shared_info not mapped"));
        return;
    }

    // 1. vCPU 1 exists and is down.
    s.expect_rc("vcpu_op.is_up_0", is_up(0), 1);
    s.expect_rc("vcpu_op.is_up_1_at_boot", rc1, 0);
    s.expect_rc("vcpu_op.is_up_2", is_up(2), ENOENT);
    let (rc, state) = runstate(1);
    s.check(
        "vcpu_op.runstate_1_at_boot",
        rc == 0 && state == RUNSTATE_offline,
        format_args!("rc={} state={state}", Rc(rc)),
    );
    let rc = vcpu_op::<()>(VCPUOP_down, 1, None);
    s.expect_rc("vcpu_op.down_1_while_down", rc, 0);

    // 2. VCPUOP_up before VCPUOP_initialise.
    s.expect_rc(
        "vcpu_op.up_uninitialised",
        vcpu_op::<()>(VCPUOP_up, 1, None),
        EINVAL,
    );
    s.expect_rc("vcpu_op.up_2", vcpu_op::<()>(VCPUOP_up, 2, None), ENOENT);

    // 3. vCPU 1's vcpu_info moves into a page of the guest while the vCPU is down.
    ap_register_vcpu_info(s, si);

    // 4. and 5. VCPUOP_initialise.
    if !ap_initialise(s) {
        s.skip("rest", format_args!("vCPU 1 not initialised"));
        return;
    }

    // 6. VCPUOP_up: vCPU 1 runs.
    let rc = vcpu_op::<()>(VCPUOP_up, 1, None);
    s.expect_rc("vcpu_op.up", rc, 0);
    let alive = rc == 0 && wait_for(WAIT, || ALIVE.load(Ordering::SeqCst));
    s.expect_eq("vcpu1.started", "alive", alive, true);
    s.expect_rc("vcpu_op.is_up_1_running", is_up(1), 1);
    s.expect_rc("vcpu_op.up_while_up", vcpu_op::<()>(VCPUOP_up, 1, None), 0);
    if !alive {
        s.skip("rest", format_args!("vCPU 1 did not start"));
        return;
    }

    // 7. What vCPU 1 saw.
    ap_reports(s);

    let mut ap = Ap { seq: 0 };
    let ok = ap.command(OP_PING);
    s.expect_eq("vcpu1.command", "ack", ok, true);
    if !ok {
        s.skip("rest", format_args!("vCPU 1 does not answer"));
        return;
    }

    // 8. Events between the vCPUs.
    ipis(s, &mut ap);

    // 9. VCPUOP_down from vCPU 0, then up again.
    remote_down_up(s, &mut ap);

    // 10. vCPU 1 takes itself down; it stays down (poweroff from vCPU 0 follows).
    let ok = ap.command(OP_SELF_DOWN);
    let down = ok && wait_for(WAIT, || is_up(1) == 0);
    let stopped = down && heartbeat_stopped();
    let (rc, state) = runstate(1);
    s.check(
        "vcpu1.self_down",
        ok && down && stopped && rc == 0 && state == RUNSTATE_offline,
        format_args!(
            "ack={ok} is_up={} stopped={stopped} rc={} state={state}",
            Rc(is_up(1)),
            Rc(rc)
        ),
    );
}

fn ap_register_vcpu_info(s: &mut Suite, si: &StartInfo) {
    let page = (&raw mut AP_VCPU_INFO_PAGE) as u64;
    let mfn = mm::p2m(si)[mm::va_to_pfn(page) as usize];
    let register = |offset: u32| {
        let mut r = VcpuRegisterVcpuInfo {
            mfn,
            offset,
            rsvd: 0,
        };
        vcpu_op(VCPUOP_register_vcpu_info, 1, Some(&mut r))
    };
    let rc = register(0);
    let vi = page as *mut VcpuInfo;
    // SAFETY: Xen now uses this vcpu_info (or nothing does); volatile reads because it writes.
    let (pending, mask, sel) = unsafe {
        (
            ptr::read_volatile(&raw const (*vi).evtchn_upcall_pending),
            ptr::read_volatile(&raw const (*vi).evtchn_upcall_mask),
            ptr::read_volatile(&raw const (*vi).evtchn_pending_sel),
        )
    };
    s.check(
        "vcpu_op.register_vcpu_info_1",
        rc == 0 && pending == 1 && mask == 1 && sel == u64::MAX,
        format_args!(
            "rc={} upcall_pending={pending} mask={mask} pending_sel={}",
            Rc(rc),
            Hex(sel)
        ),
    );
    if rc == 0 {
        AP_VCPU_INFO.store(page, Ordering::SeqCst);
        s.expect_rc("vcpu_op.register_vcpu_info_1_again", register(64), EINVAL);
    } else {
        // Still in shared_info.
        // SAFETY: shared_info is mapped; slot 1 exists (XEN_LEGACY_MAX_VCPUS is 32).
        let slot = unsafe { &raw mut (*ev::shared_info()).vcpu_info[1] };
        AP_VCPU_INFO.store(slot as u64, Ordering::SeqCst);
        s.skip(
            "vcpu_op.register_vcpu_info_1_again",
            format_args!("not registered"),
        );
    }
}

/// A zeroed `vcpu_guest_context`.
fn zeroed_context() -> VcpuGuestContext {
    // SAFETY: vcpu_guest_context is plain integers and arrays of them (FromBytes): all zeroes
    // is a valid value.
    unsafe { core::mem::zeroed() }
}

/// The context vCPU 1 starts on, as Linux's `cpu_initialize_context` fills it (without a GDT
/// of its own: the flat selectors live in Xen's reserved GDT entries).
fn good_context() -> VcpuGuestContext {
    let mut ctx = zeroed_context();
    let entry = (&raw const pvtest_smp_ap_entry) as u64;
    let callback = (&raw const pvtest_smp_ap_event_entry) as u64;
    ctx.flags = VGCF_in_kernel;
    ctx.user_regs.rip = entry;
    ctx.user_regs.rsp = ap_stack_top();
    ctx.user_regs.rdi = AP_MAGIC;
    ctx.user_regs.cs = FLAT_KERNEL_CS;
    ctx.user_regs.ss = FLAT_KERNEL_SS;
    ctx.user_regs.rflags = 0x200;
    for t in crate::entry::trap_entries() {
        ctx.trap_ctxt[usize::from(t.vector)] = t;
    }
    ctx.kernel_ss = u64::from(FLAT_KERNEL_SS);
    ctx.kernel_sp = ap_stack_top();
    ctx.ctrlreg[3] = xen_pfn_to_cr3(current_l4_mfn());
    ctx.event_callback_eip = callback;
    ctx
}

/// The `VCPUOP_initialise` checks; returns whether vCPU 1 got initialised.
fn ap_initialise(s: &mut Suite) -> bool {
    let mut ctx = good_context();
    ctx.user_regs.rip = 0x0000_8000_0000_1000;
    let rc = vcpu_op(VCPUOP_initialise, 1, Some(&mut ctx));
    s.expect_rc("vcpu_op.initialise_non_canonical_rip", rc, EINVAL);

    // A vCPU starting in user mode needs a user page table.
    let mut ctx = good_context();
    ctx.flags = 0;
    ctx.ctrlreg[1] = 0;
    let rc = vcpu_op(VCPUOP_initialise, 1, Some(&mut ctx));
    s.expect_rc("vcpu_op.initialise_user_mode_no_user_cr3", rc, EINVAL);

    let mut ctx = good_context();
    let rc = vcpu_op(VCPUOP_initialise, 2, Some(&mut ctx));
    s.expect_rc("vcpu_op.initialise_2", rc, ENOENT);
    s.expect_rc(
        "vcpu_op.up_after_failed_initialise",
        vcpu_op::<()>(VCPUOP_up, 1, None),
        EINVAL,
    );

    let mut ctx = good_context();
    let rc = vcpu_op(VCPUOP_initialise, 1, Some(&mut ctx));
    s.expect_rc("vcpu_op.initialise", rc, 0);
    let mut ctx = good_context();
    let rc2 = vcpu_op(VCPUOP_initialise, 1, Some(&mut ctx));
    s.expect_rc("vcpu_op.initialise_again", rc2, EEXIST);
    s.expect_rc("vcpu_op.is_up_1_initialised", is_up(1), 0);
    rc == 0
}

/// The verdicts on what vCPU 1 recorded at its entry.
fn ap_reports(s: &mut Suite) {
    let rdi_ok = AP_RDI_OK.load(Ordering::SeqCst);
    let rsp_ok = AP_RSP_OK.load(Ordering::SeqCst);
    let cs = AP_CS.load(Ordering::SeqCst);
    let mask = AP_MASK.load(Ordering::SeqCst);
    s.check(
        "vcpu1.entry_state",
        rdi_ok && rsp_ok && cs == u64::from(FLAT_KERNEL_CS) && mask == 1,
        format_args!(
            "rdi_ok={rdi_ok} rsp_ok={rsp_ok} cs={} upcall_mask={mask}",
            Hex(cs)
        ),
    );
    s.expect_rc("vcpu1.is_up_self", AP_IS_UP_SELF.load(Ordering::SeqCst), 1);
    s.expect_rc("vcpu1.is_up_0", AP_IS_UP_0.load(Ordering::SeqCst), 1);
    let v = AP_VERSION.load(Ordering::SeqCst);
    s.check(
        "vcpu1.xen_version",
        v > 0 && v == xen_version(),
        format_args!("same_as_vcpu0={}", v == xen_version()),
    );
    let rc = AP_RUNSTATE_RC.load(Ordering::SeqCst);
    let state = AP_RUNSTATE.load(Ordering::SeqCst);
    s.check(
        "vcpu1.runstate_self",
        rc == 0 && state == 0,
        format_args!("rc={} state={state}", Rc(rc)),
    );
    let t = AP_TIME.load(Ordering::SeqCst);
    let bit = |n: u32| t & (1 << n) != 0;
    s.check(
        "vcpu1.time_info",
        t == 0xf,
        format_args!(
            "even={} nonzero={} system_time_positive={} mul_set={}",
            bit(0),
            bit(1),
            bit(2),
            bit(3)
        ),
    );
}

/// IPIs from vCPU 0 to a blocked vCPU 1 (upcalls there), and from vCPU 1 to vCPU 0 (polled).
fn ipis(s: &mut Suite, ap: &mut Ap) {
    let (rc, port) = ev::bind_ipi(1);
    s.check(
        "evtchn.bind_ipi_vcpu1",
        rc == 0 && port != 0,
        format_args!("rc={} port_nonzero={}", Rc(rc), port != 0),
    );
    if rc == 0 {
        let (rc, st) = ev::status(port);
        s.check(
            "evtchn.status_ipi_vcpu1",
            rc == 0 && st.status == EVTCHNSTAT_ipi && st.vcpu == 1,
            format_args!("rc={} status={} vcpu={}", Rc(rc), st.status, st.vcpu),
        );
        AP_PORT.store(port, Ordering::SeqCst);
        let rc = ev::unmask(port);
        s.expect_rc("evtchn.unmask_ipi_vcpu1", rc, 0);
        let blocking = ap.command(OP_BLOCK);
        let hits0 = AP_HITS.load(Ordering::SeqCst);
        let upcalls0 = AP_UPCALLS.load(Ordering::SeqCst);
        let mut rounds = 0;
        let mut send_rc = 0;
        if blocking {
            for i in 1..=ROUNDS {
                send_rc = ev::send(port);
                if send_rc != 0 || !wait_for(WAIT, || AP_HITS.load(Ordering::SeqCst) >= hits0 + i) {
                    break;
                }
                rounds = i;
            }
        }
        let hits = AP_HITS.load(Ordering::SeqCst) - hits0;
        let upcalls = AP_UPCALLS.load(Ordering::SeqCst) - upcalls0;
        s.check(
            "evtchn.ipi_to_vcpu1",
            blocking && send_rc == 0 && rounds == ROUNDS && hits == ROUNDS && upcalls >= hits,
            format_args!(
                "blocked={blocking} rc={} round_trips={rounds} hits={hits} upcalls_ge_hits={}",
                Rc(send_rc),
                upcalls >= hits
            ),
        );
        // Out of the block loop: post the next command, then wake vCPU 1.
        let seq = ap.post(OP_PING);
        let rc = ev::send(port);
        let ok = Ap::acked(seq);
        s.check(
            "vcpu1.unblocked",
            rc == 0 && ok,
            format_args!("rc={} ack={ok}", Rc(rc)),
        );
        AP_PORT.store(0, Ordering::SeqCst);
        s.expect_rc("evtchn.close_ipi_vcpu1", ev::close(port), 0);
    } else {
        for check in [
            "evtchn.status_ipi_vcpu1",
            "evtchn.unmask_ipi_vcpu1",
            "evtchn.ipi_to_vcpu1",
            "vcpu1.unblocked",
            "evtchn.close_ipi_vcpu1",
        ] {
            s.skip(check, format_args!("no port"));
        }
    }

    // The other way: an IPI port of vCPU 0, masked, that vCPU 1 sends on while vCPU 0 polls.
    let (rc, port) = ev::bind_ipi(0);
    s.check(
        "evtchn.bind_ipi_vcpu0",
        rc == 0 && port != 0,
        format_args!("rc={} port_nonzero={}", Rc(rc), port != 0),
    );
    if rc != 0 {
        for check in ["evtchn.ipi_from_vcpu1", "evtchn.close_ipi_vcpu0"] {
            s.skip(check, format_args!("no port"));
        }
        return;
    }
    ev::set_port_mask(port, true);
    SEND_PORT.store(port, Ordering::SeqCst);
    let (mut rounds, mut poll_rc, mut send_rc, mut pending, mut acked) = (0, 0, 0, true, true);
    for i in 1..=ROUNDS {
        ev::clear_port_pending(port);
        let seq = ap.post(OP_SEND);
        poll_rc = poll(port, ev::now_ns() + WAIT);
        pending = ev::port_pending(port);
        acked = Ap::acked(seq);
        send_rc = SEND_RC.load(Ordering::SeqCst);
        if poll_rc != 0 || !pending || !acked || send_rc != 0 {
            break;
        }
        rounds = i;
    }
    ev::clear_port_pending(port);
    s.check(
        "evtchn.ipi_from_vcpu1",
        rounds == ROUNDS,
        format_args!(
            "round_trips={rounds} poll_rc={} pending={pending} ack={acked} send_rc={}",
            Rc(poll_rc),
            Rc(send_rc)
        ),
    );
    s.expect_rc("evtchn.close_ipi_vcpu0", ev::close(port), 0);
}

/// `VCPUOP_down` of vCPU 1 from vCPU 0: it stops; `VCPUOP_up` resumes it where it was.
fn remote_down_up(s: &mut Suite, ap: &mut Ap) {
    let rc = vcpu_op::<()>(VCPUOP_down, 1, None);
    s.expect_rc("vcpu_op.down_remote", rc, 0);
    let down = wait_for(WAIT, || is_up(1) == 0);
    s.expect_rc("vcpu_op.is_up_1_after_down", is_up(1), 0);
    let stopped = down && heartbeat_stopped();
    let (rc, state) = runstate(1);
    s.check(
        "vcpu1.stopped_while_down",
        stopped && rc == 0 && state == RUNSTATE_offline,
        format_args!("stopped={stopped} rc={} state={state}", Rc(rc)),
    );
    // A command posted while vCPU 1 is down is not acknowledged until it is up again.
    let seq = ap.post(OP_PING);
    let early = wait_for(50 * MS, || ACK.load(Ordering::SeqCst) >= seq);
    let rc = vcpu_op::<()>(VCPUOP_up, 1, None);
    s.expect_rc("vcpu_op.up_resume", rc, 0);
    s.expect_rc("vcpu_op.is_up_1_after_up", is_up(1), 1);
    let acked = Ap::acked(seq);
    let beats = heartbeat_moves();
    s.check(
        "vcpu1.resumed",
        !early && acked && beats,
        format_args!("ack_while_down={early} ack={acked} heartbeat={beats}"),
    );
}
